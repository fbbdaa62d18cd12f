"""Texture completion: what a turning head uncovers shows texture, not a smooth smear.

The plate's band behind the person (talkface.render.plate) was filled by normalised
convolution alone: right colour, but a blur where the photo has grain, cloth, a painted
wall or stone. Here the fill keeps that smooth colour and adds the fine texture of the
background mirrored across the person's edge: each filled pixel takes the detail of the
known pixel as far outside the edge as it is inside (its reflection about the nearest
known pixel), so the texture continues across the edge at the same scale. Built once per
portrait.
"""
from __future__ import annotations

import cv2
import numpy as np

DETAIL_SIGMA = 3.0     # pixels: what is finer than this is texture carried over
DETAIL_LIMIT = 40.0    # grey levels per channel: the carried texture is clipped to this


def reflected(known: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The image with every unknown pixel replaced by the known pixel at its reflection about
    its nearest known pixel (or that reflection's own nearest known pixel, if it is unknown)."""
    unknown = (~known).astype(np.uint8)
    if not unknown.any() or not known.any():
        return image.copy()
    _, labels = cv2.distanceTransformWithLabels(unknown, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ky, kx = np.nonzero(known)            # labels number the known (zero) pixels in scan order, from 1
    h, w = known.shape
    ys, xs = np.nonzero(~known)
    near = labels[ys, xs] - 1
    ry = np.clip(2 * ky[near] - ys, 0, h - 1)
    rx = np.clip(2 * kx[near] - xs, 0, w - 1)
    again = ~known[ry, rx]
    back = labels[ry[again], rx[again]] - 1
    ry[again], rx[again] = ky[back], kx[back]
    out = image.copy()
    out[ys, xs] = image[ry, rx]
    return out


def textured_fill(known: np.ndarray, image: np.ndarray, fill: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """`smooth` (a colour fill of the `fill` pixels) with the background's own texture added
    there: the detail of the image mirrored across the known region's edge."""
    mirror = reflected(known, image).astype(np.float32)
    detail = np.clip(mirror - cv2.GaussianBlur(mirror, (0, 0), DETAIL_SIGMA), -DETAIL_LIMIT, DETAIL_LIMIT)
    out = smooth.astype(np.float32).copy()
    out[fill] += detail[fill]
    return out
