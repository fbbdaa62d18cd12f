"""Reading files for verification: an image, or the first seconds of a video,
as RGB uint8 frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from talkface.errors import WatermarkReadError  # noqa: F401  (re-exported: the stage's read error)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise WatermarkReadError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def iter_video(path: Path, max_seconds: float) -> Iterator[np.ndarray]:
    """RGB frames of the first ``max_seconds`` of a video's first stream."""
    for frame, _ in iter_video_keyed(path, max_seconds):
        yield frame


def iter_video_keyed(path: Path, max_seconds: float) -> Iterator[tuple[np.ndarray, bool]]:
    """(RGB frame, is a key frame) of the first ``max_seconds`` of a video's first stream."""
    try:
        container = av.open(str(path))
    except Exception as exc:  # av raises many error types
        raise WatermarkReadError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise WatermarkReadError(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = None
        try:
            for frame in container.decode(stream):
                t = frame.time
                if t is not None:
                    if start is None:
                        start = t
                    if t - start >= max_seconds:
                        break
                yield frame.to_ndarray(format="rgb24"), bool(frame.key_frame)
        except Exception as exc:
            raise WatermarkReadError(f"cannot decode {path}: {exc}") from exc
