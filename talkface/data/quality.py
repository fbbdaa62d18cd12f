"""Quality checks on a tracked clip: which frames to use, and why the others are not.

Per frame: no face; several faces (the tracker may follow the wrong one); a face too
small to measure the lips (inter-ocular distance under MIN_IOD_PX); a tracking jump (the
face's centre or size changing more in one frame than a head moves: a cut, or the mesh
re-locking elsewhere; a few frames around it go too). Short good islands between bad
stretches are dropped. Per clip: too little usable video left, or (for lip sync only)
audio unrelated to the mouth (no correlation between mouth opening and loudness at any
lag within the sync window).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_IOD_PX = 22.0           # smaller faces: a lip gap of one pixel is 5 % of the face
MAX_JUMP_IOD = 0.35         # centre moving more than this (inter-ocular units) between frames ...
MAX_SCALE_JUMP = 0.15       # ... or the face's size changing more than this share
JUMP_MARGIN_S = 0.08        # frames this close to a jump go as well
MIN_ISLAND_S = 0.5          # usable stretches shorter than this are dropped
MIN_USABLE_S = 1.5          # a clip with less usable video than this is rejected
MIN_USABLE_SHARE = 0.3      # ... or with less than this share of its frames
MIN_SYNC_R = 0.08           # lip sync: best mouth-loudness correlation at least this

REASONS = ("no face", "several faces", "face too small", "tracking jump", "short stretch")


@dataclass(frozen=True)
class Quality:
    usable: np.ndarray            # (T,) bool
    reason: np.ndarray            # (T,) int8: -1 usable, else an index into REASONS
    stretches: list[dict]         # rejected stretches: start_s, end_s, reason
    clip_rejected: str | None     # why the whole clip is unusable, or None


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    if n <= 0 or not mask.any():
        return mask
    return np.convolve(mask.astype(float), np.ones(2 * n + 1), mode="same") > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def frame_reasons(times: np.ndarray, centre_iod: np.ndarray, n_faces: np.ndarray) -> np.ndarray:
    """(T,) reason index per frame, -1 where usable. centre_iod: (T, 3) centre x, y, IOD (px)."""
    reason = np.full(len(times), -1, np.int8)
    iod = centre_iod[:, 2]
    found = np.isfinite(iod)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.04
    step = np.zeros(len(times), bool)
    if len(times) > 1:
        move = np.linalg.norm(np.diff(centre_iod[:, :2], axis=0), axis=1) / np.fmax(iod[1:], 1.0)
        scale = np.abs(np.diff(np.log(np.fmax(iod, 1.0))))
        jump = (move > MAX_JUMP_IOD) | (scale > np.log1p(MAX_SCALE_JUMP))
        step[1:] = np.nan_to_num(jump, nan=False)
    for idx, bad in ((4, np.zeros(len(times), bool)),
                     (3, _dilate(step, int(round(JUMP_MARGIN_S / dt)))),
                     (2, found & (iod < MIN_IOD_PX)),
                     (1, n_faces > 1),
                     (0, ~found)):
        reason[bad] = idx   # later rows win: no face over several faces over small over jumps
    good = reason < 0
    for a, b in _runs(good):
        if times[b - 1] - times[a] + dt < MIN_ISLAND_S and not good.all():
            reason[a:b] = REASONS.index("short stretch")
    return reason


def check(times: np.ndarray, centre_iod: np.ndarray, n_faces: np.ndarray) -> Quality:
    reason = frame_reasons(times, centre_iod, n_faces)
    usable = reason < 0
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.04
    stretches = []
    for code in range(len(REASONS)):
        for a, b in _runs(reason == code):
            stretches.append({"start_s": round(float(times[a]), 3), "end_s": round(float(times[b - 1] + dt), 3),
                              "reason": REASONS[code]})
    stretches.sort(key=lambda s: s["start_s"])
    usable_s = float(usable.sum()) * dt
    clip = None
    if usable_s < MIN_USABLE_S or usable.mean() < MIN_USABLE_SHARE:
        counts = np.bincount(reason[reason >= 0], minlength=len(REASONS))
        main = REASONS[int(np.argmax(counts))] if counts.any() else "too short"
        clip = f"{main}: {usable_s:.1f} s usable of {len(times) * dt:.1f} s"
    return Quality(usable, reason, stretches, clip)
