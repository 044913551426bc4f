"""Random access to the frames of a recorded video, including one a camera is still writing.

Our cameras store MJPG in AVI (opencv's writer). Until the writer is released, the file has
no frame count and no index, and opencv's reader cannot seek in it (it silently stays at the
start: the review showed frame 0 for every position). :class:`MjpegAvi` indexes the ``movi``
chunks itself (8 bytes read per frame, extended as the file grows) and decodes the one JPEG
asked for; any other file goes through ``cv2.VideoCapture``, whose seeks are checked.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

#: AVI stream chunk ids that hold a frame: ``00dc`` (compressed), ``00db`` (uncompressed)
_FRAME_IDS = (b"00dc", b"00db")


class MjpegAvi:
    """Frames of an MJPG AVI by index; ``frame(i)`` is None beyond what is written so far."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offsets: list[tuple[int, int]] = []  # (data offset, size) per frame
        self._scan_from = self._movi_start()

    @staticmethod
    def readable(path: Path) -> bool:
        """True for a RIFF AVI whose ``movi`` list we can walk."""
        try:
            with open(path, "rb") as f:
                head = f.read(12)
        except OSError:
            return False
        return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI "

    def _movi_start(self) -> int:
        """Offset of the first chunk inside ``LIST movi`` (a bounded scan of the top level)."""
        with open(self.path, "rb") as f:
            f.seek(12)
            while True:
                head = f.read(12)
                if len(head) < 8:
                    return -1
                cid, size = head[:4], struct.unpack("<I", head[4:8])[0]
                if cid == b"LIST" and head[8:12] == b"movi":
                    return f.tell()
                f.seek(f.tell() - 12 + 8 + size + (size & 1))

    def _extend(self) -> None:
        """Index the chunks written since the last scan (a live file keeps growing)."""
        if self._scan_from < 0:
            return
        with open(self.path, "rb") as f:
            f.seek(0, 2)
            end = f.tell()
            pos = self._scan_from
            while pos + 8 <= end:
                f.seek(pos)
                head = f.read(8)
                cid, size = head[:4], struct.unpack("<I", head[4:8])[0]
                if cid == b"idx1" or pos + 8 + size > end:
                    break  # the index (a finished file) or a chunk still being written
                if cid in _FRAME_IDS:
                    self.offsets.append((pos + 8, size))
                elif cid == b"LIST":  # an rec list: its chunks follow its 4-byte type
                    pos += 12
                    continue
                pos += 8 + size + (size & 1)
            self._scan_from = pos

    @property
    def indexable(self) -> bool:
        """False when the file has no ``movi`` list we found (not an AVI we can walk)."""
        return self._scan_from >= 0

    def frame_count(self) -> int:
        self._extend()
        return len(self.offsets)

    def frame(self, index: int) -> np.ndarray | None:
        """The BGR frame ``index`` (None when it is not written (yet) or cannot be decoded)."""
        import cv2

        if index < 0:
            return None
        if index >= len(self.offsets):
            self._extend()
            if index >= len(self.offsets):
                return None
        offset, size = self.offsets[index]
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return image if image is not None else None


class VideoFrames:
    """``frame(i)`` for any video file: :class:`MjpegAvi` when it is one, else opencv (reading
    on sequentially when playing, seeking otherwise, a seek that did not land counted)."""

    def __init__(self, path: Path) -> None:
        import cv2

        self.path = Path(path)
        avi = MjpegAvi(self.path) if MjpegAvi.readable(self.path) else None
        self.avi = avi if avi is not None and avi.indexable else None
        self.capture = cv2.VideoCapture(str(self.path)) if self.avi is None else None
        self._next = 0
        self.failed_seeks = 0

    def frame(self, index: int) -> np.ndarray | None:
        import cv2

        if self.avi is not None:
            return self.avi.frame(index)
        cap = self.capture
        if cap is None or index < 0:
            return None
        if index != self._next:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != index:
                self.failed_seeks += 1
                return None  # better no frame than another frame at this time
        ok, bgr = cap.read()
        self._next = index + 1
        return bgr if ok else None
