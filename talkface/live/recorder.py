"""A live session recorded as an MP4. While the session runs, each frame's JPEG (the one it
was sent as) is appended to a spool file and its audio kept: no video encoding competes with
the live frames. The MP4 (H.264 + AAC) is encoded only when the recording is asked for, in a
thread of its own at lower CPU priority, so running sessions keep their cores."""
from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import numpy as np

from talkface.analysis.audio import Audio
from talkface.output.video import Mp4Writer

RECORD_CRF = 23
RECORD_PRESET = "ultrafast"
RECORD_JPEG_QUALITY = 80   # for frames that come without a JPEG (the stream's own quality otherwise)
ENCODE_NICE = 10           # the MP4 encoding yields to live sessions


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENCODE_NICE)   # this thread only (Linux)
    except (AttributeError, OSError):
        pass


def _jpeg_of(frame) -> bytes:
    import cv2

    if frame.jpeg is not None:
        return frame.jpeg
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, RECORD_JPEG_QUALITY])
    return buf.tobytes()


class Recorder:
    """Frames in (from the event loop), an MP4 out on `finish`; at most `max_frames` are kept."""

    def __init__(self, folder: Path, size: int, fps: float, audio_rate: int, max_frames: int) -> None:
        name = f"session-{uuid.uuid4().hex[:12]}"
        self.path = folder / f"{name}.mp4"
        self.spool_path = folder / f"{name}.jpegs"
        self.size, self.fps, self.audio_rate, self.max_frames = size, fps, audio_rate, max_frames
        self.frames = 0
        self.spans: list[tuple[int, int]] = []   # (offset, length) of each frame's JPEG in the spool
        self.audio: list[np.ndarray] = []
        self.error: str | None = None
        self._spool = None
        self._end = 0
        self._lock = threading.Lock()            # add (event loop) against finish/discard (a thread)
        self._closed = False

    def add(self, frame) -> None:
        """Keep one frame: its JPEG appended to the spool (a skipped picture points at the last
        one again), its audio in memory."""
        with self._lock:
            if self._closed or self.error is not None or self.frames >= self.max_frames:
                return
            try:
                if frame.repeated and self.spans:
                    self.spans.append(self.spans[-1])
                else:
                    data = _jpeg_of(frame)
                    if self._spool is None:
                        self._spool = open(self.spool_path, "wb")
                    self._spool.write(data)
                    self.spans.append((self._end, len(data)))
                    self._end += len(data)
            except OSError as exc:   # a full disk stops the recording, never the session
                self.error = f"the recording stopped: {exc.strerror or exc}"
                return
            self.audio.append(frame.audio)
            self.frames += 1

    def _close_spool(self) -> None:
        with self._lock:
            self._closed = True
            if self._spool is not None:
                self._spool.close()

    def _encode(self) -> None:
        """The spool -> the MP4 (runs in its own low-priority thread)."""
        import cv2

        _lower_priority()
        writer = None
        try:
            samples = np.concatenate(self.audio).astype(np.float32) / 32768.0
            writer = Mp4Writer(self.path, self.size, self.fps, Audio(samples, self.audio_rate),
                               crf=RECORD_CRF, preset=RECORD_PRESET)
            with open(self.spool_path, "rb") as spool:
                for offset, length in self.spans:
                    spool.seek(offset)
                    data = np.frombuffer(spool.read(length), np.uint8)
                    writer.write(cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
            writer.close()
        except Exception as exc:  # a failed recording is reported, never raised into the server
            self.error = f"{type(exc).__name__}: {exc}"
            if writer is not None:
                writer.abort()

    def finish(self) -> Path | None:
        """Encode and close the file; returns its path, or None when nothing was recorded."""
        self._close_spool()
        try:
            if self.error is None and self.spans:
                thread = threading.Thread(target=self._encode, name="talkface-recorder", daemon=True)
                thread.start()
                thread.join()
        finally:
            self.spool_path.unlink(missing_ok=True)
        if self.error is None and self.path.is_file():
            return self.path
        self.path.unlink(missing_ok=True)
        return None

    def discard(self) -> None:
        self._close_spool()
        self.spool_path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
