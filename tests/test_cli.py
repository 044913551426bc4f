"""The ``sensorium`` command line: help, unknown commands, module entry point."""

from __future__ import annotations

import subprocess

import pytest
from conftest import sensorium

from sensorium_desktop.cli import COMMANDS, build_parser, main


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run(sensorium("--help"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout
    assert {"gui", "demo", "node", "devices", "status"} <= set(COMMANDS)


def test_unknown_command_fails_with_a_suggestion(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["nod"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'nod'" in err and "node" in err


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([name, "--help"])
        assert exc.value.code == 0


def test_devices_lists_the_simulated_lab() -> None:
    out = subprocess.run(
        sensorium("devices", "--transport", "sim", "--json"), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "sim:chest" in out.stdout and "sim:eeg?channels=32&rate=512" in out.stdout


def test_default_config_file_documents_exactly_the_built_in_defaults() -> None:
    from pathlib import Path

    from sensorium_desktop.config import Config, parse_config

    path = Path(__file__).resolve().parents[1] / "resources" / "sensorium.toml"
    cfg = parse_config(path.read_text(), str(path))
    cfg.source = ""
    assert cfg == Config()


def test_config_file_fills_what_flags_leave_open(tmp_path, monkeypatch, capsys, caplog) -> None:
    import json

    from sensorium_desktop.cli import apply_config
    from sensorium_desktop.config import load_config

    conf = tmp_path / "lab.toml"
    conf.write_text('prefix = "lab2"\n[node]\npriority = 7\ndevices = ["sim:chest"]\nattention = "low"\n')
    monkeypatch.setenv("SENSORIUM_CONFIG", str(conf))
    monkeypatch.delenv("SENSORIUM_PREFIX", raising=False)
    args = build_parser().parse_args(["node", "--priority", "3"])
    apply_config(args, load_config())
    assert (args.prefix, args.priority, args.device, args.attention) == ("lab2", 3, ["sim:chest"], "low")
    assert main(["config"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["priority"] == 7
    conf.write_text("[node]\npriority = 'high'\n")
    assert main(["config"]) == 2  # a broken file is an error, never silently the defaults
    assert "priority must be int" in caplog.text
