"""Real clips as lip-sync targets, from the prepared cache, and folds for cross-validation
disjoint by speaker: no person on both sides of any fold.

A clip's targets are its tracked mouth at the offset-corrected alignment
(`aligned_times`), interpolated to the 100 Hz feature frames inside its usable stretches
(NaN elsewhere) and brought to one common scale per clip (speakers differ in how wide
they open: the scores are correlations, and the rig wants one typical amplitude).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.analysis.audio import AudioFeatures, frame_time
from talkface.data.cache import PreparedCache

REAL_OPEN_MEDIAN, REAL_OPEN_STD, REAL_WIDTH_STD = 0.11, 0.06, 0.03  # IOD: typical of the real videos
CLOSED_IOD = 0.015   # a real inner-lip opening under this (IOD) is a shut mouth: the mesh's openings are
                     # bimodal, with shut lips at 0.001-0.01 and open ones from about 0.03
MAX_GAP_S = 0.1   # targets are interpolated only between usable frames this close


@dataclass(frozen=True)
class RealClip:
    name: str
    speaker: str
    features: AudioFeatures
    targets: np.ndarray   # (A, 5) opening, width change (common scale), NaN, NaN, lips closed (0/1); NaN where unknown
    times: np.ndarray     # usable video frames: the audio time of each (aligned)
    opening: np.ndarray   # their raw opening (IOD)
    width: np.ndarray     # their raw width (IOD)


def _to_frames(t_video: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    t = frame_time(np.arange(n))
    out = np.interp(t, t_video, values)
    j = np.clip(np.searchsorted(t_video, t), 1, len(t_video) - 1)
    gap = np.minimum(np.abs(t - t_video[j - 1]), np.abs(t_video[j] - t))
    out[(gap > MAX_GAP_S / 2) | (t < t_video[0]) | (t > t_video[-1])] = np.nan
    return out


def real_clip(clip) -> RealClip | None:
    """Targets for one PreparedClip (None: too little usable, measured mouth)."""
    ok = clip.usable & np.isfinite(clip.mouth[:, 0]) & np.isfinite(clip.mouth[:, 1])
    if ok.sum() < 10 or clip.features is None:
        return None
    t = clip.aligned_times[ok]
    op, wd = clip.mouth[ok, 0].astype(np.float64), clip.mouth[ok, 1].astype(np.float64)
    n = len(clip.features)
    y = np.full((n, 5), np.nan, np.float32)
    y[:, 0] = _to_frames(t, REAL_OPEN_MEDIAN + (op - np.median(op)) / (np.std(op) + 1e-6) * REAL_OPEN_STD, n)
    y[:, 1] = _to_frames(t, (wd - np.median(wd)) / (np.std(wd) + 1e-6) * REAL_WIDTH_STD, n)
    shut = _to_frames(t, (op < CLOSED_IOD).astype(np.float64), n)
    y[:, 4] = np.where(np.isfinite(shut), (shut > 0.5).astype(np.float64), np.nan)
    return RealClip(clip.name, clip.speaker, clip.features, y, t, op, wd)


def real_clips(cache: PreparedCache, log=print) -> list[RealClip]:
    out = [c for c in (real_clip(p) for p in cache.clips(use="lipsync")) if c is not None]
    log(f"  {len(out)} real clips, {len({c.speaker for c in out})} speakers, "
        f"{sum(np.isfinite(c.targets[:, 0]).sum() for c in out) / 100:.0f} s with a usable mouth")
    return out


def speaker_folds(clips: list[RealClip], k: int) -> list[set[str]]:
    """k sets of speakers, balanced by usable seconds (largest speakers first, each to the
    lightest fold): every clip of a speaker is held out together."""
    seconds: dict[str, float] = {}
    for c in clips:
        seconds[c.speaker] = seconds.get(c.speaker, 0.0) + float(np.isfinite(c.targets[:, 0]).sum())
    folds: list[set[str]] = [set() for _ in range(min(k, len(seconds)))]
    load = [0.0] * len(folds)
    for spk in sorted(seconds, key=lambda s: (-seconds[s], s)):
        i = int(np.argmin(load))
        folds[i].add(spk)
        load[i] += seconds[spk]
    return folds
