"""Invisible, verifiable "AI-generated" watermark for talkface frames.

Scheme (see also ``talkface/evaluation/watermark_eval.py`` for the measurements):

* A 48-bit message (8-bit talkface tag, 8-bit version, 16-bit user id, CRC-16)
  is protected with a rate-1/2, constraint-length-7 convolutional code
  (108 coded bits, soft Viterbi decoding).
* One square tile of ``TILE`` x ``TILE`` pixels is built in the Fourier domain:
  every frequency bin of a mid-frequency annulus gets a unit amplitude and a
  pseudo-random phase from a fixed public seed.  A share of the bins carries a
  fixed *sync* pattern, the others carry one coded bit each (phase flipped by
  pi for a 0).  Disjoint bins make every pattern orthogonal to every other at
  every cyclic shift, so finding the sync never depends on the payload.
* The tile is repeated over the whole frame (period scaled with the frame
  size) and added to the luminance with a per-pixel strength from the local
  texture (perceptual masking): flat areas get almost nothing, textured areas
  (hair, edges, background detail) carry the mark.  The mean squared change is
  capped so that PSNR stays above ``PSNR_FLOOR_DB``.
* Detection high-passes every frame, normalises it by local energy and sums
  the frames (the pattern is static in frame coordinates, the moving face is
  not).  The period in x and y (any rescale) is recovered from the
  autocorrelation of the whitened sum, the sum is resampled to the nominal
  period and folded into one tile, and the cyclic shift (any crop) is the
  peak of a phase-only correlation with the sync pattern.  The z-score of
  that peak is the detection statistic; the coded bits are read at that shift
  and Viterbi-decoded, and the CRC and tag must check before anything is
  reported as found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

__all__ = [
    "Payload",
    "Detection",
    "Watermarker",
    "WatermarkReadError",
    "detect_frames",
    "verify_file",
    "FORMAT_VERSION",
    "Z_THRESHOLD",
]

FORMAT_VERSION = 1
TAG = 0x54  # 'T' for talkface: 8 bits that a random decode must also hit
DATA_BITS = 32  # tag(8) | version(8) | user_id(16)
CRC_BITS = 16
MSG_BITS = DATA_BITS + CRC_BITS

# Pattern geometry.  The tile period at the 512 px reference size is 128 px:
# 4 periods across a generated frame still give an autocorrelation peak after
# a 10 % crop or a rescale to 256 px, and 654 frequency bins leave about four
# bins per coded bit (frequency diversity against codec losses) plus a large
# sync pattern whose phase-only correlation does not saturate.
TILE = 128
REF_SIZE = 512
# Annulus of frequencies used, in cycles per tile: 0.055 .. 0.17 cycles/px at
# 512 px.  Measured on H.264 CRF 35, the bins below ~0.05 drown in face
# content and those above ~0.19 are quantised away; the middle survives.
BAND_LO = 7.0
BAND_HI = 22.0
N_SYNC_PAIRS = 220  # conjugate-symmetric bin pairs reserved for the sync pattern
SEED = 0x7A1CFACE  # public key of the pattern; changing it breaks compatibility

# Embedding strength defaults.
DEFAULT_STRENGTH = 3.0  # RMS grey levels of the mark where the texture is strong
MASK_FLOOR = 0.12  # share of the strength kept on perfectly flat areas
TEXTURE_REF = 7.0  # local std (grey levels) at which the full strength is used
PSNR_FLOOR_DB = 40.3  # per-frame cap on the mean squared change (spec: >= 40 dB)

# Detection.  The statistic is the z-score of the sync correlation peak; its
# null distribution is N(0, 1) per tested shift (phase-only correlation over
# 2 * N_SYNC_PAIRS bins with independent uniform phases under the null).  The
# maximum over ~N_TESTS shift/scale hypotheses of a N(0,1) exceeds 6.0 with
# probability about N_TESTS * 1e-9 ~ 4e-5; a valid CRC-16 and the 8-bit tag are
# additionally required (2^-24 for a random decode), so a false "found" needs
# both.  The threshold is checked against the measured null on real footage
# (max z about 4.5, see the evaluation).
Z_THRESHOLD = 6.0
PERIOD_MIN = 40.0  # smallest period searched (px at analysis scale): 512 -> ~160 px
REFINE_STEP = 0.003  # relative period step of the sync-based refinement
# Hypotheses tested per detection: <= 14 periods x 128^2 cyclic shifts x ~4
# effective sub-pixel positions (Bonferroni count for the confidence).
N_TESTS = 14 * TILE * TILE * 4

_CONV_G = (0o133, 0o171)  # NASA standard K=7 rate-1/2 code
_CONV_K = 7


class WatermarkReadError(ValueError):
    """The input file could not be read as an image or a video."""


# ---------------------------------------------------------------------------
# Payload


def _crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT-FALSE over a bit array (MSB first)."""
    crc = 0xFFFF
    for b in bits:
        top = ((crc >> 15) & 1) ^ int(b)
        crc = (crc << 1) & 0xFFFF
        if top:
            crc ^= 0x1021
    return crc


def _int_to_bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def _bits_to_int(bits: np.ndarray) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


@dataclass(frozen=True)
class Payload:
    """What the watermark says: talkface made this, with which version, for whom."""

    version: int  # talkface format/major version, small int (0..255)
    user_id: int = 0  # 0..65535, set with --watermark-id

    def __post_init__(self) -> None:
        if not 0 <= int(self.version) <= 255:
            raise ValueError("version must be in 0..255")
        if not 0 <= int(self.user_id) <= 0xFFFF:
            raise ValueError("user_id must be in 0..65535")

    def to_bits(self) -> np.ndarray:
        """48 bits (uint8 0/1): tag, version, user_id, CRC-16 of the first 32."""
        data = _int_to_bits(TAG, 8) + _int_to_bits(self.version, 8) + _int_to_bits(self.user_id, 16)
        crc = _crc16(np.array(data, np.uint8))
        return np.array(data + _int_to_bits(crc, CRC_BITS), np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "Payload | None":
        """Inverse of ``to_bits``; None unless the tag and the CRC both check."""
        bits = np.asarray(bits).astype(np.uint8).ravel()
        if bits.size != MSG_BITS:
            return None
        if _crc16(bits[:DATA_BITS]) != _bits_to_int(bits[DATA_BITS:]):
            return None
        if _bits_to_int(bits[:8]) != TAG:
            return None
        return cls(version=_bits_to_int(bits[8:16]), user_id=_bits_to_int(bits[16:32]))


@dataclass(frozen=True)
class Detection:
    """Result of a watermark check.

    ``confidence`` is 1 minus a Bonferroni bound on the probability that
    unmarked content gives a sync peak this high (Gaussian tail of the peak
    z-score times ``N_TESTS``), so it is about 0 on unmarked content and
    rises to 1 above the threshold.  ``found`` also needs a decoded payload
    whose tag and CRC check; ``payload`` is None when not found.
    """

    found: bool
    payload: Payload | None
    confidence: float
    frames_used: int
    z_score: float = 0.0  # sync peak z-score (detection statistic)


# ---------------------------------------------------------------------------
# Convolutional code


def _conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 K=7 encoding, terminated with K-1 zeros."""
    state = 0
    out = []
    for b in list(bits) + [0] * (_CONV_K - 1):
        state = ((state << 1) | int(b)) & ((1 << _CONV_K) - 1)
        for g in _CONV_G:
            out.append(bin(state & g).count("1") & 1)
    return np.array(out, np.uint8)


def _viterbi_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ns = 1 << (_CONV_K - 1)
    prev = np.zeros((ns, 2), np.int64)  # the two predecessor states of each state
    outs = np.zeros((ns, 2, 2), np.float64)  # +/-1 symbols emitted on those edges
    inp = np.zeros(ns, np.uint8)  # input bit that leads into each state
    for s in range(ns):
        b = s & 1
        inp[s] = b
        for j, hi in enumerate((0, 1)):
            p = (s >> 1) | (hi << (_CONV_K - 2))
            prev[s, j] = p
            reg = (p << 1) | b
            for k, g in enumerate(_CONV_G):
                outs[s, j, k] = 2.0 * (bin(reg & g).count("1") & 1) - 1.0
    return prev, outs, inp


_VT = _viterbi_tables()


def _viterbi(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Soft-decision Viterbi; soft > 0 means coded bit 1. Returns n_bits bits."""
    prev, outs, inp = _VT
    ns = prev.shape[0]
    metric = np.full(ns, -1e18)
    metric[0] = 0.0
    steps = n_bits + _CONV_K - 1
    choice = np.zeros((steps, ns), np.uint8)
    soft = soft.reshape(steps, 2)
    for t in range(steps):
        cand = metric[prev] + outs @ soft[t]  # (ns, 2)
        j = np.argmax(cand, axis=1)
        choice[t] = j
        metric = cand[np.arange(ns), j]
    s = 0  # terminated trellis ends in state 0
    bits = np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = inp[s]
        s = prev[s, choice[t, s]]
    return bits[:n_bits]


CODED_BITS = 2 * (MSG_BITS + _CONV_K - 1)  # 108


# ---------------------------------------------------------------------------
# The key: frequency bins, phases and their assignment


@dataclass(frozen=True)
class _Key:
    fy: np.ndarray  # (n,) frequency of each half-plane bin, cycles per tile
    fx: np.ndarray
    phase: np.ndarray  # (n,) unit complex pseudo-random phase
    owner: np.ndarray  # (n,) -1 for sync, else index of the coded bit
    sync_idx: np.ndarray
    bit_idx: list  # list of arrays: bins of each coded bit


def _make_key() -> _Key:
    rng = np.random.default_rng(SEED)
    half = TILE // 2
    fys, fxs = [], []
    for fy in range(-half + 1, half):
        for fx in range(0, half):
            # One bin of each conjugate pair (half plane).  Bins on the axes
            # are left out: crop borders, letterboxing and row/column artefacts
            # of codecs put their energy there.
            if fx == 0 or fy == 0:
                continue
            if fx < 0 or (fx == 0 and fy <= 0):
                continue
            r = math.hypot(fx, fy)
            if BAND_LO <= r <= BAND_HI:
                fys.append(fy)
                fxs.append(fx)
    fy = np.array(fys)
    fx = np.array(fxs)
    n = fy.size
    order = rng.permutation(n)
    owner = np.empty(n, np.int64)
    owner[order[:N_SYNC_PAIRS]] = -1
    rest = order[N_SYNC_PAIRS:]
    if rest.size < CODED_BITS:
        raise RuntimeError("band too narrow for the payload")
    owner[rest] = np.arange(rest.size) % CODED_BITS
    phase = np.exp(2j * np.pi * rng.random(n))
    sync_idx = np.flatnonzero(owner < 0)
    bit_idx = [np.flatnonzero(owner == k) for k in range(CODED_BITS)]
    return _Key(fy, fx, phase, owner, sync_idx, bit_idx)


_KEY = _make_key()


def _tile(symbols: np.ndarray) -> np.ndarray:
    """The TILE x TILE pattern for +/-1 coded symbols, zero mean, unit RMS."""
    k = _KEY
    amp = np.ones(k.fy.size)
    own = k.owner >= 0
    amp[own] = symbols[k.owner[own]]
    spec = np.zeros((TILE, TILE), np.complex128)
    spec[k.fy % TILE, k.fx % TILE] = amp * k.phase
    spec[(-k.fy) % TILE, (-k.fx) % TILE] = amp * np.conj(k.phase)
    t = np.real(np.fft.ifft2(spec))
    t /= t.std()
    # Limit rare peaks (Gaussian tails): single bright/dark specks are what a
    # viewer would notice first.
    t = np.clip(t, -2.5, 2.5)
    return (t / t.std()).astype(np.float32)


def _period_for(h: int, w: int) -> float:
    """Pattern period (px) for a frame size: TILE at 512 px, proportional to
    the frame size (so a 1024 px render is marked like an upscaled 512 px
    one), but at least TILE / 2 so small frames keep a usable period."""
    return TILE * max(0.5, min(h, w) / REF_SIZE)


# ---------------------------------------------------------------------------
# Embedding


class Watermarker:
    """Adds the payload's pattern to RGB uint8 frames of any size."""

    def __init__(self, payload: Payload, strength: float = DEFAULT_STRENGTH):
        if strength <= 0:
            raise ValueError("strength must be positive")
        self.payload = payload
        self.strength = float(strength)
        coded = _conv_encode(payload.to_bits())
        self._tile = _tile(2.0 * coded.astype(np.float64) - 1.0)
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        # Allowed mean squared change per frame (PSNR floor), minus the
        # rounding noise of the uint8 output (about 1/12 grey level^2).
        self._mse_cap = 255.0**2 / 10 ** (PSNR_FLOOR_DB / 10) - 1.0 / 12

    def _pattern(self, h: int, w: int) -> np.ndarray:
        key = (h, w)
        pat = self._cache.get(key)
        if pat is None:
            period = _period_for(h, w)
            reps_y = int(math.ceil(h / period)) + 1
            reps_x = int(math.ceil(w / period)) + 1
            big = np.tile(self._tile, (reps_y, reps_x))
            if period != TILE:
                # warpAffine with the exact scale keeps the period exact
                # (resize would round it to the output size).
                s = period / TILE
                m = np.float32([[s, 0, 0], [0, s, 0]])
                pat = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)
            else:
                pat = big[:h, :w]
            pat = np.ascontiguousarray(pat * np.float32(self.strength), np.float32)
            self._cache[key] = pat
        return pat

    def _mask(self, frame: np.ndarray) -> np.ndarray:
        """Per-pixel strength in [MASK_FLOOR, 1] from local texture, full size."""
        h, w = frame.shape[:2]
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        sh, sw = max(1, h // 4), max(1, w // 4)
        small = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
        # Local standard deviation over ~20 px: the contrast-masking proxy.
        mu = cv2.blur(small, (5, 5))
        mu2 = cv2.blur(small * small, (5, 5))
        sd = cv2.sqrt(cv2.max(mu2 - mu * mu, 0.0))
        m = np.clip(sd * np.float32(1.0 / TEXTURE_REF), MASK_FLOOR, 1.0)
        # Cap the mean squared change (pattern has unit RMS and is
        # independent of the mask, so MSE ~ strength^2 * mean(mask^2)).
        mse = self.strength**2 * float(np.mean(m * m))
        if mse > self._mse_cap:
            m *= np.float32(math.sqrt(self._mse_cap / mse))
        return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)

    def embed(self, frame: np.ndarray) -> np.ndarray:
        """Return a marked copy of an HxWx3 uint8 RGB frame."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError("expected an HxWx3 uint8 RGB frame")
        h, w = frame.shape[:2]
        d = cv2.multiply(self._mask(frame), self._pattern(h, w))
        # Same change on R, G and B = a luminance-only change: chroma is
        # subsampled and quantised harder by codecs, and luminance noise is
        # less visible than coloured noise.  Positive and negative parts as
        # saturating uint8 add/subtract is the fastest exact route in OpenCV.
        pos = cv2.convertScaleAbs(cv2.max(d, 0.0))
        neg = cv2.convertScaleAbs(cv2.min(d, 0.0))
        out = cv2.add(frame, cv2.merge([pos, pos, pos]))
        return cv2.subtract(out, cv2.merge([neg, neg, neg]))


# ---------------------------------------------------------------------------
# Detection


def _analysis_factor(h: int, w: int) -> int:
    """Integer downscale applied before analysis: 1080p frames are analysed at
    half size (4x cheaper; a mark upscaled to 1080p keeps a period > 128 px)."""
    return max(1, int(round(min(h, w) / 720)))


def _residual(frame: np.ndarray) -> np.ndarray:
    """High-passed luminance divided by its local RMS (at the analysis scale).

    The mark is hidden where texture is strong and so is the content noise;
    dividing by the local energy gives every region about the same
    signal-to-noise ratio, which is the matched weighting for a
    texture-masked mark.
    """
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    h, w = gray.shape
    k = _analysis_factor(h, w)
    if k > 1:
        gray = cv2.resize(gray, (w // k, h // k), interpolation=cv2.INTER_AREA)
        h, w = gray.shape
    g = gray.astype(np.float32)
    hp = cv2.subtract(g, cv2.GaussianBlur(g, (0, 0), 3.0))
    # Local energy on an 8x coarser grid: a smooth envelope is all we need
    # and it is 3x cheaper than blurring at full size.
    e = cv2.resize(cv2.multiply(hp, hp), (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    e = cv2.GaussianBlur(e, (0, 0), 1.0)
    e = cv2.resize(cv2.sqrt(e + 1.0), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(hp, e)


def _comb_period(r: np.ndarray, lo: float, hi: float) -> list[float]:
    """Best few periods along one axis from an autocorrelation line r[lag]."""
    n = r.size
    cands = np.arange(lo, hi, 0.05)
    kmax = int((n - 1) // lo)
    lags = cands[:, None] * np.arange(1, kmax + 1)[None, :]
    valid = lags <= n - 1
    v = np.interp(np.where(valid, lags, 0.0), np.arange(n), r) * valid
    # Sum over harmonics / sqrt(count): a z-like comb score that prefers the
    # fundamental over its multiples (which hit a subset of the same peaks).
    score = v.sum(axis=1) / np.sqrt(np.maximum(valid.sum(axis=1), 1))
    out: list[float] = []
    order = np.argsort(score)[::-1]
    for i in order:
        p = cands[i]
        if all(abs(p - q) > 0.03 * q for q in out):
            out.append(float(p))
        if len(out) == 3:
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
        w = float(k)
        num += w * k * pos
        den += w * k * k
    return num / den if den > 0 else p


def _white_power(acc: np.ndarray) -> np.ndarray:
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
    pw = np.minimum(p / (cv2.blur(p, (9, 9)) + 1e-12), 20.0)
    # Axes and the lowest frequencies carry borders and content, not the mark.
    pw[:3, :] = 0
    pw[-2:, :] = 0
    pw[:, :3] = 0
    return pw


def _template_score(pw: np.ndarray, h: int, w: int, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Mean whitened power at the key bins for candidate periods (py, px).

    The power spectrum does not depend on the shift (crop), so the period can
    be searched alone; using only the bins the mark occupies ignores periodic
    content (codec block grids, textiles) that an autocorrelation would see.
    """
    from scipy.ndimage import map_coordinates

    k = _KEY
    fy = k.fy[None, :] * (h / py[:, None])
    fx = k.fx[None, :] * (w / px[:, None])
    fy = np.where(fy < 0, fy + h, fy)
    v = map_coordinates(pw, [fy.ravel(), fx.ravel()], order=1, mode="constant", cval=0.0)
    return v.reshape(fy.shape).mean(axis=1)


def _template_peaks(pw: np.ndarray, h: int, w: int, lo: float, hi: float, n: int = 3) -> list[float]:
    """The n best isotropic periods in [lo, hi] (0.2 % grid, >= 2 % apart)."""
    if hi <= lo:
        return []
    ps = np.exp(np.arange(math.log(lo), math.log(hi), 0.002))
    sc = _template_score(pw, h, w, ps, ps)
    out: list[float] = []
    for i in np.argsort(sc)[::-1]:
        if all(abs(ps[i] - q) > 0.02 * q for q in out):
            out.append(float(ps[i]))
            if len(out) == n:
                break
    return out


def _template_refine(pw: np.ndarray, h: int, w: int, py: float, px: float) -> tuple[float, float]:
    """Local 2-D (anisotropic) refinement of a period estimate, +-3 %."""
    m = 1.0 + np.arange(-0.03, 0.0301, 0.004)
    gy, gx = np.meshgrid(py * m, px * m, indexing="ij")
    sc = _template_score(pw, h, w, gy.ravel(), gx.ravel())
    i = int(np.argmax(sc))
    return float(gy.ravel()[i]), float(gx.ravel()[i])


def _fold(acc: np.ndarray, py: float, px: float) -> np.ndarray:
    """Resample so that the period is TILE and sum all tiles into one."""
    h, w = acc.shape
    sy, sx = TILE / py, TILE / px
    src = acc
    if min(sy, sx) < 0.75:
        # Downsampling: low-pass first so broadband noise does not alias.
        src = cv2.GaussianBlur(acc, (0, 0), sigmaX=0.5 / sx, sigmaY=0.5 / sy)
    oh = int(math.ceil(h * sy / TILE)) * TILE
    ow = int(math.ceil(w * sx / TILE)) * TILE
    m = np.float32([[sx, 0, 0], [0, sy, 0]])
    b = cv2.warpAffine(src, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return b.reshape(oh // TILE, TILE, ow // TILE, TILE).sum(axis=(0, 2))


def _bin_values(tile: np.ndarray) -> np.ndarray:
    """Phase-only (unit magnitude) spectrum of the folded tile at the key bins."""
    f = np.fft.fft2(tile)
    v = f[_KEY.fy % TILE, _KEY.fx % TILE]
    return v / (np.abs(v) + 1e-12)


def _sync_search(z: np.ndarray) -> tuple[float, float, float]:
    """Best cyclic shift (dy, dx) of the sync pattern and its z-score.

    Phase-only correlation: with unit-magnitude bins, the correlation at any
    shift is a sum of 2*N_SYNC_PAIRS unit cosines, N(0, 1) after dividing by
    sqrt(2*N_SYNC_PAIRS) when the phases are random (no mark).
    """
    k = _KEY
    idx = k.sync_idx
    g = np.zeros((TILE, TILE), np.complex128)
    prod = z[idx] * np.conj(k.phase[idx])
    g[k.fy[idx] % TILE, k.fx[idx] % TILE] = prod
    g[(-k.fy[idx]) % TILE, (-k.fx[idx]) % TILE] = np.conj(prod)
    c = np.real(np.fft.ifft2(g)) * TILE * TILE
    dy, dx = np.unravel_index(int(np.argmax(c)), c.shape)
    # Sub-pixel refinement around the integer peak.
    best = (float(c[dy, dx]), float(dy), float(dx))
    offs = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    fy, fx = k.fy[idx], k.fx[idx]
    for oy in offs:
        for ox in offs:
            ty, tx = dy + oy, dx + ox
            val = 2.0 * float(np.sum(np.real(prod * np.exp(2j * np.pi * (fy * ty + fx * tx) / TILE))))
            if val > best[0]:
                best = (val, ty, tx)
    return best[0] / math.sqrt(2 * idx.size), best[1], best[2]


def _soft_bits(z: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Per coded bit correlation at the found shift, normalised to N(0,1) noise."""
    k = _KEY
    rot = z * np.conj(k.phase) * np.exp(2j * np.pi * (k.fy * dy + k.fx * dx) / TILE)
    re = np.real(rot)
    own = k.owner
    sel = own >= 0
    sums = np.bincount(own[sel], weights=re[sel], minlength=CODED_BITS)
    counts = np.bincount(own[sel], minlength=CODED_BITS)
    return sums / np.sqrt(counts / 2.0)


def _confidence(zs: float) -> float:
    tail = 0.5 * math.erfc(zs / math.sqrt(2.0))
    return float(max(0.0, 1.0 - N_TESTS * tail))


def _analyse(acc: np.ndarray, frames: int, factor: int = 1) -> Detection:
    """Find period, shift and payload in an accumulated residual.

    ``factor`` is the analysis downscale of the frames (see _analysis_factor).
    """
    h, w = acc.shape
    # Untouched geometry first: crops and re-encodes keep the period exactly.
    # A crop changes the frame size but not the period, so both the period of
    # a 512 px render and the one implied by the current size are tried.
    p_ref = TILE / factor
    p_size = _period_for(h * factor, w * factor) / factor
    exact: list[tuple[float, float]] = [(p_ref, p_ref), (p_size, p_size)]
    # Rescaled content: periods from the key-bin template on the power
    # spectrum (isotropic search), plus an anisotropic candidate from the
    # autocorrelation comb along each axis, refined on the template.
    pw = _white_power(acc)
    lo, hi = PERIOD_MIN, min(h, w) / 1.5  # at least 1.5 periods in the frame
    estimated: list[tuple[float, float]] = [(p, p) for p in _template_peaks(pw, h, w, lo, hi)]
    ac = np.fft.irfft2(pw, s=(h, w))
    rows = ac[0, : w // 2 + 1] / (ac[0, 0] + 1e-12)
    cols = ac[: h // 2 + 1, 0] / (ac[0, 0] + 1e-12)
    if w / 2.0 > lo + 1 and h / 2.0 > lo + 1:
        px = _comb_period(rows, lo, w / 2.0)[0]
        py = _comb_period(cols, lo, h / 2.0)[0]
        estimated.append(_template_refine(pw, h, w, py, px))
    hyps = [(py, px) for py, px in exact]
    for py, px in estimated:
        # Estimates are good to ~0.3 %; the sync correlation tolerates about
        # +-0.5 %, so three multipliers cover the residual error.
        hyps += [(py * m, px * m) for m in (1.0 - REFINE_STEP, 1.0, 1.0 + REFINE_STEP)]
    best = (-np.inf, None, 0.0, 0.0)
    seen: list[tuple[float, float]] = []
    for py, px in hyps:
        if any(abs(py - a) < 0.001 * a and abs(px - b) < 0.001 * b for a, b in seen):
            continue
        seen.append((py, px))
        zv = _bin_values(_fold(acc, py, px))
        zs, dy, dx = _sync_search(zv)
        if zs > best[0]:
            best = (zs, zv, dy, dx)
    zs, zv, dy, dx = best
    payload = None
    if zs >= Z_THRESHOLD:
        bits = _viterbi(_soft_bits(zv, dy, dx), MSG_BITS)
        payload = Payload.from_bits(bits)
    return Detection(
        found=payload is not None, payload=payload, confidence=_confidence(zs), frames_used=frames, z_score=float(zs)
    )


class _Accumulator:
    """Sums per-frame residuals, one sum per frame size."""

    def __init__(self) -> None:
        self.sums: dict[tuple[int, int], np.ndarray] = {}
        self.counts: dict[tuple[int, int], int] = {}
        self.factors: dict[tuple[int, int], int] = {}

    def add(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError("frames must be uint8")
        r = _residual(frame)
        key = r.shape
        self.factors[key] = _analysis_factor(*frame.shape[:2])
        if key in self.sums:
            self.sums[key] += r
            self.counts[key] += 1
        else:
            self.sums[key] = r
            self.counts[key] = 1

    def result(self) -> Detection:
        if not self.sums:
            return Detection(False, None, 0.0, 0)
        key = max(self.counts, key=self.counts.__getitem__)
        acc = self.sums[key]
        if min(acc.shape) < 2 * 0.35 * TILE:
            return Detection(False, None, 0.0, self.counts[key])
        return _analyse(acc, self.counts[key], self.factors[key])


def detect_frames(frames: Iterable[np.ndarray]) -> Detection:
    """Detect the watermark in RGB uint8 frames of any size (evidence is summed)."""
    acc = _Accumulator()
    for f in frames:
        acc.add(f)
    return acc.result()


# ---------------------------------------------------------------------------
# Files

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise WatermarkReadError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _iter_video(path: Path, max_seconds: float) -> Iterator[np.ndarray]:
    import av

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
                yield frame.to_ndarray(format="rgb24")
        except WatermarkReadError:
            raise
        except Exception as exc:
            raise WatermarkReadError(f"cannot decode {path}: {exc}") from exc


def verify_file(path: str | Path, max_seconds: float = 10.0) -> Detection:
    """Check an image or a video file (the first ``max_seconds`` of it)."""
    path = Path(path)
    if not path.is_file():
        raise WatermarkReadError(f"no such file: {path}")
    if path.suffix.lower() in _IMAGE_EXT:
        return detect_frames([_read_image(path)])
    acc = _Accumulator()
    for f in _iter_video(path, max_seconds):
        acc.add(f)
    if not acc.counts:
        raise WatermarkReadError(f"no decodable frames in {path}")
    return acc.result()
