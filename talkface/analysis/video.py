"""Reading video files: RGB frames with their own timestamps (variable frame rate safe).
The one video reader for tracking, evaluation and tests."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from talkface.errors import VideoReadError


def iter_video_frames(path: str | Path, max_seconds: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds from the first frame, RGB frame) for each frame, from the stream's own
    timestamps, so variable-frame-rate video is timed right."""
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:  # FFmpeg raises many error types; the user needs one line
        raise VideoReadError(f"cannot read video {path}: {_first_line(exc)}") from None
    with container:
        if not container.streams.video:
            raise VideoReadError(f"no video stream in {path}")
        stream = container.streams.video[0]
        start = None
        n = 0
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else n / float(stream.average_rate or 25)
                start = t if start is None else start
                if max_seconds is not None and t - start > max_seconds:
                    break
                n += 1
                yield t - start, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise VideoReadError(f"cannot decode video {path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def read_video_frames(path: str | Path, max_frames: int | None = None,
                      max_seconds: float | None = None) -> tuple[list[np.ndarray], list[float]]:
    """Decode RGB frames and their timestamps (seconds), for tests and evaluation."""
    frames, times = [], []
    for t, image in iter_video_frames(path, max_seconds):
        frames.append(image)
        times.append(t)
        if max_frames and len(frames) >= max_frames:
            break
    return frames, times
