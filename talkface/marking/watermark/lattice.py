"""The mark's Fourier coefficients at a given period, and what is read from
them: the sync correlation over every cyclic shift, candidate shifts and the
soft values of the coded bits."""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import maximum_filter

from talkface.marking.watermark.coding import CODED_BITS
from talkface.marking.watermark.key import BAND_HI, BAND_LO, KEY, TILE

SUBPIXEL_OFFSETS = (-0.5, -0.25, 0.0, 0.25, 0.5)  # px, sub-pixel refinement of the sync peak
NOISE_OFFSETS = ((0.5, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.0, -0.5))  # bins, half-way between lattice lines
N_CHANNEL_BANDS = 5  # radial bands over which the channel gain is estimated
MIN_CHANNEL_GAIN = 0.05


def lattice_dft(acc: np.ndarray, py: float, px: float, oy: float = 0.0, ox: float = 0.0) -> np.ndarray:
    """Fourier coefficients of the accumulated residual at the key bins, for
    a pattern of period (py, px) pixels (offset by (oy, ox) bins if given).

    Equivalent to resampling the frame to period TILE, folding all tiles
    into one and taking its FFT, but exact (no interpolation) and cheaper:
    the sum over the frame at the frequencies fx / px, fy / py is separable,
    two small matrix products.
    """
    k = KEY
    h, w = acc.shape
    ux = np.arange(1, int(k.fx.max()) + 1) + ox
    uy = np.arange(int(k.fy.min()), int(k.fy.max()) + 1) + oy
    ax = (-2.0 * np.pi / px) * np.outer(np.arange(w), ux)
    ay = (-2.0 * np.pi / py) * np.outer(uy, np.arange(h))
    a32 = acc.astype(np.float32, copy=False)
    rx = a32 @ np.cos(ax).astype(np.float32) + 1j * (a32 @ np.sin(ax).astype(np.float32))
    m = (np.cos(ay) + 1j * np.sin(ay)) @ rx  # (len(uy), len(ux))
    return m[k.fy - int(k.fy.min()), k.fx - 1]


def bin_values(acc: np.ndarray, py: float, px: float) -> np.ndarray:
    """Phase-only (unit magnitude) coefficients at the key bins."""
    v = lattice_dft(acc, py, px)
    return v / (np.abs(v) + 1e-12)


def whitened(acc: np.ndarray, py: float, px: float) -> np.ndarray:
    """Coefficients at the key bins divided by the noise level around them.

    The noise power is measured half-way between lattice lines (where the
    periodic mark has no energy) and averaged over the NOISE_NEIGHBOURS
    nearest key bins: four samples per bin alone make a noisy divisor.
    """
    p = sum(np.abs(lattice_dft(acc, py, px, oy, ox)) ** 2 for oy, ox in NOISE_OFFSETS) / len(NOISE_OFFSETS)
    return lattice_dft(acc, py, px) / np.sqrt(p[KEY.near].mean(axis=1) + 1e-12)


def aligned(w: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Real part of whitened coefficients with the key phase and the cyclic
    shift removed: positive on sync bins and on bins of a coded 1 when the
    mark is there, symmetric about 0 (random key phases) when it is not."""
    k = KEY
    return np.real(w * np.conj(k.phase) * np.exp(2j * np.pi * (k.fy * dy + k.fx * dx) / TILE))


def sync_surface(z: np.ndarray) -> np.ndarray:
    """Phase-only correlation with the sync pattern at every integer cyclic
    shift, as z-scores: with unit-magnitude bins each value is a sum of
    2*N_SYNC_PAIRS unit cosines, N(0, 1) after dividing by sqrt(2*N_SYNC_PAIRS)
    when the phases are random (no mark)."""
    k = KEY
    idx = k.sync_idx
    g = np.zeros((TILE, TILE), np.complex128)
    prod = z[idx] * np.conj(k.phase[idx])
    g[k.fy[idx] % TILE, k.fx[idx] % TILE] = prod
    g[(-k.fy[idx]) % TILE, (-k.fx[idx]) % TILE] = np.conj(prod)
    return np.real(np.fft.ifft2(g)) * (TILE * TILE / math.sqrt(2 * idx.size))


def sync_search(z: np.ndarray) -> tuple[float, float, float]:
    """Best cyclic shift (dy, dx) of the sync pattern and its z-score."""
    k = KEY
    idx = k.sync_idx
    c = sync_surface(z)
    dy, dx = np.unravel_index(int(np.argmax(c)), c.shape)
    # Sub-pixel refinement around the integer peak.
    best = (float(c[dy, dx]), float(dy), float(dx))
    prod = z[idx] * np.conj(k.phase[idx])
    norm = 2.0 / math.sqrt(2 * idx.size)
    fy, fx = k.fy[idx], k.fx[idx]
    for oy in SUBPIXEL_OFFSETS:
        for ox in SUBPIXEL_OFFSETS:
            ty, tx = dy + oy, dx + ox
            val = norm * float(np.sum(np.real(prod * np.exp(2j * np.pi * (fy * ty + fx * tx) / TILE))))
            if val > best[0]:
                best = (val, ty, tx)
    return best


def _top_shifts(c: np.ndarray, n: int) -> list[tuple[float, float]]:
    """The n highest local maxima of a score over all cyclic shifts."""
    peaks = np.flatnonzero(c == maximum_filter(c, size=3, mode="wrap"))
    top = peaks[np.argsort(c.ravel()[peaks])[::-1][:n]]
    return [(float(i // TILE), float(i % TILE)) for i in top]


def shift_candidates(w: np.ndarray, n: int) -> list[tuple[float, float]]:
    """The n best shifts by ``shift_scores`` (local maxima, best first)."""
    return _top_shifts(shift_scores(w), n)


def shift_scores(w: np.ndarray) -> np.ndarray:
    """How likely each cyclic shift is, from whitened key-bin coefficients.

    The sync correlation plus the payload
    energy (sum over coded bits of their squared soft value, which needs no
    knowledge of the bits), both as z-like scores over every cyclic shift.
    On a weak mark the sync alone (a third of the bins) often ranks the
    true shift below chance peaks; the other two thirds lift it.  One
    batched inverse FFT gives the soft value of every group of bins (sync,
    each coded bit) at every shift.
    """
    k = KEY
    group = k.owner + 1  # 0: sync, 1 + j: coded bit j
    # Half spectrum (all key bins have fx > 0): the inverse real FFT adds
    # the conjugate bins, so soft[g, dy, dx] = sum over the bins i of group g
    # of Re(a_i e^{2 pi i f_i.d / TILE}).
    spec = np.zeros((CODED_BITS + 1, TILE, TILE // 2 + 1), np.complex64)
    spec[group, k.fy % TILE, k.fx] = w * np.conj(k.phase)
    soft = sfft.irfft2(spec, s=(TILE, TILE), axes=(1, 2), overwrite_x=True) * np.float32(TILE * TILE / 2)
    # Null variance of each group's value: sum of |a_i|^2 / 2 (random phases).
    var = np.bincount(group, weights=np.abs(w) ** 2 / 2, minlength=CODED_BITS + 1).astype(np.float32) + 1e-12
    sync_z = soft[0] / math.sqrt(var[0])
    energy = np.einsum("gyx,g->yx", soft[1:] ** 2, 1.0 / var[1:])
    energy_z = (energy - CODED_BITS) / math.sqrt(2 * CODED_BITS)
    return sync_z + energy_z


def soft_bits(x: np.ndarray) -> np.ndarray:
    """Soft values of the coded bits from aligned whitened coefficients.

    Each bin is weighted by the channel gain of its frequency band as seen
    on the sync bins (codecs and rescaling hit high frequencies hardest):
    the log-likelihood ratio of a Gaussian channel up to a common factor.
    It lowers the raw bit error rate by ~30 % compared with phase-only
    values at CRF 35.
    """
    k = KEY
    band = np.minimum(((k.radius - BAND_LO) / (BAND_HI - BAND_LO) * N_CHANNEL_BANDS).astype(int), N_CHANNEL_BANDS - 1)
    sync = k.owner < 0
    gain = np.ones(N_CHANNEL_BANDS)
    for b in range(N_CHANNEL_BANDS):
        sel = sync & (band == b)
        if sel.any():
            gain[b] = max(float(np.mean(x[sel])), MIN_CHANNEL_GAIN)
    sel = ~sync
    return np.bincount(k.owner[sel], weights=(x * gain[band])[sel], minlength=CODED_BITS)
