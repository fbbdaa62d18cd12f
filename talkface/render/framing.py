"""`--framing full`: the animated head crop pasted back into the whole source picture.

The crop is a resampled square of the source (portrait.crop_box); the renderer keeps its
border fixed, so pasting it back through the same box with a feathered alpha gives a seam-
free frame. Outside the head and the person the alpha fades to zero, so the rest of the
picture stays pixel-for-pixel the original (no resampling blur on a large background).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np

from talkface.analysis import landmarks as lm


class FullFramer:
    """Built once per portrait: the paste-back transform and the blend alpha."""

    def __init__(self, portrait) -> None:
        import cv2

        self.source = np.ascontiguousarray(portrait.source)
        h, w = self.source.shape[:2]
        size = portrait.size
        x0, y0, side = portrait.crop_box
        self.scale = side / size      # source pixels per crop pixel
        bx0, by0 = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
        bx1, by1 = min(int(np.ceil(x0 + side)), w), min(int(np.ceil(y0 + side)), h)
        self.box = (bx0, by0, bx1, by1)
        self.empty = bx1 <= bx0 or by1 <= by0
        if self.empty:
            return
        # crop pixel (u, v) lands at source (x0 + s u, y0 + s v): forward map into the box
        s = self.scale
        self.forward = np.array([[s, 0, x0 - bx0], [0, s, y0 - by0]], np.float32)

        # alpha in crop space: the head and everything that can move with it, feathered, and
        # faded to zero at the crop border (where the renderer pins its control points)
        pts = portrait.points
        oval = pts[list(lm.FACE_OVAL), :2]
        centre = oval.mean(axis=0)
        half = np.ptp(oval, axis=0) / 2
        gy, gx = np.mgrid[0:size, 0:size].astype(np.float32)
        r = np.hypot((gx - centre[0]) / (half[0] * 2.3), (gy - centre[1]) / (half[1] * 2.0))
        head = np.clip((1.25 - r) / 0.35, 0, 1)
        person = cv2.GaussianBlur(cv2.dilate((portrait.person_mask > 0.3).astype(np.uint8),
                                             np.ones((15, 15), np.uint8)).astype(np.float32), (0, 0), 8)
        alpha = np.maximum(head, person)
        edge = np.minimum(np.minimum(gx, size - 1 - gx), np.minimum(gy, size - 1 - gy))
        alpha *= np.clip(edge / (0.06 * size), 0, 1)
        alpha = alpha * alpha * (3 - 2 * alpha)
        bw, bh = bx1 - bx0, by1 - by0
        self.alpha = cv2.warpAffine(alpha, self.forward, (bw, bh), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
        self.base = self.source[by0:by1, bx0:bx1].astype(np.float32)
        # The crop went through a resampling and comes back through another: where a frame shows
        # the portrait unchanged, put back the picture's own detail (what the round trip lost)
        self.still = self._to_source(portrait.image)
        self.detail = self.base - self.still

    def _to_source(self, crop: np.ndarray) -> np.ndarray:
        import cv2

        bx0, by0, bx1, by1 = self.box
        img = crop
        if self.scale < 1:  # shrinking: low-pass first so the paste does not alias
            img = cv2.GaussianBlur(crop, (0, 0), 0.45 / self.scale)
        return cv2.warpAffine(img, self.forward, (bx1 - bx0, by1 - by0),
                              flags=cv2.INTER_CUBIC if self.scale > 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

    def paste(self, crop: np.ndarray) -> np.ndarray:
        import cv2

        if self.empty:
            return self.source.copy()
        bx0, by0, bx1, by1 = self.box
        patch = self._to_source(crop)
        change = cv2.GaussianBlur(np.abs(patch - self.still).max(axis=2), (0, 0), 1.5 * max(self.scale, 1.0))
        keep = np.exp(-change / 4.0)[..., None]      # 1 where the frame shows the portrait as it was
        patch = patch + keep * self.detail
        out = self.source.copy()
        out[by0:by1, bx0:bx1] = np.clip(self.base + (patch - self.base) * self.alpha + 0.5, 0, 255).astype(np.uint8)
        return out


def full_frame(portrait, frames: Iterable) -> Iterator:
    """Each engine Frame with its image replaced by the whole picture, the animated head in it."""
    framer = FullFramer(portrait)
    for frame in frames:
        yield dataclasses.replace(frame, image=framer.paste(frame.image))
