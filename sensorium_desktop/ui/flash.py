"""The sync check's flash window: white on black, timed by the frame swap.

With OpenGL (any real display) the window is a ``QOpenGLWindow`` and a flash's presentation
time is the host time of its ``frameSwapped`` signal — the moment the frame was handed to the
display, not when it was asked for. Without OpenGL (the offscreen platform of a headless run)
it is a raster window whose backing store is flushed by hand; the time is taken right after
the flush, and the result says so. The patch is the whole window or a square in one corner
(where a photodiode sits).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from PySide6.QtCore import QObject, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QBackingStore, QColor, QGuiApplication, QOpenGLContext, QPainter, QWindow
from PySide6.QtOpenGL import QOpenGLWindow

from ..core.hostclock import host_time
from ..core.synccheck import PATCHES

log = logging.getLogger(__name__)
T = TypeVar("T")


def _patch_rect(patch: str, size: int, w: int, h: int) -> QRect:
    if patch == "full":
        return QRect(0, 0, w, h)
    x = 0 if patch.endswith("left") else max(w - size, 0)
    y = 0 if patch.startswith("top") else max(h - size, 0)
    return QRect(x, y, size, size)


def _paint(painter: QPainter, lit: bool, patch: str, size: int, w: int, h: int) -> None:
    painter.fillRect(0, 0, w, h, QColor(0, 0, 0))
    if lit:
        painter.fillRect(_patch_rect(patch, size, w, h), QColor(255, 255, 255))


class _GlFlashWindow(QOpenGLWindow):
    """Paints through OpenGL; ``frameSwapped`` times each presented frame."""

    def __init__(self, owner: FlashStimulus) -> None:
        super().__init__()
        self.owner = owner
        self.frameSwapped.connect(owner._swapped)

    def paintGL(self) -> None:
        painter = QPainter(self)
        _paint(painter, self.owner.lit, self.owner.patch, self.owner.size, self.width(), self.height())
        painter.end()

    def request(self) -> None:
        self.update()


class _RasterFlashWindow(QWindow):
    """Paints into its backing store and flushes it by hand; times the flush."""

    def __init__(self, owner: FlashStimulus) -> None:
        super().__init__()
        self.owner = owner
        self.store = QBackingStore(self)

    def request(self) -> None:
        w, h = max(self.width(), 1), max(self.height(), 1)
        rect = QRect(0, 0, w, h)
        self.store.resize(rect.size())
        self.store.beginPaint(rect)
        painter = QPainter(self.store.paintDevice())
        _paint(painter, self.owner.lit, self.owner.patch, self.owner.size, w, h)
        painter.end()
        self.store.endPaint()
        self.store.flush(rect)
        self.owner._swapped()


#: The click played with each flash: 48 kHz mono, a 2 ms 3 kHz burst with a fast decay.
CLICK_RATE_HZ = 48_000


def click_samples() -> bytes:
    """The click as signed 16-bit PCM (little endian)."""
    t = np.arange(round(0.004 * CLICK_RATE_HZ)) / CLICK_RATE_HZ
    wave = np.sin(2 * np.pi * 3000.0 * t) * np.exp(-t / 0.0008)
    return (wave * 0.8 * 32767).astype("<i2").tobytes()


class ClickOutput:
    """The PC's default audio output, fed a click at each flash (push mode, so the click
    starts as soon as the audio buffer plays it: its output latency is part of what a
    microphone measures). ``available`` False with ``why`` when there is no output."""

    def __init__(self) -> None:
        self.available, self.why, self.device = False, "", ""
        self._sink: Any = None
        self._io: Any = None
        self._pcm = click_samples()
        try:
            from PySide6.QtMultimedia import QAudioFormat, QAudioSink, QMediaDevices
        except ImportError as exc:  # no multimedia backend (e.g. no libpulse)
            self.why = f"no audio backend ({exc})"
            return
        out = QMediaDevices.defaultAudioOutput()
        if out.isNull():
            self.why = "no audio output device"
            return
        fmt = QAudioFormat()
        fmt.setSampleRate(CLICK_RATE_HZ)
        fmt.setChannelCount(1)
        fmt.setSampleFormat(QAudioFormat.SampleFormat.Int16)
        if not out.isFormatSupported(fmt):
            self.why = f"{out.description()} does not play 48 kHz 16-bit mono"
            return
        self._sink = QAudioSink(out, fmt)
        self._io = self._sink.start()
        if self._io is None:
            self.why = f"{out.description()} could not be opened"
            return
        self.available, self.device = True, out.description()

    def click(self) -> None:
        if self._io is not None:
            self._io.write(self._pcm)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.stop()
            self._sink = self._io = None


def opengl_available() -> bool:
    """True when an OpenGL context can be made on this platform (not on ``offscreen``)."""
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return False
    return bool(QOpenGLContext().create())


class FlashStimulus(QObject):
    """Presents flashes at given onsets; ``on_swap(index, lit, t_host)`` for every swap.

    ``start`` may be called from any thread (it is queued to the GUI thread). ``patch``: one of
    :data:`PATCHES`; ``size``: the corner square's side (px); ``fullscreen`` for a real check."""

    _start_requested = Signal(object, float, object)
    _stop_requested = Signal()
    #: (index, lit, host time s) of every presented frame change, in the GUI thread
    swapped = Signal(int, bool, float)
    finished = Signal()

    def __init__(self, patch: str = "full", size: int = 200, fullscreen: bool = True,
                 geometry: QRect | None = None, clicks: bool = True) -> None:  # fmt: skip
        super().__init__()
        if patch not in PATCHES:
            raise ValueError(f"patch must be one of {', '.join(PATCHES)}")
        self.patch, self.size, self.fullscreen, self.geometry = patch, size, fullscreen, geometry
        #: a click with each flash where the PC has an audio output ("" = clicks on)
        self.clicks = ClickOutput() if clicks else None
        self.audio = (f"a click with each flash on {self.clicks.device}" if self.clicks and self.clicks.available
                      else f"no clicks: {self.clicks.why}" if self.clicks else "no clicks (not asked)")  # fmt: skip
        self.lit = False
        self.window: _GlFlashWindow | _RasterFlashWindow | None = None
        self.timing = ""
        self._on_swap: Callable[[int, bool, float], None] | None = None
        self._pending: tuple[int, bool] | None = None
        self._timers: list[QTimer] = []
        self._index = -1
        self._count = 0
        self._flash_s = 0.1
        self._start_requested.connect(self._begin, Qt.ConnectionType.QueuedConnection)
        self._stop_requested.connect(self._end, Qt.ConnectionType.QueuedConnection)

    # -- any thread -------------------------------------------------------------------------
    def start(self, onsets: np.ndarray, flash_s: float, on_swap: Callable[[int, bool, float], None]) -> None:
        self._start_requested.emit(np.asarray(onsets, dtype=np.float64), float(flash_s), on_swap)

    def stop(self) -> None:
        self._stop_requested.emit()

    # -- GUI thread -------------------------------------------------------------------------
    def open_window(self) -> None:
        """Show the (black) window now, so that its first frame is not a flash's."""
        if self.window is not None:
            return
        gl = opengl_available()
        self.window = _GlFlashWindow(self) if gl else _RasterFlashWindow(self)
        self.timing = "frame swap (OpenGL)" if gl else "backing store flush (no OpenGL)"
        self.window.setTitle("Sensorium sync check")
        if self.geometry is not None:
            self.window.setGeometry(self.geometry)
        else:
            self.window.resize(640, 400)
        if self.fullscreen:
            self.window.showFullScreen()
        else:
            self.window.show()
        self.window.request()

    def _begin(self, onsets: np.ndarray, flash_s: float, on_swap: Callable[[int, bool, float], None]) -> None:
        self.open_window()
        self._on_swap, self._flash_s, self._count = on_swap, flash_s, int(onsets.size)
        for i, at in enumerate(onsets):
            self._after(float(at), functools.partial(self._show, i, True))

    def _after(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` once after ``seconds`` (a precise timer, stopped by :meth:`stop`)."""
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.timeout.connect(fn)
        timer.start(max(0, round(seconds * 1000.0)))
        self._timers.append(timer)

    def _show(self, index: int, lit: bool) -> None:
        if self.window is None:
            return
        self.lit = lit
        self._pending = (index, lit)
        self.window.request()
        if lit:
            self._after(self._flash_s, lambda: self._show(index, False))

    def _swapped(self) -> None:
        t = host_time()
        if self._pending is None:
            return
        index, lit = self._pending
        self._pending = None
        if lit and self.clicks is not None:
            self.clicks.click()
        self.swapped.emit(index, lit, t)
        if self._on_swap is not None:
            self._on_swap(index, lit, t)
        if not lit and index == self._count - 1:
            self.finished.emit()

    def _end(self) -> None:
        for timer in self._timers:
            timer.stop()
        self._timers.clear()
        if self.clicks is not None:
            self.clicks.close()
        self.lit = False
        if self.window is not None:
            self.window.close()
            self.window = None


def present_while(
    work: Callable[[FlashStimulus, threading.Event], T], patch: str = "full", size: int = 200,
    fullscreen: bool = True, clicks: bool = True,
) -> T:  # fmt: skip
    """Run ``work(stimulus, stop_flag)`` in a thread while this (main) thread runs Qt for the
    flash window; Ctrl+C sets ``stop_flag``. Without a display Qt's offscreen platform is used
    (only simulated devices can see those flashes). Returns what ``work`` returns."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    stimulus = FlashStimulus(patch, size, fullscreen and QGuiApplication.platformName() != "offscreen",
                             clicks=clicks)  # fmt: skip
    log.info("sync check: %s", stimulus.audio)
    stimulus.open_window()
    stop_flag = threading.Event()
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["value"] = work(stimulus, stop_flag)
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc

    thread = threading.Thread(target=body, name="sync-check", daemon=True)
    previous = signal.signal(signal.SIGINT, lambda *_: stop_flag.set())
    poll = QTimer()
    poll.timeout.connect(lambda: None if thread.is_alive() else app.quit())
    poll.start(100)  # also lets Python see Ctrl+C while Qt waits
    thread.start()
    try:
        app.exec()
        thread.join()
    finally:
        signal.signal(signal.SIGINT, previous)
        poll.stop()
        stimulus._end()
    if "error" in box:
        raise box["error"]
    return box["value"]
