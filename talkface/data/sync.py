"""A clip's audio-video offset: the lag at which the mouth's opening best follows the
audio's loudness, within a bounded window of lags.

The score of a lag is the correlation of the opening with the loudness plus that of their
changes (frame to frame): the first is broad, the second peaks sharply at onsets. Speakers
open the mouth a little before the sound comes, so even a clip in perfect sync peaks at a
small positive lag: NATURAL_LAG_S. Most footage is in sync and short clips give ambiguous
curves (a few words repeat their rhythm), so a clip's offset is corrected only where the
evidence is strong (SyncEstimate.reliable): enough usable video, a clear correlation, a peak
clearly better than the natural lag, and not at the window's edge. (Measured on the shared
clips, weaker evidence gave offsets 0.23 s apart for two crops of the same footage.) Otherwise the clip is taken as recorded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.analysis.audio import FEATURE_RATE, AudioFeatures, frame_time

MAX_LAG_S = 0.4          # lags searched, either way
NATURAL_LAG_S = 0.04     # audio loudness peaks this long after the mouth opens, in sync
MIN_SYNC_S = 5.0         # a reliable estimate needs this much usable video ...
MIN_GAIN = 0.3           # ... a score this much higher than at the natural lag (score: sum of two r) ...
MIN_PEAK_R = 0.3         # ... a clear opening-loudness correlation at the peak ...
EDGE_S = 0.05            # ... and a peak not within this of the window's edge
SMOOTH_S = 0.05          # loudness smoothing
SYNC_VERSION = 2


@dataclass(frozen=True)
class SyncEstimate:
    lag_s: float         # best lag: > 0 means the audio's loudness follows the mouth by this much
    r: float             # opening-loudness correlation at the best lag
    r_zero: float        # ... as recorded (lag 0)
    gain: float          # score at the best lag minus score at the natural lag
    reliable: bool
    r_max: float = float("nan")   # the best opening-loudness correlation at any lag

    @property
    def offset_s(self) -> float:
        """Correction to apply: the face at video time t goes with the audio at t + offset_s."""
        return round(self.lag_s - NATURAL_LAG_S, 3) if self.reliable else 0.0


def loudness_envelope(features: AudioFeatures) -> np.ndarray:
    """Loudness over the clip's noise floor (dB, 0..50), smoothed; 100 Hz."""
    from scipy.ndimage import uniform_filter1d

    db = features.rms_db.astype(np.float64)
    floor = np.percentile(db, 10) if len(db) else 0.0
    return uniform_filter1d(np.clip(db - floor, 0.0, 50.0), max(1, int(SMOOTH_S * FEATURE_RATE)))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 10 or np.std(a) < 1e-9 or np.std(b) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _curves(times: np.ndarray, opening: np.ndarray, env: np.ndarray, lags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlations of opening with loudness, and of their frame-to-frame changes, per lag."""
    t_env = frame_time(np.arange(len(env)))
    ok = np.isfinite(opening)
    d_open = np.diff(opening, prepend=np.nan)
    d_env = np.gradient(env) if len(env) > 1 else np.zeros_like(env)
    level, change = np.full(len(lags), np.nan), np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        t = times + lag
        sel = ok & (t >= t_env[0]) & (t <= t_env[-1]) if len(t_env) else np.zeros(len(t), bool)
        if sel.sum() < 10:
            continue
        level[i] = _corr(opening[sel], np.interp(t[sel], t_env, env))
        dsel = sel & np.isfinite(d_open)
        dt = np.diff(times, prepend=times[0] - 1.0)[dsel]
        change[i] = _corr(d_open[dsel] / dt, np.interp(t[dsel], t_env, d_env))
    return level, change


def estimate_offset(times: np.ndarray, opening: np.ndarray, features: AudioFeatures,
                    max_lag_s: float = MAX_LAG_S) -> SyncEstimate:
    """Score lags every 10 ms within +-max_lag_s: the opening at video times `times` (on the
    audio's clock) against the loudness at times + lag. `opening` is NaN where unusable."""
    lags = np.round(np.arange(-max_lag_s, max_lag_s + 1e-9, 1.0 / FEATURE_RATE), 3)
    level, change = _curves(times, opening, loudness_envelope(features), lags)
    total = np.nan_to_num(level, nan=-2.0) + np.nan_to_num(change, nan=-2.0)
    if not np.isfinite(level).any():
        return SyncEstimate(0.0, float("nan"), float("nan"), 0.0, False)
    best = int(np.argmax(total))
    natural = int(np.argmin(np.abs(lags - NATURAL_LAG_S)))
    gain = float(total[best] - total[natural])
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    usable_s = float(np.isfinite(opening).sum()) * dt
    reliable = (usable_s >= MIN_SYNC_S and gain >= MIN_GAIN and level[best] >= MIN_PEAK_R
                and abs(lags[best]) <= max_lag_s - EDGE_S)
    return SyncEstimate(float(lags[best]), float(level[best]), float(level[np.argmin(np.abs(lags))]), gain, bool(reliable),
                        float(np.nanmax(level)))
