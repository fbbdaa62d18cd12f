"""Invisible, verifiable "AI-generated" watermark for talkface frames.

The public API is this module: ``Payload``, ``Watermarker``, ``detect_frames``,
``verify_file``, ``Detection``, ``WatermarkReadError`` and ``FORMAT_VERSION``.
The parts, in the order the data flows (docs/watermark.md explains the
scheme; ``talkface eval watermark`` measures it):

* payload.py   the 48-bit message: tag, version, user id, CRC-16
* coding.py    the convolutional code, Viterbi, the codewords of all user ids
* key.py       the public key (frequency bins, phases) and the tile
* mask.py      the texture mask shared by embedder and detector
* presence.py  the presence carrier (format 2): cell means on a lattice
* embedding.py ``Watermarker``: tile repeated over the frame, masked, plus
               the presence field, added
* spectrum.py  period estimation for rescaled content
* lattice.py   coefficients at a period, sync search, shifts, soft bits
* confirm.py   the maximum-likelihood payload test
* detection.py ``detect_frames``: accumulation, the search, the verdict
* reading.py   images and videos to frames
"""

from __future__ import annotations

from pathlib import Path

from talkface.marking.watermark.detection import (
    Z_DECODE_THRESHOLD,
    Z_EXACT_THRESHOLD,
    Z_THRESHOLD,
    Accumulator,
    Detection,
    detect_frames,
    frame_weight,
)
from talkface.marking.watermark.embedding import Watermarker
from talkface.marking.watermark.mask import DEFAULT_STRENGTH
from talkface.marking.watermark.payload import FORMAT_VERSION, Payload
from talkface.marking.watermark.reading import WatermarkReadError, is_image, iter_video_keyed, read_image

__all__ = [
    "Payload",
    "Detection",
    "Watermarker",
    "WatermarkReadError",
    "detect_frames",
    "verify_file",
    "DEFAULT_STRENGTH",
    "FORMAT_VERSION",
    "Z_THRESHOLD",
    "Z_DECODE_THRESHOLD",
    "Z_EXACT_THRESHOLD",
]

DEFAULT_MAX_SECONDS = 10.0  # of a video checked by verify_file


def verify_file(path: str | Path, max_seconds: float = DEFAULT_MAX_SECONDS) -> Detection:
    """Check an image or a video file (the first ``max_seconds`` of it)."""
    path = Path(path)
    if not path.is_file():
        raise WatermarkReadError(f"no such file: {path}")
    if is_image(path):
        return detect_frames([read_image(path)])
    acc = Accumulator()
    for f, key_frame in iter_video_keyed(path, max_seconds):
        acc.add(f, frame_weight(key_frame))
    if not acc.counts:
        raise WatermarkReadError(f"no decodable frames in {path}")
    return acc.result()
