"""Signal quality in a running lab: a real node with a simulated 8-channel EEG whose channel 3
goes flat for a while, scored by the node's ``quality`` component — the verdict in ``sensorium
status`` (text and JSON), the bad spell as a ``BAD_flat`` marker of the running recording with
its duration, in the BIDS ``events.tsv`` and in the MNE annotations ``read_raw`` hands over;
and in the window's device tree (Quality column, reason as tooltip)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from conftest import RedisServer, WindowDriver, sensorium

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.core.quality import ANOMALY_CHANNELS, REASONS, parse_quality
from sensorium_desktop.recording.review import ReviewData, ReviewStream, open_review
from sensorium_desktop.viewmodel.review import ReviewModel

EEG = "sim:eeg?channels=8&rate=256&flat_channel=3&flat_after=8&flat_for=5"


def _quality(c: redis.Redis, keys: Keys, sid: str) -> dict:
    return parse_quality(c.hgetall(keys.quality)).get(sid, {})


def test_a_flat_channel_is_found_shown_and_recorded(redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:
    c = redis_server.client()
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    rec = tmp_path / "rec"
    run = subprocess.Popen(sensorium("record", "--prefix", keys.prefix, "--device", EEG, "--duration", "22",
                                     "--out", str(rec), "--participant", "01", "--task", "quality"),
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    sid = "sim-eeg-eeg"
    seen: list[str] = []
    status: subprocess.CompletedProcess[str] | None = None
    js: dict = {}
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        q = _quality(c, keys, sid)
        if q:
            seen.append(f"{q['state']}:{q.get('reason', '')}")
            if q["state"] == "bad" and q.get("reason") == "flat" and status is None:
                status = subprocess.run(sensorium("status", "--prefix", keys.prefix), env=env, capture_output=True,
                                        text=True, timeout=60)  # fmt: skip
                js = json.loads(subprocess.run(sensorium("status", "--prefix", keys.prefix, "--json"), env=env,
                                               capture_output=True, text=True, timeout=60).stdout)  # fmt: skip
        time.sleep(0.2)
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err[-3000:]
    states = [s.split(":")[0] for s in seen]
    assert states[0] == "learning" and "good" in states and "bad:flat" in seen, sorted(set(seen))
    assert states.index("good") < seen.index("bad:flat") and states[-1] == "good", seen  # it came back
    assert status is not None and "quality bad: flat (channel 3)" in status.stdout, status and status.stdout
    (row,) = [s for s in js["sensors"] if s["sensor_id"] == sid]
    assert row["quality"]["state"] == "bad" and row["quality"]["reason"] == "flat" and row["quality"]["channel"] == 2

    xdf_path = tmp_path / "rec.xdf"
    exp = subprocess.run(sensorium("export", str(rec), "--format", "xdf", "-o", str(xdf_path)), env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-2000:]
    pyxdf = pytest.importorskip("pyxdf")
    streams, _ = pyxdf.load_xdf(str(xdf_path))
    by_type = {s["info"]["type"][0]: s for s in streams}
    anomaly, eeg = by_type["Anomaly"], by_type["EEG"]
    assert anomaly["info"]["name"][0] == "Simulated EEG amplifier EEG Anomaly"
    assert float(anomaly["info"]["nominal_srate"][0]) == 4.0
    labels = [c["label"][0] for c in anomaly["info"]["desc"][0]["channels"][0]["channel"]]
    assert labels == ["score", "state", "reason", "channel"]
    t, v = anomaly["time_stamps"], anomaly["time_series"]
    assert 0.2 < np.median(np.diff(t)) < 0.3 and abs(t[-1] - t[0] - 22) < 1.5, (t[0], t[-1])
    t0 = eeg["time_stamps"][0]
    bad = v[:, 1] == 2
    assert bad.any() and (v[bad, 2] == 1 + REASONS.index("flat")).all() and (v[bad, 3] == 3).all()  # channel 3
    bad_t = t[bad] - t0
    assert 7.5 <= bad_t[0] <= 10.5 and 12.0 <= bad_t[-1] <= 15.0, (bad_t[0], bad_t[-1])  # flat 8–13 s
    assert (v[t - t0 > bad_t[-1] + 1.0, 1] == 0).all()  # good again after

    for source in (rec, xdf_path):  # the review shades the spell on the EEG, from the session and from its XDF
        data = open_review(source)
        assert data.streams["sim-eeg-eeg-anomaly"].kind == "quality", source
        eeg_start = float(data.streams["sim-eeg-eeg"].times[0])
        (spell,) = [s for s in ReviewModel(data).quality_spans("sim-eeg-eeg") if s[2] == 2]
        assert spell[3:] == ("flat", 2) and 7.5 <= spell[0] - eeg_start <= 10.5, (source, spell)
        assert 12.0 <= spell[1] - eeg_start <= 15.5, (source, spell)

    bids = tmp_path / "bids"
    exp = subprocess.run(sensorium("export", str(rec), "--format", "bids", "-o", str(bids)), env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-2000:]
    physio = json.loads(next(bids.rglob("*recording-simeegeeganomaly_physio.json")).read_text())
    assert physio["Columns"] == ["score", "state", "reason", "channel"] and physio["SamplingFrequency"] == 4.0
    assert physio["state"]["Levels"]["2"] == "bad" and physio["reason"]["Levels"]["5"] == "flat"
    events = next(bids.rglob("*_events.tsv")).read_text().splitlines()
    bad = [line.split("\t") for line in events[1:] if "BAD_flat" in line]
    assert len(bad) == 1, events
    onset, span = float(bad[0][0]), float(bad[0][1])
    assert 7.0 <= onset <= 11.0 and 4.0 <= span <= 7.0, bad  # flat from 8 s for 5 s after the device started
    mne = pytest.importorskip("mne")
    from sensorium_desktop.io import read_raw

    raw = read_raw(rec, stream=sid)  # the session folder, as sensorium_desktop.io hands it to MNE
    marked = [(a["description"], a["duration"]) for a in raw.annotations if a["description"].startswith("BAD_")]
    assert [m[0] for m in marked] == ["BAD_flat"] and 4.0 <= marked[0][1] <= 7.0, list(raw.annotations)
    good = raw.get_data(reject_by_annotation="omit")
    assert good.shape[1] < raw.n_times - 4 * raw.info["sfreq"]  # MNE leaves the bad span out
    mne_bids = pytest.importorskip("mne_bids")
    vhdr = next(bids.rglob("*_eeg.vhdr"))
    path = mne_bids.get_bids_path_from_fname(vhdr)
    raw_bids = mne_bids.read_raw_bids(path, verbose="error")  # the BIDS export, read the BIDS way
    bad_bids = [(a["description"], a["duration"]) for a in raw_bids.annotations if a["description"] == "BAD_flat"]
    assert len(bad_bids) == 1 and 4.0 <= bad_bids[0][1] <= 7.0, list(raw_bids.annotations)
    assert isinstance(raw_bids, mne.io.BaseRaw)


def test_a_signal_still_bad_when_the_recording_stops_is_marked_up_to_the_stop(redis_server: RedisServer, keys: Keys,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    env = dict(os.environ, SENSORIUM_REDIS_URL=redis_server.url, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    rec = tmp_path / "rec"
    run = subprocess.run(sensorium("record", "--prefix", keys.prefix, "--device",
                                   "sim:eeg?channels=4&rate=256&flat_channel=2&flat_after=6", "--duration", "12",
                                   "--out", str(rec), "--participant", "01", "--task", "open"),
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "was bad (flat) when the recording stopped" in run.stderr, run.stderr[-3000:]
    bids = tmp_path / "bids"
    exp = subprocess.run(sensorium("export", str(rec), "--format", "bids", "-o", str(bids)), env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert exp.returncode == 0, exp.stderr[-2000:]
    rows = [line.split("\t") for line in next(bids.rglob("*_events.tsv")).read_text().splitlines()[1:]]
    (bad,) = [r for r in rows if r[2] == "BAD_flat"]
    onset, span = float(bad[0]), float(bad[1])
    assert 5.0 <= onset <= 9.0 and abs(onset + span - 12.0) < 0.5, bad  # from the flat start to the stop


@pytest.mark.gui
def test_the_window_marks_the_bad_channel(qtbot, arun, redis_server: RedisServer, keys: Keys,  # type: ignore[no-untyped-def]
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from sensorium_desktop.worker.supervisor import NodeProcess

    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(tmp_path / "data"))
    node = NodeProcess(redis_server.url, ["--prefix", keys.prefix, "--node-id", "q-node", "--device",
                                          "sim:eeg?channels=8&rate=256&flat_channel=3&flat_after=6", "--device",
                                          "sim:chest", "--rcs-port", "0", "--pupil-port", "0"],
                       log_path=tmp_path / "node.log")  # fmt: skip
    driver = WindowDriver(qtbot, arun, redis_server.url, keys, "gui-quality", tmp_path, live=True)
    win, until = driver.win, driver.until

    node.start()
    try:
        until("the EEG in the tree", lambda: win.devices_panel.sensor_item("sim-eeg-eeg") is not None, 40)
        win.plot_sensors(["sim-eeg-eeg", "sim-chest-ecg"])
        item = win.devices_panel.sensor_item("sim-eeg-eeg")
        until("the flat channel found", lambda: item.text(3) == "bad: flat", 40)
        assert "channel 3" in item.toolTip(3)
        ecg = win.devices_panel.sensor_item("sim-chest-ecg")
        assert ecg.text(3) in ("good", "learning")
        entry = win.plots.entries["sim-eeg-eeg"]
        until("the plot shaded", lambda: entry.shade is not None, 10)
        assert entry.quality[:2] == ("bad", "flat") and entry.quality[2] == 2
        lo, hi = entry.shade.getRegion()
        assert (lo, hi) == (-2.5, -1.5)  # channel 3's band of the stacked plot
        assert "flat (channel 3)" in entry.item.titleLabel.text
        if os.environ.get("SENSORIUM_SHOTS"):
            win.grab().save(os.path.join(os.environ["SENSORIUM_SHOTS"], "quality-bad-channel.png"))
    finally:
        node.stop()


@pytest.mark.gui
def test_the_review_shades_a_recorded_bad_spell_on_its_channel(qtbot) -> None:  # type: ignore[no-untyped-def]
    from sensorium_desktop.ui.review_window import ReviewWindow

    rng = np.random.default_rng(0)
    t = 1_800_000_000.0 + np.arange(20 * 256) / 256.0
    eeg = rng.normal(0, 10, (t.size, 8)).astype(np.float32)
    ta = 1_800_000_000.0 + np.arange(80) / 4.0
    verdicts = np.zeros((80, 4), dtype=np.float32)
    verdicts[32:52] = [1.0, 2.0, 1 + REASONS.index("flat"), 3]  # bad: flat on channel 3 from 8 s to 13 s
    verdicts[60:64] = [0.6, 1.0, 1 + REASONS.index("jump"), 0]  # suspect: a jump of the whole sensor
    streams = {"amp-eeg": ReviewStream("amp-eeg", "Amplifier", "signal", "eeg", tuple(f"EEG{i + 1}" for i in range(8)),
                                       ("uV",) * 8, t, eeg, 256.0),
               "amp-eeg-anomaly": ReviewStream("amp-eeg-anomaly", "Amplifier EEG Anomaly", "signal", "anomaly",
                                               ANOMALY_CHANNELS, ("",) * 4, ta, verdicts, 4.0)}  # fmt: skip
    from sensorium_desktop.recording.review import _attach_quality

    _attach_quality(streams)
    data = ReviewData(Path("synthetic"), "session", "test", streams, np.zeros(0), [], [])
    win = ReviewWindow(data)
    qtbot.addWidget(win)
    win.resize(1366, 768)
    win.show()
    assert list(win.plots) == ["amp-eeg"]  # the verdicts shade their sensor; they are not a plot of codes
    assert win.quality_shades["amp-eeg"] == ["bad: flat (channel 3), 8.0–13.0 s", "suspect: jump, 15.0–16.0 s"]
    if os.environ.get("SENSORIUM_SHOTS"):
        win.grab().save(os.path.join(os.environ["SENSORIUM_SHOTS"], "review-quality.png"))


def test_a_resumed_recorder_spools_the_anomaly_entries_its_predecessor_left_unacknowledged(
        redis_server: RedisServer, keys: Keys, tmp_path: Path) -> None:  # fmt: skip
    """A node killed mid-recording leaves entries of an Anomaly stream read but not
    acknowledged; the recorder that resumes finds the stream later than the sensors' own and
    must spool those too (a CI run lost them: 'sim-chest-ecg-anomaly: 8 batches missing')."""
    from sensorium_desktop.bus.registry import register_sensors
    from sensorium_desktop.bus.sessions import Session
    from sensorium_desktop.bus.streams import entry_fields
    from sensorium_desktop.core.quality import anomaly_sensor_id
    from sensorium_desktop.core.samples import SampleBatch, SensorInfo
    from sensorium_desktop.recording.reader import load_recording
    from sensorium_desktop.recording.recorder import SessionRecorder

    c = redis_server.client()
    info = SensorInfo("belt-respiration", "respiration", "belt", nominal_rate=25.0, node_id="n1")
    register_sensors(c, keys, [info])
    now = time.time()
    session = Session("resume1", sensors=[info.sensor_id], state="recording", started=now - 5.0)
    aid = anomaly_sensor_id(info.sensor_id)
    for seq in range(12):
        t = now - 4.0 + 0.25 * seq
        c.xadd(keys.stream(info.sensor_id), entry_fields(
            SampleBatch(info.sensor_id, "respiration", np.full(1, t), np.ones((1, 1), np.float32), None, seq, seq),
            "n1", t))  # fmt: skip
        c.xadd(keys.stream(aid), entry_fields(
            SampleBatch(aid, "anomaly", np.full(1, t), np.zeros((1, 4), np.float32), None, seq, seq), "n1", t))
    group = f"rec-{session.session_id}"
    for key in (keys.stream(info.sensor_id), keys.stream(aid)):  # the predecessor read all and acked none
        c.xgroup_create(key, group, id="0-0")
        c.xreadgroup(group, "n1", {key: ">"}, count=100)
    rec = SessionRecorder(redis_server.url, keys, session, tmp_path / "rec", "n1")
    rec.start()
    deadline = time.monotonic() + 10
    while info.sensor_id not in rec.anomaly_keys and time.monotonic() < deadline:
        time.sleep(0.1)
    rec.request_stop(time.time())
    rec.join(15)
    data = load_recording(tmp_path / "rec", trim=False)
    assert len(data.sensors[aid]) == 12 and data.sensors[aid].missing_batches == 0
    assert len(data.sensors[info.sensor_id]) == 12
