"""A spill file left by an earlier run is drained only into the lab it was written for, and the
node says what it drained; otherwise it is moved aside for the operator (issue 16 item 3)."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
from conftest import RedisServer, make_server, wait_for
from test_publisher import INFO, _batch, _publisher

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.bus.publisher import PublishRecord, StreamPublisher
from sensorium_desktop.bus.streams import read_all
from sensorium_desktop.core.framing import scan_frames


def _crash_with_spill(server: RedisServer, keys: Keys, spill: Path, start: int, n: int) -> None:
    """Publish while connected, lose Redis, publish ``n`` more into the spill and stop (a crash
    while Redis is away leaves the same file)."""
    pub = StreamPublisher(server.url, keys, "n1", spill)
    pub.add_sensors([INFO])
    pub.start()
    for i in range(start, start + 5):
        pub.publish(_batch(i))
    wait_for(lambda: pub.stats["published_batches"] >= 5, message="5 published")
    server.kill(signal.SIGTERM)
    for i in range(start + 5, start + 5 + n):
        pub.publish(_batch(i))
    pub.stop(timeout=0.5)
    assert pub.spilled == n


def test_leftover_of_the_same_lab_is_drained_and_announced(
    private_server: RedisServer, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _crash_with_spill(private_server, keys, tmp_path / "spill", 0, 20)
    private_server.start()
    with caplog.at_level(logging.WARNING):
        pub = _publisher(private_server, keys, tmp_path)
        wait_for(lambda: pub.queue_depth == 0 and pub.connected, timeout=30, message="drain")
        pub.stop()
    text = caplog.text
    assert "20 spilled batches (160 samples of dev-ecg" in text and "draining 20 spilled batches" in text
    assert pub.stats["leftover_drained_batches"] == 20
    seqs = [e.batch.seq for e in read_all(private_server.client(), keys, "dev-ecg")]
    assert seqs == list(range(25))


def test_leftover_of_another_lab_is_held_for_the_operator(
    private_server: RedisServer, keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _crash_with_spill(private_server, keys, tmp_path / "spill", 0, 12)
    fresh = make_server(tmp_path / "fresh-lab")  # a different lab: the node now points elsewhere
    fresh.start()
    try:
        with caplog.at_level(logging.WARNING):
            pub = StreamPublisher(fresh.url, keys, "n1", tmp_path / "spill")
            pub.add_sensors([INFO])
            pub.start()
            for i in range(100, 110):
                pub.publish(_batch(i))
            wait_for(lambda: pub.queue_depth == 0 and pub.connected, timeout=30, message="publish")
            pub.stop()
        assert "NOT draining 12 spilled batches" in caplog.text and "moved to" in caplog.text
        assert pub.stats["leftover_held_batches"] == 12
        entries = read_all(fresh.client(), keys, "dev-ecg")
        assert [e.batch.seq for e in entries] == list(range(10))  # numbered for this lab, from 0, no gap
        assert [e.batch.first_index for e in entries] == [8 * i for i in range(10)]
        held = list((tmp_path / "spill" / "held").glob("n1-*.spill"))
        assert len(held) == 1
        recs = [PublishRecord.from_bytes(p) for _o, p in scan_frames(held[0].read_bytes())]
        assert [r.seq for r in recs] == list(range(5, 17))  # the other lab's data, intact
        about = json.loads(held[0].with_suffix(".json").read_text())
        assert about["batches"] == 12 and about["sensors"] == ["dev-ecg"] and about["lab"]
    finally:
        fresh.stop()


def test_spill_of_another_node_is_pointed_out(tmp_path: Path, keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "other-node.spill").write_bytes(b"\0" * 64)
    with caplog.at_level(logging.WARNING):
        pub = StreamPublisher("redis://127.0.0.1:1/0", keys, "n1", spill)
    assert "holds data of node other-node that this node (n1) does not drain" in caplog.text
    pub.stop(timeout=0.1)
