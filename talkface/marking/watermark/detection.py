"""Detection: sum high-passed frames, find the pattern's period and shift, read
the payload (Viterbi on a strong sync peak, else the payload test)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from talkface.marking.watermark.coding import viterbi
from talkface.marking.watermark.confirm import Shift, confirm_payload
from talkface.marking.watermark.key import TILE, period_for
from talkface.marking.watermark.lattice import (
    aligned,
    bin_values,
    shift_candidates,
    shift_scores,
    soft_bits,
    sync_search,
    whitened,
)
from talkface.marking.watermark.mask import expected_amplitude
from talkface.marking.watermark.payload import FORMAT_VERSION, USER_ID_BITS, Payload
from talkface.marking.watermark.presence import R_THRESHOLD, phasors, presence_statistic
from talkface.marking.watermark.spectrum import axis_periods, template_peaks, template_refine, white_power

# Detection threshold.  The statistic z is the sync correlation peak over
# all tested periods and cyclic shifts.  Per hypothesis it is N(0, 1) on
# unmarked content (phase-only correlation over 2 * N_SYNC_PAIRS bins whose
# phases are then independent and uniform), so the peak follows the law of a
# maximum of ~N_TESTS Gaussians.  Measured on the shared real footage (every
# frame alone, every 2 s excerpt at 1 s steps, every whole file, every image
# as is, rescaled and cropped: 1872 checks): median 4.35, 99th percentile
# 5.23, 99.9th 5.75, maximum 6.00 (a frame with a star-spangled flag behind
# the face).  At 6.5 the Bonferroni bound N_TESTS * Q(6.5) is 2e-5 per
# check, and a Gumbel fit of the measured null gives ~9e-5.  Above the
# threshold the payload is decoded, and "found" further needs the 8-bit tag
# and the CRC-16 to check (2^-24 for a random decode): ~1e-12 per check.
# The payload test below adds its own bounds (6.6e-7 and 3.4e-7 per check
# with two format versions), and the presence carrier 1.5e-8, so a false
# "found" is bounded by ~1.3e-6 per check overall, not 1e-12.
Z_THRESHOLD = 6.5
# Smallest period searched (px at analysis scale): the top key frequency,
# 22 cycles per period, must stay below Nyquist (0.5 cycles/px), so 48 px,
# i.e. a 512 px render shrunk to 192 px.
PERIOD_MIN = 48.0
MIN_PERIODS_IN_FRAME = 1.5  # a period is searched only if the frame holds this many
REFINE_STEP = 0.003  # relative period step of the sync-based refinement
SAME_PERIOD = 0.001  # periods closer than this (relative) are one hypothesis
# Hypotheses tested per detection: <= 8 periods x 128^2 cyclic shifts x ~4
# effective sub-pixel positions (Bonferroni count for the confidence).
N_TESTS = 8 * TILE * TILE * 4
# Decode-confirmed detection (see confirm.py).  Below Z_THRESHOLD, or when
# the Viterbi decode fails its checks, every payload talkface can write
# (2^16 user ids per version) is tested at the N_DECODE_SHIFTS strongest
# shifts (sync plus payload energy) of the best and the untouched periods;
# one hypothesis is a (period, shift, payload) triple, so the Bonferroni
# count is N_TESTS * 2^16 * versions.  N_DECODE_TESTS * Q(8.5) = 3.3e-7 per
# check and format version (6.6e-7 with two): a false "found" has to stay far rarer than a false sync peak (8.0,
# at 2e-5, would find 4 more of 14 cropped CRF 35 excerpts of the smoothest
# clip).  Measured on the shared real footage (the 1872 checks above):
# payload z median 5.62, 99th percentile 6.60, maximum 6.93; at shift 0:
# median 2.76, maximum 5.28.
N_DECODE_SHIFTS = 8
N_DECODE_TESTS = N_TESTS * (1 << USER_ID_BITS) * FORMAT_VERSION
Z_DECODE_THRESHOLD = 8.5
# A re-encoded render keeps its geometry: period TILE (at the render's size)
# and shift 0; rescaled as a whole, the period of its new size and the
# shift of rescale_shift.  That hypothesis gets its own threshold (weighted Bonferroni):
# 2 periods x 2^16 payloads x versions, N_EXACT_TESTS * Q(7.0) = 1.7e-7 per
# check and version.
N_EXACT_TESTS = 2 * (1 << USER_ID_BITS) * FORMAT_VERSION
Z_EXACT_THRESHOLD = 7.0
# Scale search (crop, then rescale to a size of its own: the period is the
# size's period divided by the kept fraction, unknown).  When nothing else
# found a payload, periods from the size's own up to SCAN_MAX_RATIO times it
# (crops up to ~23 %) are scanned every SCAN_STEP (the lattice DFT stays
# coherent within ~0.3 % over 3.6 periods), each scored by its best shift
# (sync plus payload energy); the SCAN_KEEP best periods get the payload
# test.  Why: after a crop, a rescale and CRF 35 the power-spectrum template
# ranks the true period nowhere near the top, although the payload test at
# that period and its best shift gives z 8 to 17.  Bonferroni: every scanned
# period x 128^2 shifts x 4 sub-pixel positions x 2^16 payloads;
# N_SCAN_TESTS * Q(8.8) = 2.6e-7 per check and version.
SCAN_MAX_RATIO = 1.3
SCAN_STEP = 0.004  # relative
SCAN_KEEP = 3
N_SCAN_PERIODS = int(math.ceil(math.log(SCAN_MAX_RATIO) / SCAN_STEP)) + 1
N_SCAN_TESTS = N_SCAN_PERIODS * TILE * TILE * 4 * (1 << USER_ID_BITS) * FORMAT_VERSION
Z_SCAN_THRESHOLD = 8.8
# Presence carrier and tile at the rendered geometry together (combined_tail):
# a false "found" by the combination is bounded by this per check.
COMBINED_MAX_P = 2.7e-7
# Frames larger than this (shorter side, px) are analysed at an integer
# downscale: 1080p at half size (4x cheaper; a mark upscaled to 1080p keeps
# a period > 128 px).
ANALYSIS_SIDE = 720
RESIDUAL_SIGMA = 3.0  # px, the high-pass of the detector
ENVELOPE_GRID = 8  # local energy and expected amplitude on an 8x coarser grid
# Key frames (I-frames) of a re-encoded file carry far more of the mark than
# the P and B frames after them: the encoder codes them at a lower QP, and a
# P frame predicts moving texture from the previous frame, shifted with the
# content, so the static mark is lost there to the residual's quantiser.
# Measured at 256 px + CRF 35 (4 renders, true payload at the true
# geometry): the I-frame alone z 7.0-9.6, a P frame 10-20 frames later 2-5,
# the plain sum of 50 frames 6.7-8.1; with the key frame weighted 32x the
# sum gives 7.5-9.2.  Weights are chosen from the decoder's frame types, never
# from the content, so every statistic keeps its null law (they are
# self-normalised).
KEY_FRAME_WEIGHT = 32.0

Period = tuple[float, float]


@dataclass(frozen=True)
class Detection:
    """Result of a watermark check.

    ``confidence`` is ``1 - p`` where ``p`` is the smallest of three
    Bonferroni bounds on the chance that unmarked content scores this high
    (Q: Gaussian upper tail): ``N_TESTS * Q(z_score)`` for the sync peak,
    ``N_DECODE_TESTS * Q(payload_z)`` for the best payload hypothesis over
    the searched shifts and ``N_EXACT_TESTS * Q(exact_z)`` for the one at
    shift 0.  It is 0 for typical unmarked content but can reach ~0.9 on
    its top 1 %, so read it as evidence only near 1.
    ``found`` (a talkface mark is present) needs a payload decoded above
    Z_THRESHOLD with tag and CRC checking, or else the best of all
    2^16 * FORMAT_VERSION payloads with ``exact_z >= Z_EXACT_THRESHOLD``,
    ``payload_z >= Z_DECODE_THRESHOLD`` or ``scan_z >= Z_SCAN_THRESHOLD``
    (the bounds hold for the best payload, whichever it is), or the
    presence carrier's ``presence_z >= presence.R_THRESHOLD`` (its bound:
    exp(-presence_z^2 / 2)).  ``payload`` is
    that payload when it is readable, i.e. clearly ahead of every other one
    (confirm.MAX_ODDS_AGAINST); a found mark of a heavily degraded file can
    have ``payload`` None.  ``frames_used`` counts the frames summed (those
    of the most common size).
    """

    found: bool
    payload: Payload | None
    confidence: float
    frames_used: int
    z_score: float = 0.0  # sync peak z-score (detection statistic)
    payload_z: float = 0.0  # best payload hypothesis z-score (0 when the sync path decoded)
    exact_z: float = 0.0  # the same at the rendered shift of the untouched-geometry periods
    scan_z: float = 0.0  # the same over the scale search (0 unless it ran)
    presence_z: float = 0.0  # the presence carrier's statistic (presence.py; format 2)


def analysis_factor(h: int, w: int) -> int:
    """Integer downscale applied before analysis (see ANALYSIS_SIDE)."""
    return max(1, int(round(min(h, w) / ANALYSIS_SIDE)))


def residual(frame: np.ndarray) -> np.ndarray:
    """High-passed luminance, weighted for detection (at the analysis scale).

    Low frequencies (faces, shading) carry no mark and most of the energy,
    so they are removed; what is left is weighted per region by expected
    mark amplitude / local noise power.
    """
    gray = gray_of(frame)
    h, w = gray.shape
    k = analysis_factor(h, w)
    if k > 1:
        gray = cv2.resize(gray, (w // k, h // k), interpolation=cv2.INTER_AREA)
        h, w = gray.shape
    g = gray.astype(np.float32)
    hp = cv2.subtract(g, cv2.GaussianBlur(g, (0, 0), RESIDUAL_SIGMA))
    grid = (max(1, w // ENVELOPE_GRID), max(1, h // ENVELOPE_GRID))
    # Local energy on a coarser grid: a smooth envelope is all we need and
    # it is 3x cheaper than blurring at full size.
    e = cv2.resize(cv2.multiply(hp, hp), grid, interpolation=cv2.INTER_AREA)
    e = cv2.GaussianBlur(e, (0, 0), 1.0)
    # Matched weighting: expected mark amplitude a(x) (the embedder's
    # texture mask, recomputed from the received frame) over the local noise
    # power.  Smooth regions carry almost no mark and are muted; busy ones
    # carry more mark but also more content noise.
    a = cv2.resize(expected_amplitude(gray), grid, interpolation=cv2.INTER_AREA)
    wgt = cv2.divide(a, e + 1.0)
    return cv2.multiply(hp, cv2.resize(wgt, (w, h), interpolation=cv2.INTER_LINEAR))


def gray_of(frame: np.ndarray) -> np.ndarray:
    """Luminance of an RGB frame (a 2-D frame is taken as luminance)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def gaussian_tail(z: float) -> float:
    """Q(z): the upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def combined_tail(zr: float, zx: float) -> float:
    """Fisher's combination of the presence carrier's p-value exp(-zr^2 / 2)
    and the tile's at the rendered geometry (Bonferroni N_EXACT_TESTS Q(zx)):
    the two look at disjoint parts of the picture (cell means, high-passed
    detail), so under no mark they are treated as independent, and
    P(p1 p2 <= t) = t (1 - ln t).  Why: at 256 px + CRF 35 without a key
    frame each is often just under its own threshold while both are high."""
    ln_p = -0.5 * zr * zr + math.log(min(1.0, N_EXACT_TESTS * gaussian_tail(zx)) + 1e-300)
    return math.exp(ln_p) * (1.0 - ln_p)


def _confidence(zs: float, zp: float, zx: float, zc: float, zr: float) -> float:
    p = min(N_TESTS * gaussian_tail(zs), N_DECODE_TESTS * gaussian_tail(zp), N_EXACT_TESTS * gaussian_tail(zx),
            N_SCAN_TESTS * gaussian_tail(zc), math.exp(-0.5 * zr * zr), combined_tail(zr, zx))
    return float(max(0.0, 1.0 - p))


def rescale_shift(period: float, p_ref: float) -> float:
    """Cyclic shift (tile units, both axes) of a 512 px render's pattern after
    a rescale to the size whose period is ``period``.

    Resamplers align pixel centres, not corners: pixel i of the new size
    samples the render at (i + 0.5) * r - 0.5 with r = p_ref / period, so the
    pattern appears shifted by -0.5 * (r - 1) tile units (-0.5 at 256 px,
    about a third of a pixel of phase error at the highest key frequency
    when shift 0 is tested instead).
    """
    return -0.5 * (p_ref / period - 1.0)


def _payload_test(acc: np.ndarray, period: Period, shift: Shift, exact: dict[Period, Shift]) -> tuple[float, float, Payload | None]:
    """Decode-confirmed detection for a weak or undecodable mark.

    Every payload is tested (see confirm_payload) at the best period (its
    refined sync peak first, then the strongest shifts by sync and payload
    energy) and at the untouched-geometry periods, where a weak mark's own
    sync peak can lose to a chance peak at some estimated period.  At each of
    those periods, the shift of the frame as rendered (only re-encoded, or
    rescaled as a whole: see rescale_shift) is also a hypothesis of its own
    with its own share of the false-alarm budget (weighted Bonferroni):
    2 * 2^16 payloads rather than every shift.
    Returns (payload z over the search, payload z at the rendered shift, payload or None).
    """
    zp = zx = 0.0
    best: Payload | None = None
    best_exact: Payload | None = None
    for i, q in enumerate(dict.fromkeys([period, *exact])):
        w = whitened(acc, *q)
        shifts = shift_candidates(w, N_DECODE_SHIFTS)
        z, candidate = confirm_payload(w, [shift] + shifts if i == 0 else shifts)
        if z > zp:
            zp, best = z, candidate
        if q in exact:
            z, candidate = confirm_payload(w, [exact[q]])
            if z > zx:
                zx, best_exact = z, candidate
    if zx >= Z_EXACT_THRESHOLD:
        return zp, zx, best_exact
    return zp, zx, best if zp >= Z_DECODE_THRESHOLD else None


def _scale_search(acc: np.ndarray, p_size: float) -> tuple[float, Payload | None]:
    """The payload test at the best periods of a scan over crop ratios (see
    SCAN_MAX_RATIO); returns (z, payload or None below Z_SCAN_THRESHOLD)."""
    h, w = acc.shape
    periods = p_size * np.exp(SCAN_STEP * np.arange(N_SCAN_PERIODS))
    scored = []
    for p in periods[periods <= min(h, w) / MIN_PERIODS_IN_FRAME]:
        coeffs = whitened(acc, p, p)
        scored.append((float(shift_scores(coeffs).max()), float(p), coeffs))
    scored.sort(key=lambda t: t[0], reverse=True)
    best: tuple[float, Payload | None] = (0.0, None)
    for _, _, coeffs in scored[:SCAN_KEEP]:
        z, candidate = confirm_payload(coeffs, shift_candidates(coeffs, N_DECODE_SHIFTS))
        if z > best[0]:
            best = (z, candidate)
    return best if best[0] >= Z_SCAN_THRESHOLD else (best[0], None)  # payload None also when unreadable


def _estimated_periods(acc: np.ndarray) -> list[Period]:
    """Rescaled content: periods from the key-bin template on the power
    spectrum (isotropic search), plus an anisotropic candidate from the
    autocorrelation comb along each axis, refined on the template."""
    h, w = acc.shape
    pw = white_power(acc)
    hi = min(h, w) / MIN_PERIODS_IN_FRAME
    estimated: list[Period] = [(p, p) for p in template_peaks(pw, h, w, PERIOD_MIN, hi)]
    axes = axis_periods(pw, h, w, PERIOD_MIN)
    if axes is not None:
        estimated.append(template_refine(pw, h, w, *axes))
    return estimated


class _SyncSearch:
    """The best sync peak over the periods tested so far."""

    def __init__(self, acc: np.ndarray) -> None:
        self.acc = acc
        self.seen: list[Period] = []
        self.z, self.period, self.shift = -np.inf, (0.0, 0.0), (0.0, 0.0)

    def test(self, period: Period) -> bool:
        """Test one period; True when it beats the best so far."""
        py, px = period
        if any(abs(py - a) < SAME_PERIOD * a and abs(px - b) < SAME_PERIOD * b for a, b in self.seen):
            return False
        self.seen.append(period)
        zs, dy, dx = sync_search(bin_values(self.acc, py, px))
        if zs <= self.z:
            return False
        self.z, self.period, self.shift = zs, period, (dy, dx)
        return True


def analyse(acc: np.ndarray, frames: int, factor: int = 1, presence_z: float = 0.0) -> Detection:
    """Find period, shift and payload in an accumulated residual.

    ``factor`` is the analysis downscale of the frames (see analysis_factor);
    ``presence_z`` is the presence carrier's statistic on the same frames
    (presence.presence_statistic), which can alone prove a mark present.
    """
    h, w = acc.shape
    # Untouched geometry first: crops and re-encodes keep the period exactly.
    # A crop changes the frame size but not the period, so both the period of
    # a 512 px render and the one implied by the current size are tried.
    p_ref = TILE / factor
    p_size = period_for(h * factor, w * factor) / factor
    c = rescale_shift(p_size, p_ref)
    exact: dict[Period, Shift] = {(p_ref, p_ref): (0.0, 0.0), (p_size, p_size): (c, c)}
    search = _SyncSearch(acc)
    for q in exact:
        search.test(q)
    est_best: Period | None = None
    for q in _estimated_periods(acc):
        if search.test(q):
            est_best = q
    if est_best is not None:
        # Estimates are good to ~0.2 %; the sync correlation tolerates about
        # +-0.5 %, so two more periods around the winner cover the rest.
        for m in (1.0 - REFINE_STEP, 1.0 + REFINE_STEP):
            search.test((est_best[0] * m, est_best[1] * m))
    payload = None
    if search.z >= Z_THRESHOLD:
        bits = viterbi(soft_bits(aligned(whitened(acc, *search.period), *search.shift)))
        payload = Payload.from_bits(bits)
    zp = zx = zc = 0.0
    if payload is None:
        zp, zx, payload = _payload_test(acc, search.period, search.shift, exact)
    if payload is None:
        zc, payload = _scale_search(acc, p_size)
    present = (zx >= Z_EXACT_THRESHOLD or zp >= Z_DECODE_THRESHOLD or zc >= Z_SCAN_THRESHOLD
               or presence_z >= R_THRESHOLD or combined_tail(presence_z, zx) <= COMBINED_MAX_P)
    return Detection(
        found=payload is not None or present,
        payload=payload,
        confidence=_confidence(search.z, zp, zx, zc, presence_z),
        presence_z=float(presence_z),
        scan_z=float(zc),
        frames_used=frames,
        z_score=float(search.z),
        payload_z=float(zp),
        exact_z=float(zx),
    )


class Accumulator:
    """Sums per-frame residuals and presence phasors, one sum per frame size."""

    def __init__(self) -> None:
        self.sums: dict[tuple[int, int], np.ndarray] = {}
        self.counts: dict[tuple[int, int], int] = {}
        self.factors: dict[tuple[int, int], int] = {}
        self.presence: dict[tuple[int, int], tuple[np.ndarray, float]] = {}

    def add(self, frame: np.ndarray, weight: float = 1.0) -> None:
        """Add one frame's residual, scaled by ``weight`` (KEY_FRAME_WEIGHT
        for a decoded key frame, see there)."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError("frames must be uint8")
        gray = gray_of(frame)
        r = residual(gray)
        if weight != 1.0:
            r *= np.float32(weight)
        key = r.shape
        self.factors[key] = analysis_factor(*frame.shape[:2])
        z, w = self.presence.get(key, (0.0, 0.0))
        self.presence[key] = (z + weight * phasors(gray), w + weight)
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
        if min(acc.shape) < MIN_PERIODS_IN_FRAME * PERIOD_MIN + 1:  # too small to hold 1.5 periods
            return Detection(False, None, 0.0, self.counts[key])
        return analyse(acc, self.counts[key], self.factors[key], presence_statistic(*self.presence[key]))


def frame_weight(key_frame: bool) -> float:
    """Weight of a decoded frame in the sum (see KEY_FRAME_WEIGHT)."""
    return KEY_FRAME_WEIGHT if key_frame else 1.0


def detect_frames(frames: Iterable[np.ndarray], key_frames: Iterable[bool] | None = None) -> Detection:
    """Detect the watermark in RGB uint8 frames of any size (evidence is summed).

    ``key_frames``, when known (the decoder's flags, one per frame), weights
    key frames up (KEY_FRAME_WEIGHT)."""
    acc = Accumulator()
    keys = iter(key_frames) if key_frames is not None else None
    for f in frames:
        acc.add(f, frame_weight(next(keys)) if keys is not None else 1.0)
    return acc.result()
