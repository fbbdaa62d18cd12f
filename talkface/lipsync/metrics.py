"""Lip-sync scores shared by `eval lipsync` and the training's cross-validation: the
prediction sampled at the video frames, Pearson r of the opening at the best lag within
+-MAX_LAG video frames, and closed agreement (real and predicted opening each thresholded
at its own 25th percentile; the share of frames where both agree)."""
from __future__ import annotations

import numpy as np

MAX_LAG = 2


def feature_index(times: np.ndarray) -> np.ndarray:
    """Feature frame whose centre is nearest each time (as the engine picks it)."""
    from talkface.analysis.audio import HOP, SAMPLE_RATE, WINDOW

    return np.maximum(0, np.round((np.asarray(times) * SAMPLE_RATE - WINDOW / 2) / HOP)).astype(int)


def at_frames(rows: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per-video-frame value: the mean of the 100 Hz rows k-1..k+1 (the engine's averaging)."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim == 1:
        rows = rows[:, None]
    k = np.clip(feature_index(times), 0, len(rows) - 1)
    lo = np.clip(k - 1, 0, len(rows) - 1)
    hi = np.clip(k + 1, 0, len(rows) - 1)
    out = (rows[lo] + rows[k] + rows[hi]) / 3.0
    return out[:, 0] if out.shape[1] == 1 else out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 5 or np.std(a[ok]) < 1e-9 or np.std(b[ok]) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def shifted(b: np.ndarray, lag: int) -> np.ndarray:
    """b delayed by `lag` frames (lag > 0: the prediction is compared with later real frames)."""
    out = np.full(len(b), np.nan)
    if lag >= 0:
        out[lag:] = b[:len(b) - lag]
    else:
        out[:lag] = b[-lag:]
    return out


def best_lag_r(real: np.ndarray, pred: np.ndarray, max_lag: int = MAX_LAG) -> tuple[float, int]:
    best = (float("-inf"), 0)
    for lag in range(-max_lag, max_lag + 1):
        r = pearson(real, shifted(pred, lag))
        if np.isfinite(r) and r > best[0]:
            best = (r, lag)
    return (best if np.isfinite(best[0]) else (float("nan"), 0))


def closed_agreement(real: np.ndarray, pred: np.ndarray) -> float:
    ok = np.isfinite(real) & np.isfinite(pred)
    a, b = real[ok], pred[ok]
    return float(np.mean((a <= np.percentile(a, 25)) == (b <= np.percentile(b, 25))))




def score_clip(times: np.ndarray, opening: np.ndarray, width: np.ndarray, pred_open: np.ndarray,
               pred_width: np.ndarray) -> dict:
    """Scores of 100 Hz predictions against a real mouth measured at video frame `times`."""
    po, pw = at_frames(pred_open, times), at_frames(pred_width, times)
    r_open, lag = best_lag_r(opening, po)
    r_width, _ = best_lag_r(width, pw)
    return {"r_open": r_open, "lag": lag, "r_width": r_width, "closed_agreement": closed_agreement(opening, shifted(po, lag))}
