"""Filling parts of a picture from the pixels around them, and the picture's own grain:
how the renderer's plates invent what the photo does not show."""
from __future__ import annotations

import cv2
import numpy as np

FILL_SIGMAS = (2, 4, 8, 16, 32)   # pixels: the scales of the normalised convolution
FILL_LEVEL_WEIGHT = 0.05          # each coarser scale weighs this much less
GRAIN_SIGMA = 1.5                 # pixels: what is finer than this is grain
GRAIN_LIMIT = 20.0                # grey levels


def fill_from(known: np.ndarray, image: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Fill the `fill` pixels from the `known` ones by normalised convolution over several
    scales at once, coarse scales weighing less: near the known pixels the fine scale wins,
    far away the coarse one, and the blend is continuous. (Taking each pixel from the first
    scale that reaches it left a visible step where one scale handed over to the next: a
    faint line across an eye's white as the iris moved over it.)"""
    out = image.astype(np.float32).copy()
    ys, xs = np.nonzero(fill)
    if len(ys) == 0:
        return out
    # only the fill's neighbourhood: beyond 3 sigma of the coarsest scale a known pixel
    # weighs nothing, and blurring the whole picture made a portrait's set-up take a second
    reach = 3 * FILL_SIGMAS[-1]
    y0, y1 = max(ys.min() - reach, 0), min(ys.max() + reach + 1, fill.shape[0])
    x0, x1 = max(xs.min() - reach, 0), min(xs.max() + reach + 1, fill.shape[1])
    k = known[y0:y1, x0:x1].astype(np.float32)
    weighted = out[y0:y1, x0:x1] * k[..., None]
    num = np.zeros_like(weighted)
    den = np.zeros_like(k)
    for level, sigma in enumerate(FILL_SIGMAS):
        w = FILL_LEVEL_WEIGHT ** level
        num += w * cv2.GaussianBlur(weighted, (0, 0), sigma)
        den += w * cv2.GaussianBlur(k, (0, 0), sigma)
    good = fill[y0:y1, x0:x1] & (den > 1e-9)
    out[y0:y1, x0:x1][good] = num[good] / den[good, None]
    return out


def grain(rgb: np.ndarray) -> np.ndarray:
    """The picture's own fine grain (film, paint, stone): its luminance minus a blurred copy."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.clip(grey - cv2.GaussianBlur(grey, (0, 0), GRAIN_SIGMA), -GRAIN_LIMIT, GRAIN_LIMIT)


def dilated(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask grown by a square of (2 radius + 1) pixels."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)).astype(bool)


def eroded(mask: np.ndarray, radius: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)).astype(bool)


LUMA_WEIGHTS = (0.299, 0.587, 0.114)          # RGB -> luminance (Rec. 601)
LUMA = np.array(LUMA_WEIGHTS, np.float32)
