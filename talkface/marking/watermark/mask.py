"""Where the mark may go: a texture-masking gain, shared by the embedder (how
much to add) and the detector (how much to expect)."""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_STRENGTH = 8.0  # RMS grey levels of the mark where the texture is strong
# FLAT_RMS: on perfectly flat areas the mark is FLAT_RMS * pattern, rounded.
# The pattern peaks at 2.5 (key.PEAK_CLIP), so 0.5 is the most that still
# changes a flat pixel by at most one grey level.  Smooth clips are mostly
# flat, and what little mark they carry there is what survives a rescale.
FLAT_RMS = 0.5
# TEXTURE_REF: fine-detail RMS (grey levels) that earns the full strength.
# 7 rather than 10 gives mid-texture (short hair, fabric, eyebrows, the
# busier half of skin) ~40 % more mark; that is what survives H.264 CRF 35 on
# smooth faces, where flat areas lose everything to the quantiser.  At 3x
# zoom the added grain on skin is hard to see; lower values (5, or the
# uneroded edges) made eyes and hair outlines visibly speckled.
TEXTURE_REF = 7.0
TEXTURE_GAMMA = 1.0  # amplitude proportional to texture energy (RMS)
DETAIL_BLUR_SIGMA = 1.2  # px at half size: what counts as fine detail
MASK_GRID = 4  # the gain map lives on a grid this many times coarser


def texture_gain(gray: np.ndarray) -> np.ndarray:
    """Texture masking gain in [0, 1] on a MASK_GRID x coarser grid (float32).

    Texture is the local RMS of the *fine* detail (luminance at half size
    minus a ~3 px blur): hair, fabric and busy backgrounds mask added noise;
    smooth skin and shading do not, although their plain local variance is
    large.  The energy map is eroded so that an isolated edge (face contour,
    eyelid), a thin line in that map, does not count as texture.  The map is
    smooth, so a coarser grid loses nothing and keeps embedding cheap.
    """
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA).astype(np.float32)
    hp = cv2.subtract(small, cv2.GaussianBlur(small, (5, 5), DETAIL_BLUR_SIGMA))
    grid = (max(1, w // MASK_GRID), max(1, h // MASK_GRID))
    e = cv2.resize(cv2.multiply(hp, hp), grid, interpolation=cv2.INTER_AREA)
    e = cv2.erode(cv2.blur(e, (3, 3)), np.ones((3, 3), np.uint8))
    g = cv2.pow(cv2.sqrt(e) * np.float32(1.0 / TEXTURE_REF), TEXTURE_GAMMA)
    return np.minimum(cv2.blur(g, (3, 3)), 1.0)


def expected_amplitude(gray: np.ndarray, strength: float = DEFAULT_STRENGTH, gain: np.ndarray | None = None) -> np.ndarray:
    """RMS grey levels of the mark the embedder puts at each grid cell
    (``gain``: texture_gain(gray), when already computed)."""
    return cv2.max((texture_gain(gray) if gain is None else gain) * np.float32(strength), FLAT_RMS)
