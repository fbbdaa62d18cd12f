"""Smear score: the fine texture a rendering loses where it stretches the picture.

A torn turn does not only cut hard edges (talkface.evaluation.seams finds those): it
stretches the few pixels the photo has of the near cheek, the ear and the hair beside them
into streaks, and those have low gradients, so a jump detector misses them. The smear score
compares the picture's fine detail (the luminance minus a blurred copy, its magnitude
averaged over a small window) at the same anatomical places on the rendering and on the
portrait: on the face oval pulled in (the cheeks) and pushed out (the band of ear, hair and
background a turn stretches), placed by the face mesh found on each image.

    smear = max over the curves of -log2( median_window(detail_rendered) / median_window(detail_portrait) )

in bits of detail lost: 0 keeps the portrait's texture, 1 halves it somewhere along a curve
over SMOOTH_IOD (a smear is an area, not a speck). Places where the portrait itself has
little texture (a smooth background, TEXTURED_SHARE) are not scored: nothing there to lose.

Threshold (SMEAR_THRESHOLD), from the real photographs' own texture: the same measure
between the two halves of each shared portrait (each place against its mirror image across
the face; `talkface eval turns` reports it per image as smear_mirror), i.e. how much less texture one
side of a real face, its ear and hair shows than the other under the photo's own light and
focus. Real photos differ by up to SMEAR_THRESHOLD bits there; a rendering may not lose more
than that against the portrait.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.analysis import landmarks as lm

CURVE_FACTORS = (0.85, 1.1, 1.25)   # the face oval scaled about its centre: cheeks, the band outside
DETAIL_SIGMA = 1.0       # pixels: what is finer than this is texture (stretching by 2 removes it)
DETAIL_WINDOW = 2.0      # pixels: sigma of the window the detail's magnitude is averaged over
TEXTURED_SHARE = 0.5     # places where the portrait has less detail than this share of its median
                         # along the curves are not scored (a smooth background: nothing to lose)
SMOOTH_IOD = 0.3         # running median's window along a curve
# Measured on the 17 shared portraits with a human face, each place against its mirror image
# (smear_mirror): 1.5-5.8 bits per portrait (one 12.6: a turned face whose far side is hair),
# median 3.4, P90 5.2. A rendering may not lose more texture than nine in ten real portraits'
# one side shows less than the other (hair on one side, background on the other is common).
SMEAR_THRESHOLD = 5.2


@dataclass(frozen=True)
class SmearScore:
    score: float                 # bits of fine detail lost at the worst place
    curve: str
    where: tuple[float, float]   # its pixel position in the rendered image


def detail(image: np.ndarray) -> np.ndarray:
    """Local fine-detail magnitude (grey levels) of an RGB image."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    high = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), DETAIL_SIGMA))
    return cv2.GaussianBlur(high, (0, 0), DETAIL_WINDOW)


def smear_curves(points: np.ndarray) -> dict[str, np.ndarray]:
    """(n, 2) curves, in FACE_OVAL order (closed), at the CURVE_FACTORS of the face oval."""
    oval = points[list(lm.FACE_OVAL), :2].astype(np.float64)
    oval = np.concatenate([oval, oval[:1]])
    centre = oval[:-1].mean(axis=0)
    return {f"oval x{f:.2f}": centre + (oval - centre) * f for f in CURVE_FACTORS}


def _sample(field: np.ndarray, curve: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The field at n places evenly spaced along the curve, and the places."""
    import cv2

    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, s[-1], n)
    p = np.stack([np.interp(t, s, curve[:, 0]), np.interp(t, s, curve[:, 1])], axis=1).astype(np.float32)
    v = cv2.remap(field, p[:, 0:1], p[:, 1:2], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return v[:, 0].astype(np.float64), p


def _window_median(x: np.ndarray, window: int) -> np.ndarray:
    """Running median along a closed curve."""
    if window <= 1:
        return x
    pad = window // 2
    wrapped = np.concatenate([x[-pad:], x, x[:pad]]) if pad else x
    return np.median(np.lib.stride_tricks.sliding_window_view(wrapped, 2 * pad + 1), axis=1)[: len(x)]


def _lost_bits(mine: np.ndarray, theirs: np.ndarray, window: int, floor: float) -> np.ndarray:
    a, b = _window_median(mine, window), _window_median(theirs, window)
    bits = np.log2(np.maximum(b, 1e-3) / np.maximum(a, 1e-3))
    return np.where(b >= floor, bits, 0.0)


def _floor(d: np.ndarray, curves: dict[str, np.ndarray]) -> float:
    values = [_sample(d, c, max(32, int(np.linalg.norm(np.diff(c, axis=0), axis=1).sum())))[0] for c in curves.values()]
    return float(TEXTURED_SHARE * np.median(np.concatenate(values)))


def smear_score(portrait_image: np.ndarray, portrait_points: np.ndarray, image: np.ndarray,
                points: np.ndarray) -> SmearScore:
    """Score `image` (the face found at `points`) against the portrait (at `portrait_points`)."""
    iod = lm.interocular(portrait_points)
    window = max(3, int(round(SMOOTH_IOD * iod)))
    d_ref, d_img = detail(portrait_image), detail(image)
    worst = SmearScore(0.0, "", (0.0, 0.0))
    ref_curves, curves = smear_curves(portrait_points), smear_curves(points)
    floor = _floor(d_ref, ref_curves)
    for name, ref_curve in ref_curves.items():
        n = max(32, int(np.linalg.norm(np.diff(ref_curve, axis=0), axis=1).sum()))
        v_ref, _ = _sample(d_ref, ref_curve, n)
        v_img, places = _sample(d_img, curves[name], n)
        lost = _lost_bits(v_img, v_ref, window, floor)
        k = int(np.argmax(lost))
        if lost[k] > worst.score:
            worst = SmearScore(float(lost[k]), name, (float(places[k, 0]), float(places[k, 1])))
    return worst


def mirror_smear(image: np.ndarray, points: np.ndarray) -> float:
    """The same measure between the two halves of one real portrait: each place on the
    curves against its mirror image across the face (FACE_OVAL runs round the face, so the
    mirror of sample k of n is sample n - k). How much less texture one side shows."""
    iod = lm.interocular(points)
    window = max(3, int(round(SMOOTH_IOD * iod)))
    d = detail(image)
    worst = 0.0
    curves = smear_curves(points)
    floor = _floor(d, curves)
    for curve in curves.values():
        n = max(32, int(np.linalg.norm(np.diff(curve, axis=0), axis=1).sum()))
        v, _ = _sample(d, curve, n)
        mirrored = v[::-1]
        worst = max(worst, float(_lost_bits(v, mirrored, window, floor).max()))
    return worst
