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
