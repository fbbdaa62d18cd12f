"""A live session recorded as an MP4, encoded in its own thread (x264 releases the GIL)."""
from __future__ import annotations

import queue
import threading
import uuid
from pathlib import Path

import numpy as np

from talkface.analysis.audio import Audio
from talkface.output.video import Mp4Writer

RECORD_CRF = 23
RECORD_PRESET = "ultrafast"
DISCARD_WAIT_S = 30.0
BACKLOG_S = 10.0   # frames waiting for the encoder, in seconds of video; past it the recording stops


class Recorder:
    """Frames in (from the event loop), an MP4 out; at most `max_frames` are kept."""

    def __init__(self, folder: Path, size: int, fps: float, audio_rate: int, max_frames: int) -> None:
        self.path = folder / f"session-{uuid.uuid4().hex[:12]}.mp4"
        self.size, self.fps, self.audio_rate, self.max_frames = size, fps, audio_rate, max_frames
        self.frames = 0
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, int(BACKLOG_S * fps)))
        self.done = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="talkface-recorder", daemon=True)
        self.thread.start()

    def add(self, frame) -> None:
        if self.frames < self.max_frames and not self.done.is_set() and self.error is None:
            try:
                self.queue.put_nowait((frame.image, frame.audio))
                self.frames += 1
            except queue.Full:   # the encoder cannot keep up: stop recording, never hold more memory
                self.error = f"the recording fell more than {BACKLOG_S:g} s behind and was stopped"

    def _run(self) -> None:
        writer = None
        audio = []
        try:
            while (item := self.queue.get()) is not None:
                image, pcm = item
                if writer is None:
                    writer = Mp4Writer(self.path, self.size, self.fps, Audio(np.zeros(1, np.float32), self.audio_rate),
                                       crf=RECORD_CRF, preset=RECORD_PRESET)
                writer.write(image)
                audio.append(pcm)
            if writer is not None:
                samples = np.concatenate(audio).astype(np.float32) / 32768.0
                writer.audio = Audio(samples, self.audio_rate)
                writer.close()
        except Exception as exc:  # a failed recording must not take the live session down
            self.error = f"{type(exc).__name__}: {exc}"
            if writer is not None:
                writer.abort()
        finally:
            self.done.set()

    def _stop(self) -> None:
        while not self.done.is_set():
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self.done.wait(timeout=DISCARD_WAIT_S)

    def finish(self) -> Path | None:
        """Close the file; returns its path, or None when nothing was recorded."""
        self._stop()
        if self.error is None and self.path.is_file():
            return self.path
        self.path.unlink(missing_ok=True)
        return None

    def discard(self) -> None:
        self._stop()
        self.path.unlink(missing_ok=True)
