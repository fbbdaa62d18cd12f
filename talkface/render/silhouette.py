"""Silhouette layer: where the turning head's surface folds over what lies behind it (the far
cheek over the hair or the background), neighbouring output pixels sample places of the
photo far apart, and the warp draws that occlusion edge one pixel wide: a hard, jagged cut
no photograph has. Here such fold pixels are found from the backward map and take a small
blur of the frame, the soft edge a lens gives a real silhouette.
"""
from __future__ import annotations

import cv2
import numpy as np

from talkface.render.warp import Warp

# pixels of the photo between two neighbouring output pixels: a fold... (4 left the softer folds of
# a 30 degree turn hard: eval turns seam at -30, beard 1.67 -> 1.50, chinese portrait 1.70 -> 1.50,
# astronaut 1.18 -> 1.02; at rest the map has no jumps, so nothing changes there)
FOLD_JUMP = 2.5
EDGE_SIGMA = 0.9     # pixels: ...whose pixels get this blur
PAD = 3              # pixels round the fold pixels' box that the blur reads
HEAD_MARGIN = 0.2    # folds are looked for in the face's box grown by this share of its size


def fold_mask(warp: Warp, box: tuple[int, int, int, int]) -> np.ndarray:
    """(S, S) uint8 mask (255) of the pixels on either side of a fold in the backward map: the
    source x jumping by more than FOLD_JUMP between horizontal neighbours (a turn's fold), or
    the source y between vertical ones (a nod's). Only inside `box` (x0, y0, x1, y1). cv2
    throughout: the same in numpy cost three times as much."""
    x0, y0, x1, y1 = box
    full = np.zeros(warp.map_x.shape, np.uint8)
    mask = full[y0:y1, x0:x1]
    mx, my = warp.map_x[y0:y1, x0:x1], warp.map_y[y0:y1, x0:x1]
    for m, a, b in ((mx, np.s_[:, 1:], np.s_[:, :-1]), (my, np.s_[1:], np.s_[:-1])):
        hit = cv2.compare(cv2.absdiff(m[a], m[b]), FOLD_JUMP, cv2.CMP_GT)
        cv2.bitwise_or(mask[a], hit, mask[a])
        cv2.bitwise_or(mask[b], hit, mask[b])
    return full


def grown_box(xy: np.ndarray, margin: float, size: int) -> tuple[int, int, int, int]:
    """The points' box grown by `margin` of its size each way, inside the frame."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    grow = margin * (hi - lo)
    x0, y0 = np.maximum(np.floor(lo - grow), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(hi + grow), size).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def soften_folds(frame: np.ndarray, warp: Warp, box: tuple[int, int, int, int],
                 mouth: tuple[int, int, int, int]) -> None:
    """In place: the fold pixels of `frame` inside `box` and outside the `mouth` box take a
    small blur of it (the lips fold on purpose where they close: the mouth layer draws them)."""
    mask = fold_mask(warp, box)
    mask[mouth[1]:mouth[3], mouth[0]:mouth[2]] = 0
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return
    x0, y0 = max(x - PAD, 0), max(y - PAD, 0)
    x1, y1 = min(x + w + PAD, mask.shape[1]), min(y + h + PAD, mask.shape[0])
    region = frame[y0:y1, x0:x1]
    cv2.copyTo(cv2.GaussianBlur(region, (3, 3), EDGE_SIGMA), mask[y0:y1, x0:x1], region)
