"""Embedding: the payload's tile, repeated over the frame and scaled per pixel
by the texture mask, added to luminance in uint8 fixed point."""

from __future__ import annotations

import math

import cv2
import numpy as np

from talkface.marking.watermark.coding import coded_symbols
from talkface.marking.watermark.key import TILE, period_for, tile
from talkface.marking.watermark.mask import DEFAULT_STRENGTH, FLAT_RMS, expected_amplitude
from talkface.marking.watermark.payload import Payload

PSNR_FLOOR_DB = 40.3  # per-frame cap on the mean squared change (spec: >= 40 dB)
MAX_STRENGTH = 40.0  # grey levels RMS
ROUNDING_MSE = 1.0 / 12  # mean squared error of rounding to uint8 (grey levels^2)
# Fixed-point scales of the embedding (see Watermarker.embed).
PATTERN_Q = 64.0  # pattern |value| <= 2.5 -> <= 160 in uint8
MASK_MAX = 250.0  # full-scale uint8 value of the amplitude map


def tiled_pattern(base: np.ndarray, h: int, w: int) -> np.ndarray:
    """The TILE-periodic float pattern ``base`` repeated over an h x w frame at
    the frame's own period (period_for)."""
    period = period_for(h, w)
    reps_y = int(math.ceil(h / period)) + 1
    reps_x = int(math.ceil(w / period)) + 1
    big = np.tile(base, (reps_y, reps_x))
    if period == TILE:
        return big[:h, :w]
    # warpAffine with the exact scale keeps the period exact (resize would
    # round it to the output size).
    s = period / TILE
    m = np.float32([[s, 0, 0], [0, s, 0]])
    return cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)


class Watermarker:
    """Adds the payload's pattern to RGB uint8 frames of any size."""

    def __init__(self, payload: Payload, strength: float = DEFAULT_STRENGTH):
        if not 0 < strength <= MAX_STRENGTH:
            raise ValueError(f"strength must be in (0, {MAX_STRENGTH:g}] grey levels")
        self.payload = payload
        self.strength = float(strength)
        self._tile = tile(coded_symbols(payload))
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        # Allowed mean squared change per frame (PSNR floor), minus the
        # rounding noise of the uint8 output.
        self._mse_cap = 255.0**2 / 10 ** (PSNR_FLOOR_DB / 10) - ROUNDING_MSE
        self._mask_q = MASK_MAX / max(self.strength, FLAT_RMS)

    def _pattern(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative parts of the tiled pattern, uint8 fixed point."""
        pat = self._cache.get((h, w))
        if pat is None:
            q = np.clip(np.rint(tiled_pattern(self._tile, h, w) * PATTERN_Q), -255, 255)
            pat = (np.maximum(q, 0).astype(np.uint8), np.maximum(-q, 0).astype(np.uint8))
            self._cache[(h, w)] = pat
        return pat

    def _mask(self, frame: np.ndarray) -> np.ndarray:
        """Per-pixel RMS amplitude of the mark, full size, uint8 fixed point
        (grey levels * self._mask_q)."""
        h, w = frame.shape[:2]
        m = expected_amplitude(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), self.strength)
        # Cap the mean squared change (the pattern has unit RMS and is
        # independent of the mask, so MSE ~ mean(amplitude^2)).
        mse = float(np.mean(m * m))
        scale = self._mask_q
        if mse > self._mse_cap:
            scale *= math.sqrt(self._mse_cap / mse)
        mq = cv2.convertScaleAbs(m, alpha=scale)
        return cv2.resize(mq, (w, h), interpolation=cv2.INTER_LINEAR)

    def embed(self, frame: np.ndarray) -> np.ndarray:
        """Return a marked copy of an HxWx3 uint8 RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError("expected an HxWx3 uint8 RGB frame")
        h, w = frame.shape[:2]
        pos, neg = self._pattern(h, w)
        mq = self._mask(frame)
        # All in uint8 fixed point: amplitude * |pattern| with one rounding,
        # positive and negative parts as saturating add/subtract.  This moves
        # a quarter of the bytes of a float32 route, which is what the 2 ms
        # budget is about on a small CPU.
        k = 1.0 / (self._mask_q * PATTERN_Q)
        up = cv2.multiply(mq, pos, scale=k)
        down = cv2.multiply(mq, neg, scale=k)
        # Same change on R, G and B = a luminance-only change: chroma is
        # subsampled and quantised harder by codecs, and luminance noise is
        # less visible than coloured noise.
        out = cv2.add(frame, cv2.cvtColor(up, cv2.COLOR_GRAY2RGB))
        return cv2.subtract(out, cv2.cvtColor(down, cv2.COLOR_GRAY2RGB))
