"""Period estimation for rescaled content, from the whitened power spectrum
(shift-invariant, so crops do not matter) and the autocorrelation."""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import map_coordinates

from talkface.marking.watermark.key import KEY

COMB_STEP = 0.05  # px between candidate periods of the autocorrelation comb
COMB_CANDIDATES = 3
DISTINCT_FRACTION = 0.03  # comb candidates at least this far apart (relative)
WHITEN_BOX = 9  # bins of the smoothing box of the spectral envelope
WHITE_CAP = 20.0  # whitened power is capped here (one strong line must not dominate)
LOG_STEP = 0.005  # coarse template grid, relative period step
TEMPLATE_DISTINCT = 0.02  # template peaks at least this far apart (relative)
FINE_SPAN = 0.005  # fine template grid: +- this around each coarse peak ...
FINE_STEP = 0.001  # ... at this step
ANISO_SPAN = 0.03  # anisotropic refinement: +- this per axis ...
ANISO_STEP = 0.004  # ... at this step


def comb_period(r: np.ndarray, lo: float, hi: float) -> list[float]:
    """Best few periods along one axis from an autocorrelation line r[lag]."""
    n = r.size
    cands = np.arange(lo, hi, COMB_STEP)
    kmax = int((n - 1) // lo)
    lags = cands[:, None] * np.arange(1, kmax + 1)[None, :]
    valid = lags <= n - 1
    v = np.interp(np.where(valid, lags, 0.0), np.arange(n), r) * valid
    # Sum over harmonics / sqrt(count): a z-like comb score that prefers the
    # fundamental over its multiples (which hit a subset of the same peaks).
    score = v.sum(axis=1) / np.sqrt(np.maximum(valid.sum(axis=1), 1))
    out: list[float] = []
    for i in np.argsort(score)[::-1]:
        p = cands[i]
        if all(abs(p - q) > DISTINCT_FRACTION * q for q in out):
            out.append(float(p))
        if len(out) == COMB_CANDIDATES:
            break
    return [_refine_period(r, p) for p in out]


def _refine_period(r: np.ndarray, p: float) -> float:
    """Least-squares period from parabolic peak positions at each harmonic."""
    n = r.size
    num = den = 0.0
    for k in range(1, int((n - 2) // p) + 1):
        c = int(round(k * p))
        lo, hi = max(1, c - 2), min(n - 2, c + 2)
        if lo > hi:
            break
        i = lo + int(np.argmax(r[lo : hi + 1]))
        if i <= 0 or i >= n - 1:
            continue
        a, b, cc = r[i - 1], r[i], r[i + 1]
        den_p = a - 2 * b + cc
        off = 0.5 * (a - cc) / den_p if den_p < 0 else 0.0
        pos = i + float(np.clip(off, -0.5, 0.5))
        num += k * k * pos
        den += k * k * k
    return num / den if den > 0 else p


def white_power(acc: np.ndarray) -> np.ndarray:
    """Whitened power spectrum (rfft2 layout) of the accumulated residual.

    Dividing by a smooth spectral envelope makes the sharp lines of the
    periodic mark stand out over broadband content; the Hann window keeps
    each line within ~2 bins when the frame holds a non-integer number of
    periods (crops, rescales).
    """
    h, w = acc.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    f = np.fft.rfft2((acc - acc.mean()) * win)
    p = (f.real**2 + f.imag**2).astype(np.float32)
    pw = np.minimum(p / (cv2.blur(p, (WHITEN_BOX, WHITEN_BOX)) + 1e-12), WHITE_CAP)
    # Axes and the lowest frequencies carry borders and content, not the mark.
    pw[:3, :] = 0
    pw[-2:, :] = 0
    pw[:, :3] = 0
    return pw


def axis_periods(pw: np.ndarray, h: int, w: int, lo: float) -> tuple[float, float] | None:
    """Best period along each axis from the autocorrelation comb, or None
    when the frame is too small for it."""
    if w / 2.0 <= lo + 1 or h / 2.0 <= lo + 1:
        return None
    ac = np.fft.irfft2(pw, s=(h, w))
    rows = ac[0, : w // 2 + 1] / (ac[0, 0] + 1e-12)
    cols = ac[: h // 2 + 1, 0] / (ac[0, 0] + 1e-12)
    return comb_period(cols, lo, h / 2.0)[0], comb_period(rows, lo, w / 2.0)[0]


def template_score(pw: np.ndarray, h: int, w: int, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Mean whitened power at the key bins for candidate periods (py, px).

    The power spectrum does not depend on the shift (crop), so the period can
    be searched alone; using only the bins the mark occupies ignores periodic
    content (codec block grids, textiles) that an autocorrelation would see.
    """
    k = KEY
    fy = k.fy[None, :] * (h / py[:, None])
    fx = k.fx[None, :] * (w / px[:, None])
    fy = np.where(fy < 0, fy + h, fy)
    v = map_coordinates(pw, [fy.ravel(), fx.ravel()], order=1, mode="constant", cval=0.0)
    return v.reshape(fy.shape).mean(axis=1)


def template_peaks(pw: np.ndarray, h: int, w: int, lo: float, hi: float, n: int = 3) -> list[float]:
    """The n best isotropic periods in [lo, hi] (>= 2 % apart).

    A 0.5 % grid finds the peaks (they are ~1 % wide), a 0.1 % grid around
    each one places it.
    """
    if hi <= lo:
        return []
    ps = np.exp(np.arange(math.log(lo), math.log(hi), LOG_STEP))
    # All key bins: every other one (half the cost) ranked a weak mark's true
    # period 5th to 11th on smooth, cropped and rescaled CRF 28 excerpts.
    sc = template_score(pw, h, w, ps, ps)
    coarse: list[float] = []
    for i in np.argsort(sc)[::-1]:
        if all(abs(ps[i] - q) > TEMPLATE_DISTINCT * q for q in coarse):
            coarse.append(float(ps[i]))
            if len(coarse) == n:
                break
    out = []
    for p in coarse:
        fine = p * (1.0 + np.arange(-FINE_SPAN, FINE_SPAN + 1e-5, FINE_STEP))
        out.append(float(fine[int(np.argmax(template_score(pw, h, w, fine, fine)))]))
    return out


def template_refine(pw: np.ndarray, h: int, w: int, py: float, px: float) -> tuple[float, float]:
    """Local 2-D (anisotropic) refinement of a period estimate, +-3 %."""
    m = 1.0 + np.arange(-ANISO_SPAN, ANISO_SPAN + 1e-4, ANISO_STEP)
    gy, gx = np.meshgrid(py * m, px * m, indexing="ij")
    sc = template_score(pw, h, w, gy.ravel(), gx.ravel())
    i = int(np.argmax(sc))
    return float(gy.ravel()[i]), float(gx.ravel()[i])
