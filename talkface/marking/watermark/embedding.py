"""Embedding: the payload's tile (format 1), repeated over the frame and scaled
per pixel by the texture mask, plus the presence carrier (format 2,
presence.py), added to luminance with one rounding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from talkface.marking.watermark.coding import coded_symbols
from talkface.marking.watermark.key import TILE, period_for, tile
from talkface.marking.watermark.mask import DEFAULT_STRENGTH, FLAT_RMS, expected_amplitude, texture_gain
from talkface.marking.watermark.payload import Payload
from talkface.marking.watermark.presence import LatticeState, cell_inputs, next_lattice, offset_field

PSNR_FLOOR_DB = 40.2  # per-frame cap on the mean squared change of both carriers (spec: >= 40 dB; 40.05 gave 39.97 on a render)
# The presence carrier's share of that budget (grey levels^2): its lattice
# offsets are uniform in +-LATTICE_STEP / 2, ~2.5 on a typical frame; a frame
# that would need more gets all its offsets scaled down (the lattice points
# are then approached, not reached).  The tile gets what is left (~3.9, the
# tile alone was capped at 6.0 before format 2).
PRESENCE_MAX_MSE = 3.0
MAX_STRENGTH = 40.0  # grey levels RMS
ROUNDING_MSE = 1.0 / 12  # mean squared error of rounding to uint8 (grey levels^2)
MASK_MAX = 250.0  # full-scale uint8 value of the amplitude map
DELTA_ZERO = 128.0  # uint8 code of a zero change in the rounded delta


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


@dataclass(frozen=True)
class MarkInputs:
    """A frame and what marking it needs that does not depend on the stream's earlier frames."""

    frame: np.ndarray       # HxWx3 uint8 RGB
    gray: np.ndarray        # its luminance, uint8
    gain: np.ndarray        # texture gain map (mask.texture_gain)
    cell_means: np.ndarray  # presence canvas cell means, grey levels
    cell_share: np.ndarray  # share of the way each cell is moved


class Watermarker:
    """Adds the payload's pattern to RGB uint8 frames of any size.  One
    instance per output stream, fed its frames in order: the presence
    carrier's lattice choice carries from frame to frame (presence.py), so
    the same frames in the same order give the same bytes."""

    def __init__(self, payload: Payload, strength: float = DEFAULT_STRENGTH):
        if not 0 < strength <= MAX_STRENGTH:
            raise ValueError(f"strength must be in (0, {MAX_STRENGTH:g}] grey levels")
        self.payload = payload
        self.strength = float(strength)
        self._tile = tile(coded_symbols(payload))
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        # Allowed mean squared change per frame (PSNR floor), minus the
        # rounding noise of the uint8 output.
        self._mse_cap = 255.0**2 / 10 ** (PSNR_FLOOR_DB / 10) - ROUNDING_MSE
        self._mask_q = MASK_MAX / max(self.strength, FLAT_RMS)
        self._lattice: LatticeState | None = None

    def _pattern(self, h: int, w: int) -> np.ndarray:
        """The tiled pattern at this frame size, float32 (cached per size)."""
        pat = self._cache.get((h, w))
        if pat is None:
            pat = np.ascontiguousarray(tiled_pattern(self._tile, h, w), dtype=np.float32)
            self._cache[(h, w)] = pat
        return pat

    def _mask(self, gray: np.ndarray, gain: np.ndarray, mse_cap: float) -> np.ndarray:
        """Per-pixel RMS amplitude of the tile, full size, uint8 fixed point
        (grey levels * self._mask_q), its mean square capped at ``mse_cap``."""
        h, w = gray.shape
        m = expected_amplitude(gray, self.strength, gain)
        # Cap the mean squared change (the pattern has unit RMS and is
        # independent of the mask, so MSE ~ mean(amplitude^2)).
        mse = float(np.mean(m * m))
        scale = self._mask_q
        if mse > mse_cap:
            scale *= math.sqrt(max(mse_cap, 0.0) / mse)
        mq = cv2.convertScaleAbs(m, alpha=scale)
        return cv2.resize(mq, (w, h), interpolation=cv2.INTER_LINEAR)

    def embed(self, frame: np.ndarray) -> np.ndarray:
        """Return a marked copy of an HxWx3 uint8 RGB frame (the stream's next frame)."""
        inputs = self.inputs(frame)
        return self.marked(inputs, self.advance(inputs))

    # embed in three steps, so that a pipeline can do the heavy two in any thread and only
    # `advance` (16 x 16 numbers) in frame order
    def inputs(self, frame: np.ndarray) -> MarkInputs:
        """What marking ``frame`` needs that does not depend on earlier frames (any thread)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError("expected an HxWx3 uint8 RGB frame")
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        gain = texture_gain(gray)
        return MarkInputs(frame, gray, gain, *cell_inputs(gray, gain))

    def advance(self, inputs: MarkInputs) -> LatticeState:
        """The presence carrier's state for this frame: call in frame order, once per frame."""
        self._lattice = next_lattice(inputs.cell_means, inputs.cell_share, self._lattice)
        return self._lattice

    def marked(self, inputs: MarkInputs, state: LatticeState) -> np.ndarray:
        """The marked copy of ``inputs.frame`` at carrier state ``state`` (any thread)."""
        frame, gray, gain = inputs.frame, inputs.gray, inputs.gain
        h, w = frame.shape[:2]
        field = offset_field(state.offset, h, w)
        field_mse = cv2.norm(field, cv2.NORM_L2SQR) / field.size
        if field_mse > PRESENCE_MAX_MSE:
            field *= np.float32(math.sqrt(PRESENCE_MAX_MSE / field_mse))
            field_mse = PRESENCE_MAX_MSE
        mq = self._mask(gray, gain, self._mse_cap - field_mse)
        # amplitude * pattern + presence field, rounded once (rounding the
        # smooth field alone would leave 1-level contour steps on flat areas).
        delta = cv2.multiply(mq, self._pattern(h, w), scale=1.0 / self._mask_q, dtype=cv2.CV_32F)
        delta = cv2.add(delta, field)
        # Same change on R, G and B = a luminance-only change: chroma is
        # subsampled and quantised harder by codecs, and luminance noise is
        # less visible than coloured noise.
        # Rounded once into uint8 around 128 (|delta| stays far below 127),
        # then added to R, G and B with the offset removed (saturating): the
        # cheapest route measured for the 2 ms budget.
        d8 = cv2.add(delta, DELTA_ZERO, dtype=cv2.CV_8U)
        return cv2.addWeighted(frame, 1.0, cv2.cvtColor(d8, cv2.COLOR_GRAY2RGB), 1.0, -DELTA_ZERO)
