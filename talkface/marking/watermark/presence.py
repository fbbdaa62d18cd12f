"""The presence carrier (format 2): a payload-free, low-frequency mark that
survives downscaling and strong compression, embedded by dither modulation.

The frame is cut into a PRESENCE_GRID x PRESENCE_GRID canvas of cells over
its whole area (so the geometry is the same at any size), and the embedder
moves each cell's mean luminance onto its own lattice: a multiple of
LATTICE_STEP plus a secret-free but pseudo-random dither d_i.  The detector
measures the cell means and sums the phasors exp(2 pi i (v_i - d_i) / step).
Why dither modulation and not an added pattern: an added low-frequency
pattern competes with the picture's own low frequencies (host interference:
at the 40 dB budget it gave z 0-3 at 256 px + CRF 35), whereas the lattice
statistic does not depend on the picture at all, only on the codec's error
on a cell mean (~1 grey level at 256 px + CRF 35, 32 px cells).

Null law: without the mark, the dithers are uniform and independent of the
content, so the N phasors are independent with uniform phases whatever the
picture; |Z| / sqrt(N / 2) then has the Rayleigh tail P(r > x) = exp(-x^2/2).
The modulus (not the real part) makes the test blind to a global luminance
offset (H.264's RGB -> YUV -> RGB moves cell means by ~1.3 grey levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PRESENCE_GRID = 16  # cells per side of the canvas (32 px cells at 512 px)
LATTICE_STEP = 6.0  # grey levels between lattice points (embedding RMS ~ step / sqrt(12))
PRESENCE_SEED = 0x7A1C0002  # public dither; changing it breaks compatibility
# The field: the cell offsets upsampled bilinearly to a SMOOTH_SIDE grid,
# blurred there (bilinear alone leaves creases at the cell centres that show
# on flat areas), then bilinearly to the frame.  Both spread each offset over
# the neighbouring cells; CORRECTION_STEPS fixed-point steps on the cell
# means of the smooth grid undo that.
SMOOTH_SIDE = PRESENCE_GRID * 8
SMOOTH_SIGMA = 1.5  # samples of the smooth grid (~6 px at 512 px)
CORRECTION_STEPS = 4
# Flat cells (no texture to hide a smooth blotch) are moved only part of the
# way to their lattice point: the cell's share is FLAT_SHARE plus its mean
# texture gain (mask.texture_gain, 0..1) times TEXTURE_SHARE, at most 1.  A
# cell moved a fraction b of the way still adds sinc(1 - b) to the statistic
# on average (b = 0.3: 0.37 of a full cell; b = 0.45: 0.58).  0.45 since the
# offsets are rate-limited (below): moving cells, left off their lattice
# points for a while, then carry less, and the flat (still) cells make it up.
FLAT_SHARE = 0.45
TEXTURE_SHARE = 2.0
# Threshold on r = |Z| / sqrt(N / 2) (Rayleigh tail exp(-r^2 / 2) for the one
# hypothesis, the canvas of the whole frame): exp(-5.5^2 / 2) = 2.7e-7 per
# check, the order of the tile carrier's own bounds (detection.py).  At 256 px
# + CRF 35 with a 10 s key-frame interval, 2 s excerpts without a key frame
# reach r >= 5.8 on six renders (23 excerpts; lattice step 6, flat share
# 0.45, the temporal consistency below).
# There is no search over crops: a cell mean taken 1 px (1/32 cell) off its
# place mixes in a neighbour's content, and the clean statistic falls from
# 19.7 to 7.8 (4 px: 4.4), so a crop search would need sub-pixel steps over
# ~10^7 hypotheses.  Crops are left to the tile carrier (detection.py).
R_THRESHOLD = 5.5
# Temporal consistency.  Chosen afresh each frame, a cell mean that crosses
# a lattice decision boundary (any moving cell, or noise at the boundary)
# flips its offset by a whole step x share: 32 px blobs jumping +-3-6 grey
# levels from one frame to the next, a shimmer on smooth skin.  So a cell
# keeps the previous frame's lattice point while its mean stays within
# HYSTERESIS steps of it, and a cell's offset changes by at most
# RAMP_PER_FRAME grey levels per frame: a flip ramps over a few frames, and
# where the content itself moves faster the cell is left off its lattice
# point for a while (the still cells, most of a talking-head frame, carry
# the statistic meanwhile).  Letting the offset also follow the content's
# own change of a moving cell kept more cells on their points but brought
# back field changes of 9 grey levels per frame: the correction spreads
# every cell's change over its neighbours, into still areas.
HYSTERESIS = 0.75  # lattice steps (0.5: none)
RAMP_PER_FRAME = 0.75  # grey levels per frame


@dataclass(frozen=True)
class LatticeState:
    """One output stream's presence carrier after a frame (PRESENCE_GRID^2,
    grey levels): the lattice point each cell is held to and the offset it
    was given."""

    point: np.ndarray
    offset: np.ndarray


def _dither() -> np.ndarray:
    rng = np.random.default_rng(PRESENCE_SEED)
    return (rng.random((PRESENCE_GRID, PRESENCE_GRID)) * LATTICE_STEP).astype(np.float32)


DITHER = _dither()
DITHER_PHASOR = np.exp(-2j * np.pi * DITHER / LATTICE_STEP)


def cell_means(gray: np.ndarray) -> np.ndarray:
    """Mean luminance of each canvas cell (float32, PRESENCE_GRID^2)."""
    return cv2.resize(gray.astype(np.float32, copy=False), (PRESENCE_GRID, PRESENCE_GRID), interpolation=cv2.INTER_AREA)


def _cell_means_u8(gray: np.ndarray) -> np.ndarray:
    """cell_means of a uint8 frame, cheaply: area means to a grid 4x finer
    in uint8 (rounding error 0.5 level, averaged over 16 values: ~0.07 RMS),
    then to the canvas.  Only for embedding; detection uses cell_means."""
    if gray.dtype != np.uint8:
        return cell_means(gray)
    fine = cv2.resize(gray, (4 * PRESENCE_GRID, 4 * PRESENCE_GRID), interpolation=cv2.INTER_AREA)
    return cell_means(fine)


def next_lattice(v: np.ndarray, share: np.ndarray, previous: LatticeState | None) -> LatticeState:
    """The lattice points and offsets of cell means ``v`` (each cell moved a
    ``share`` of the way) given the stream's previous frame (None: the first
    frame, every cell to its nearest point)."""
    nearest = np.round((v - DITHER) / LATTICE_STEP) * LATTICE_STEP + DITHER
    if previous is None:
        return LatticeState(nearest, share * (nearest - v))
    point = np.where(np.abs(v - previous.point) <= HYSTERESIS * LATTICE_STEP, previous.point, nearest)
    change = np.clip(share * (point - v) - previous.offset, -RAMP_PER_FRAME, RAMP_PER_FRAME)
    return LatticeState(point, previous.offset + change)


def cell_inputs(gray: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frame's cell means and the share of the way each cell is moved
    (``gain``: its texture gain map, any grid): what `next_lattice` needs, and
    independent of the stream's earlier frames, so any thread may compute it."""
    v = _cell_means_u8(gray)
    share = np.minimum(FLAT_SHARE + TEXTURE_SHARE * cell_means(gain), 1.0)
    return v, share


def offset_field(offset: np.ndarray, h: int, w: int) -> np.ndarray:
    """The smooth luminance change (float32, h x w) that moves the cell means
    by ``offset``."""
    # einsum, not @: a BLAS call would wake its worker threads, whose spinning
    # costs more CPU than the 65k multiply-adds.
    coeff = np.einsum("ij,j->i", CORRECTION, offset.ravel()).reshape(offset.shape)
    return cv2.resize(_smooth(coeff), (w, h), interpolation=cv2.INTER_LINEAR)


def presence_field(gray: np.ndarray, gain: np.ndarray,
                   previous: LatticeState | None = None) -> tuple[np.ndarray, LatticeState]:
    """The smooth luminance change (float32, frame size) that moves every
    cell mean of ``gray`` onto its lattice point (flat cells part of the
    way), and the lattice state to pass with the stream's next frame;
    ``gain`` is the texture gain map of the frame (any grid)."""
    state = next_lattice(*cell_inputs(gray, gain), previous)
    return offset_field(state.offset, *gray.shape), state


def _smooth(coeff: np.ndarray) -> np.ndarray:
    up = cv2.resize(coeff, (SMOOTH_SIDE, SMOOTH_SIDE), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(up, (0, 0), SMOOTH_SIGMA, borderType=cv2.BORDER_REFLECT)


def _correction() -> np.ndarray:
    """The CORRECTION_STEPS fixed-point steps c <- c + (offset - K c) as one
    matrix, sum_{j <= steps} (I - K)^j, with K the (linear) map from cell
    offsets to the cell means of the smooth field (built once, impulse by
    impulse): the same field for a fraction of the per-frame cost."""
    n = PRESENCE_GRID * PRESENCE_GRID
    k = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n, np.float32)
        e[i] = 1.0
        k[:, i] = cell_means(_smooth(e.reshape(PRESENCE_GRID, PRESENCE_GRID))).ravel()
    step = np.eye(n) - k
    total, power = np.eye(n), np.eye(n)
    for _ in range(CORRECTION_STEPS):
        power = power @ step
        total += power
    return total.astype(np.float32)


CORRECTION = _correction()


def phasors(gray: np.ndarray) -> np.ndarray:
    """One frame's canvas phasors exp(2 pi i v / step), complex PRESENCE_GRID^2.
    Detection sums them over frames (weighted) before presence_statistic:
    the sum is linear, so excerpts can use prefix sums."""
    return np.exp((2j * np.pi / LATTICE_STEP) * cell_means(gray))


def presence_statistic(phasor_sum: np.ndarray, weight: float) -> float:
    """r = |sum_i Z_i conj(D_i)| / (total weight * sqrt(N / 2)), N cells, over
    phasors summed with weights adding up to ``weight``.  Per frame it has
    the Rayleigh tail exp(-r^2 / 2) without the mark; for a weighted sum of
    frames the normaliser assumes the frames' terms fully correlated (the
    worst case: talkface's static backgrounds come close), so its variance
    is at most one frame's (the tail is checked on all shared real footage)."""
    if weight <= 0:
        return 0.0
    z = complex(np.sum(phasor_sum * DITHER_PHASOR))
    return float(abs(z) / (weight * math.sqrt(PRESENCE_GRID**2 / 2.0)))
