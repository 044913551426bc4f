"""Review and replay: other writers' XDF files (xdf-modules/example-files, MIT: tests/data/xdf)
and our own sessions with video, gaze and skeleton — opened, scrubbed in a real window,
replayed as live sensors, recorded again and compared sample for sample with pyxdf."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pyxdf
from conftest import RedisServer, record_session, sensorium
from PySide6 import QtCore
from test_camera import frame_of, write_video

from sensorium_desktop.bus.keys import Keys
from sensorium_desktop.recording.export import export_recording
from sensorium_desktop.recording.reader import load_recording
from sensorium_desktop.recording.review import ReviewError, open_review
from sensorium_desktop.recording.xdf import xdf_stream_key

XDF_DIR = Path(__file__).parent / "data" / "xdf"
EXAMPLES = ("minimal", "clock_resets", "empty_streams")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_files_open_as_pyxdf_reads_them(name: str) -> None:
    path = XDF_DIR / f"{name}.xdf"
    data = open_review(path)
    ref, _ = pyxdf.load_xdf(str(path))
    assert data.source == "xdf" and "pyxdf" in data.clock
    assert len(data.streams) == len(ref)
    n_markers = 0
    for s in ref:
        got = data.streams[xdf_stream_key(s)]
        np.testing.assert_array_equal(got.times, s["time_stamps"])
        if s["info"]["channel_format"][0] == "string":
            assert [list(r) for r in got.values] == [list(r) for r in s["time_series"]]
            n_markers += len(s["time_stamps"])
        elif len(s["time_stamps"]):
            np.testing.assert_array_equal(got.values, s["time_series"])
            assert got.values.dtype == np.asarray(s["time_series"]).dtype  # int16 stays int16
        else:
            assert any(s["info"]["name"][0] in w and "no samples" in w for w in data.warnings)
    assert data.marker_times.size == n_markers and np.all(np.diff(data.marker_times) >= 0)


def test_corrupt_and_truncated_files_are_named_never_a_crash(tmp_path: Path) -> None:
    good = (XDF_DIR / "clock_resets.xdf").read_bytes()
    cut = tmp_path / "cut.xdf"
    cut.write_bytes(good[: len(good) * 2 // 3])
    try:
        data = open_review(cut)
    except ReviewError as exc:
        assert "cut.xdf" in str(exc)
    else:  # read up to the cut: what could not be read is named
        assert data.warnings, "a truncated file must not look whole"
    junk = tmp_path / "junk.xdf"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(ReviewError, match=r"junk\.xdf"):
        open_review(junk)
    empty = tmp_path / "empty.xdf"
    empty.write_bytes(b"")
    with pytest.raises(ReviewError, match=r"empty\.xdf"):
        open_review(empty)
    with pytest.raises(ReviewError, match=r"not a recording"):
        open_review(tmp_path)
    bad = tmp_path / "bad-session"
    bad.mkdir()
    (bad / "session.json").write_text("{not json")
    with pytest.raises(ReviewError, match=r"bad-session"):
        open_review(bad)
    r = subprocess.run(sensorium("open", str(junk)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "junk.xdf" in r.stderr


@pytest.mark.parametrize(("name", "speed"), [("minimal", 1.0), ("empty_streams", 4.0)])
def test_a_replay_recorded_again_exports_the_same_samples(name: str, speed: float, tmp_path: Path) -> None:
    """``sensorium record --device replay:FILE``: every sample and value again, and the same
    relative timing (≤ 1 ms; at speed X the file's, divided by X)."""
    src = XDF_DIR / f"{name}.xdf"
    out = tmp_path / "rec"
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    r = subprocess.run(sensorium("record", "--device", f"replay:{src}?speed={speed:g}&delay=2", "--duration",
                                 str(12 / speed), "--out", str(out), "--prefix", f"rp{name[:4]}"),
                       capture_output=True, text=True, timeout=180, env=env)  # fmt: skip
    ref, _ = pyxdf.load_xdf(str(src))
    with_data = [s for s in ref if len(s["time_stamps"])]
    assert r.returncode in (0, 3), r.stderr[-2000:]  # 3: the file's empty streams sent nothing (named)
    export_recording(out, "xdf", tmp_path / "again.xdf")
    again, _ = pyxdf.load_xdf(str(tmp_path / "again.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in again if s["info"]["type"][0] not in ("Markers", "MarkerSources")
               or s["info"]["name"][0] not in ("Markers", "MarkerSources")}  # fmt: skip
    for s in with_data:
        name_ = s["info"]["name"][0]
        got = by_name[name_]
        assert got["info"]["type"] == s["info"]["type"], name_
        if s["info"]["channel_format"][0] == "string":
            assert [list(x) for x in got["time_series"]] == [list(x) for x in s["time_series"]]
        else:
            np.testing.assert_array_equal(np.asarray(got["time_series"]), np.asarray(s["time_series"]))
        rel_src = (np.asarray(s["time_stamps"]) - s["time_stamps"][0]) / speed
        rel_got = np.asarray(got["time_stamps"]) - got["time_stamps"][0]
        assert np.max(np.abs(rel_got - rel_src)) <= 1e-3, name_  # the file's timing, scaled by 1/speed
    empty = [s["info"]["name"][0] for s in ref if not len(s["time_stamps"])]
    for e in empty:
        assert f"replay-{name.replace('_', '-')}" in r.stderr or e  # empty streams are not replayed


# -- our sessions: video, gaze, skeleton, markers -----------------------------------------------------


@pytest.fixture(scope="module")
def av_session(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Path:
    """A recorded session with a camera (MJPG, 30 fps), an eye tracker, a pose camera, ECG and
    three markers."""
    tmp = tmp_path_factory.mktemp("av")
    keys = Keys(f"av{os.getpid()}")
    src = write_video(tmp / "lab.avi", 240, 30.0, "MJPG")
    devices = [f"camera:{src}?record={tmp / 'cam.avi'}", "sim:eyes", "sim:pose", "sim:chest"]
    return record_session(redis_server, keys, devices, tmp / "sessions", "avrec", ["first", "second", "third"],
                          lambda c: c.scard(keys.sensors) >= 8 and c.xlen(keys.stream("sim-chest-ecg")) > 3,
                          node_id="av-node")  # fmt: skip


def test_session_opens_with_video_gaze_skeleton_and_markers(av_session: Path) -> None:
    data = open_review(av_session)
    assert data.source == "session" and "refined" in data.clock
    assert [s.kind for s in data.of_kind("video")] == ["video"] and data.of_kind("video")[0].video_path is not None
    assert data.of_kind("gaze") and data.of_kind("skeleton")
    assert data.marker_labels == ["first", "second", "third"] and set(data.marker_sources) == {"window"}


@pytest.mark.gui
def test_review_window_follows_the_cursor_and_the_keyboard(av_session: Path, qtbot, tmp_path: Path) -> None:
    from sensorium_desktop.ui.review_window import ReviewWindow

    win = ReviewWindow(open_review(av_session))
    qtbot.addWidget(win)
    win.resize(1400, 850)
    win.show()
    m = win.model
    video = m.video
    assert video is not None
    # the frame shown is the one recorded at the cursor's global time
    for k in (10, 57, 120):
        m.set_cursor(float(video.times[k]) + 1e-4)
        qtbot.wait(1)
        index = int(video.values[k, 0])
        assert win.video.frame_index == index
        shown = win.video._image
        gray = int(np.median(np.frombuffer(shown.constBits(), np.uint8).reshape(shown.height(), -1)[:100, :300]))
        assert abs(gray - int(frame_of(index)[0, 0, 0])) <= 6, (index, gray)
    # the plots show the visible range; moving the cursor beyond it scrolls it
    t0, t1 = m.view
    ecg = next(k for k, s in m.data.streams.items() if s.attribute == "ecg")
    xr = win.plotted_range(ecg)
    assert abs(xr[0] - t0) < 1e-6 and abs(xr[1] - t1) < 1e-6
    m.zoom(0.1)
    m.set_cursor(m.end - 0.01)  # beyond the range: it scrolls along
    xr = win.plotted_range(ecg)
    assert xr[0] <= m.cursor <= xr[1] and abs((xr[1] - xr[0]) - (m.view[1] - m.view[0])) < 1e-6
    # keyboard: one frame, next marker, zoom, play
    m.set_cursor(float(video.times[30]))
    win.setFocus()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Right)
    assert abs(m.cursor - float(video.times[31])) < 1e-9 and win.video.frame_index == int(video.values[31, 0])
    qtbot.keyClick(win, QtCore.Qt.Key.Key_PageDown)
    assert abs(m.cursor - m.data.marker_times[np.searchsorted(m.data.marker_times, video.times[31])]) < 1e-9
    width = m.view[1] - m.view[0]
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Plus)
    assert abs((m.view[1] - m.view[0]) - width / 2) < 1e-6
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Home)
    assert m.cursor == m.start
    m.set_speed(2.0)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    assert m.playing
    qtbot.waitUntil(lambda: m.cursor > m.start + 0.6, timeout=5000)  # 2× real time
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)  # (a loaded machine once stalled 4× playback to the end)
    assert not m.playing
    heat = m.gaze_heat()
    assert heat is not None and heat.max() == 1.0  # the gaze heatmap over the frame
    # a file dropped on the window opens in a window of its own
    from PySide6 import QtGui

    from sensorium_desktop.ui import review_window

    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(XDF_DIR / "minimal.xdf"))])
    before = len(review_window._OPEN)
    drop = QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.DropAction.CopyAction, mime,
                            QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)  # fmt: skip
    win.dropEvent(drop)  # read in a thread (the window stays responsive), then shown
    qtbot.waitUntil(lambda: len(review_window._OPEN) == before + 1, timeout=10000)
    assert review_window._OPEN[-1].data.path.name == "minimal.xdf"
    review_window._OPEN[-1].close()
    shot = os.environ.get("SENSORIUM_TEST_SHOT")
    if shot:
        m.set_cursor(float(m.data.marker_times[1]))
        win.grab().save(shot)


def test_trimmed_export_holds_only_the_selection(av_session: Path, tmp_path: Path) -> None:
    rec = load_recording(av_session)
    t0, t1 = rec.marker_times()[0], rec.marker_times()[2]
    res = export_recording(av_session, "xdf", tmp_path / "trim.xdf", time_range=(t0, t1))
    streams, _ = pyxdf.load_xdf(str(res.files[0]), synchronize_clocks=False, dejitter_timestamps=False)
    by_key = {xdf_stream_key(s): s for s in streams}
    ecg = by_key["sim-chest-ecg"]["time_stamps"]
    assert ecg[0] >= t0 and ecg[-1] <= t1 and (t1 - t0) - (ecg[-1] - ecg[0]) < 0.01
    assert [m[0] for m in by_key["Markers"]["time_series"]] == ["first", "second", "third"]
    full = rec.global_times("sim-chest-ecg")
    assert len(ecg) == int(np.sum((full >= t0) & (full <= t1)))
    meta = json.loads((av_session / "session.json").read_text())
    assert meta["state"] == "complete"  # the session itself is untouched
    csv_dir = export_recording(av_session, "csv", tmp_path / "trim-csv", time_range=(t0, t1)).files[0].parent
    t_csv = np.loadtxt(csv_dir / "sim-chest-ecg.csv", delimiter=",", skiprows=1, usecols=0)
    assert t_csv.min() >= t0 and t_csv.max() <= t1 and len(t_csv) == len(ecg)


@pytest.mark.slow
def test_clock_resets_replayed_fast_and_recorded_again(tmp_path: Path) -> None:
    """The 573 s file with clock resets at 16×: every sample and value again."""
    src = XDF_DIR / "clock_resets.xdf"
    out = tmp_path / "rec"
    env = dict(os.environ, SENSORIUM_DATA_DIR=str(tmp_path / "data"))
    r = subprocess.run(sensorium("record", "--device", f"replay:{src}?speed=16&delay=2", "--duration", "40",
                                 "--out", str(out), "--prefix", "rpclk"),
                       capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    export_recording(out, "xdf", tmp_path / "again.xdf")
    ref, _ = pyxdf.load_xdf(str(src))
    again, _ = pyxdf.load_xdf(str(tmp_path / "again.xdf"), synchronize_clocks=False, dejitter_timestamps=False)
    by_name = {s["info"]["name"][0]: s for s in again}
    for s in ref:
        got = by_name[s["info"]["name"][0]]
        if s["info"]["channel_format"][0] == "string":
            assert [list(x) for x in got["time_series"]] == [list(x) for x in s["time_series"]]
        else:
            np.testing.assert_array_equal(np.asarray(got["time_series"]), np.asarray(s["time_series"]))


def test_a_video_a_camera_still_writes_is_read_at_any_frame(tmp_path: Path) -> None:
    """The review of a session whose camera still records (the session's video is a hard link
    to the file the camera appends to): opencv cannot seek in an AVI before its writer is
    released (it stays at frame 0); our MJPG index reads frame k as frame k, and keeps up."""
    import cv2

    from sensorium_desktop.recording.video import VideoFrames

    rng = np.random.default_rng(4)
    noise = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # big frames: the writer flushes

    def frame(i: int) -> np.ndarray:
        f = noise.copy()
        f[100:140] = i % 200
        return f

    path = tmp_path / "live.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, (320, 240))
    try:
        for i in range(400):
            writer.write(frame(i))
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 300)
        assert cap.get(cv2.CAP_PROP_POS_FRAMES) == 0  # why the review needs its own index
        frames = VideoFrames(path)
        assert frames.avi is not None
        for k in (350, 7, 199, 0):
            got = frames.frame(k)
            assert got is not None and abs(float(got[110:130, 100:200].mean()) - k % 200) < 6, k
        for i in range(400, 500):
            writer.write(frame(i))
    finally:
        writer.release()
    got = frames.frame(480)  # written after the index was made
    assert got is not None and abs(float(got[110:130, 100:200].mean()) - 480 % 200) < 6
    assert frames.frame(500) is None  # not written: no frame rather than another one


def test_a_long_xdf_opens_in_a_thread_with_progress_and_cancel(qtbot, tmp_path: Path) -> None:
    """Opening a big XDF: the progress dialog moves, the asking window's event loop keeps
    running (no stall over 0.5 s), Cancel ends the read with no window; without Cancel the
    review opens with every sample."""
    import time

    from PySide6 import QtWidgets

    from benchmarks.export import make_spool
    from sensorium_desktop.ui import review_window

    rec = tmp_path / "rec"
    n = make_spool(rec, 8.0, 32, 512)  # 8 min × 32 ch × 512 Hz: 31 MB of XDF
    xdf = export_recording(rec, "xdf", tmp_path / "long.xdf").files[0]
    owner = QtWidgets.QWidget()
    qtbot.addWidget(owner)
    ticks: list[float] = []
    timer = QtCore.QTimer(interval=20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()

    loader = review_window.load_review_window(xdf, owner)
    qtbot.waitUntil(lambda: loader.dialog.value() > 0 or bool(loader.outcome), timeout=20000)
    assert loader.outcome == "", "read before Cancel could be pressed: make the file bigger"
    loader.dialog.findChild(QtWidgets.QPushButton).click()  # the operator presses Cancel
    qtbot.waitUntil(lambda: loader.outcome != "", timeout=20000)
    assert loader.outcome == "cancelled" and loader.window is None and not loader.reader.is_alive()

    ticks.clear()
    loader = review_window.load_review_window(xdf, owner)
    values: list[int] = []
    loader._progress.connect(lambda frac, _what: values.append(round(frac * 1000)))
    qtbot.waitUntil(lambda: loader.outcome != "", timeout=60000)
    timer.stop()
    assert loader.outcome == "opened" and loader.window is not None, loader.outcome
    stream = next(iter(loader.window.data.streams.values()))
    assert stream.times.size == n
    assert len(set(values)) >= 5  # the bar moved while reading
    stall = max(np.diff(ticks)) if len(ticks) > 1 else 0.0
    assert len(ticks) > 10 and stall < 0.5, f"the asking window stalled {stall:.2f} s"
    loader.window.close()
