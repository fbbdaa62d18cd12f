"""Seam score: the largest colour jump a rendering adds across the face's silhouette, along
its jaw, on the neck below it and round the head, over what the portrait itself shows at
the same places.

Along each curve (named regions of the face mesh, placed by the points found on the image
itself) the image is sampled across the curve, at every pixel of its length and out to
PROFILE_REACH_IOD either side; the jump at a place is the largest colour difference
between pixels two apart on that profile (RGB distance, 0-441). A seam is a line, not a
speck: the jump the rendering adds over the portrait's own at the same place on the face
is smoothed along the curve with a running median over SMOOTH_IOD, and its maximum is taken.
It is divided by the portrait's own strong edges there (the 90th percentile of the jumps
along its curves), so a seam in a soft painting counts as much as one in a sharp photo:

    seam = max over the curves of median(jump_rendered - jump_portrait) / P90(jump_portrait)

0 means no jump the portrait does not have; 1 a new jump as strong as the portrait's strong
edges. SEAM_THRESHOLD is 1: a rendering may not add, anywhere along these curves, a jump as
strong as the portrait's own strong edges there (its 90th percentile: real photographs'
own edges set the scale). Real frames of real people scored the same way against their
video's first frame (`talkface eval turns --seam-reference VIDEOS`) do not give a usable
threshold: compressed video frames differ from each other in sharpness, hair and earrings
move, and they score 0.2-1.3 (median per video), up to 2.0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.analysis import landmarks as lm

PROFILE_REACH_IOD = 0.10     # how far either side of a curve the rendering's profiles look
OWN_REACH_IOD = 0.25         # ...and the portrait's: a jump is new only if the portrait has none as
                             # strong anywhere near (tracking jitter and real motion move edges)
SMOOTH_IOD = 0.15            # the running median's window along a curve
NECK_OFFSETS_IOD = (0.25, 0.5)   # neck curves: the jaw moved this far down the head's axis
HEAD_RING = 1.3              # the curve round the head: the face oval scaled about its centre
PRE_BLUR_SIGMA = 0.7         # pixels; JPEG blocks and film grain are not seams
# A new jump as strong as the portrait's own strong edges (see the module's docstring).
# Measured on the built-in portrait before any turn work: rest 0.16, +-10 deg 0.5, +-20 deg 0.70
# and 1.03, +-30 deg 1.02 and 1.35 (the far cheek cut hard against the hair).
SEAM_THRESHOLD = 1.0

# FACE_OVAL from the right jaw's upper end to the left's, through the chin (subject's sides)
_JAW = lm.FACE_OVAL[9:28]


@dataclass(frozen=True)
class SeamScore:
    score: float            # see the module's docstring
    curve: str              # where the worst place is
    where: tuple[float, float]  # its pixel position in the rendered image
    own_edges: float        # P90 of the portrait's jumps (RGB units)


def face_curves(points: np.ndarray) -> dict[str, np.ndarray]:
    """The curves a seam is looked for on, each (n, 2) in pixels, in the same anatomical
    order on any image of the face."""
    pts = points[:, :2].astype(np.float64)
    iod = lm.interocular(points)
    oval = pts[list(lm.FACE_OVAL)]
    centre = oval.mean(axis=0)
    down = pts[lm.CHIN] - pts[lm.FOREHEAD]
    down /= np.linalg.norm(down) + 1e-9
    jaw = pts[list(_JAW)]
    curves = {"silhouette": np.concatenate([oval, oval[:1]]), "jaw": jaw,
              "head": np.concatenate([centre + (oval - centre) * HEAD_RING, centre + (oval[:1] - centre) * HEAD_RING])}
    for k, off in enumerate(NECK_OFFSETS_IOD):
        curves[f"neck{k + 1}"] = jaw + down * off * iod
    return curves


def _resample(curve: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points evenly spaced along the polyline, and the unit normals there."""
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, s[-1], n)
    p = np.stack([np.interp(t, s, curve[:, 0]), np.interp(t, s, curve[:, 1])], axis=1)
    tangent = np.gradient(p, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
    return p, np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def curve_jumps(image: np.ndarray, curve: np.ndarray, n: int, reach: float) -> np.ndarray:
    """(n,) the largest two-pixel colour difference across the curve at n places along it."""
    import cv2

    p, normal = _resample(curve, n)
    half_steps = int(np.ceil(2 * reach))
    offsets = 0.5 * np.arange(-half_steps, half_steps + 1)   # a wider reach samples the same places and more
    xs = (p[:, None, 0] + offsets[None, :] * normal[:, None, 0]).astype(np.float32)
    ys = (p[:, None, 1] + offsets[None, :] * normal[:, None, 1]).astype(np.float32)
    prof = cv2.remap(image.astype(np.float32), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = np.linalg.norm(prof[:, 4:] - prof[:, :-4], axis=2)   # 4 half-pixel steps: 2 px apart
    return diff.max(axis=1)


def _running_median(x: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(x) <= window:
        return x
    pad = window // 2
    padded = np.pad(x, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.median(windows, axis=1)[: len(x)]


def _blurred(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), PRE_BLUR_SIGMA)


def seam_score(portrait_image: np.ndarray, portrait_points: np.ndarray, image: np.ndarray,
               points: np.ndarray) -> SeamScore:
    """Score `image` (the face found at `points`) against the portrait (at `portrait_points`)."""
    iod = lm.interocular(portrait_points)
    reach = max(3.0, PROFILE_REACH_IOD * iod)
    own_reach = max(6.0, OWN_REACH_IOD * iod)
    window = max(3, int(round(SMOOTH_IOD * iod)))
    ref_img, img = _blurred(portrait_image), _blurred(image)
    ref_curves, curves = face_curves(portrait_points), face_curves(points)
    own, excess = [], {}
    for name, ref_curve in ref_curves.items():
        n = max(16, int(np.linalg.norm(np.diff(ref_curve, axis=0), axis=1).sum()))
        j_ref = curve_jumps(ref_img, ref_curve, n, own_reach)
        j_img = curve_jumps(img, curves[name], n, reach)
        own.append(j_ref)
        excess[name] = (_running_median(j_img - j_ref, window), _resample(curves[name], n)[0])
    own_edges = float(max(np.percentile(np.concatenate(own), 90), 1.0))
    name = max(excess, key=lambda k: excess[k][0].max())
    values, places = excess[name]
    k = int(np.argmax(values))
    return SeamScore(score=float(max(values[k], 0.0) / own_edges), curve=name,
                     where=(float(places[k, 0]), float(places[k, 1])), own_edges=own_edges)
