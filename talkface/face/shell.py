"""Head shell: a 3-D proxy for what the face mesh does not cover (hair, skull, ears).

The face mesh gives the face its relief; the points round it (the rig's ring) had none:
they all sat at the pivot's depth, so a turn slid the face sideways across a still,
flat outline -- the far cheek ran into the hair and ear and was cut against them, the near
side's band of ear and hair was stretched, and the hair over the forehead was sheared. The
shell is an ellipsoid round the pivot, as wide as the head's silhouette (hair included, from
the person mask), and each ring point takes the depth of its front surface: points on the
silhouette stay at the pivot's depth (they only narrow as the head turns), points inside it
(hair over the forehead, the ear beside the cheek) move with the head as a solid does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDTH_RANGE = (1.1, 1.6)    # the head's half-width, in face half-widths, kept inside this range
HEIGHT_OVER_WIDTH = 1.3     # the skull's half-height over its half-width (hair on top)
MASK_LEVEL = 0.5            # person-mask value counted as the head


@dataclass(frozen=True)
class HeadShell:
    centre: np.ndarray      # (3,) the pivot: x, y in pixels, z (larger is farther)
    axes: np.ndarray        # (3,) semi-axes in pixels

    @classmethod
    def fit(cls, pivot: np.ndarray, face_half_width: float, face_depth: float, person_mask: np.ndarray) -> "HeadShell":
        """The shell round the pivot, as wide as the person at the pivot's height (within
        WIDTH_RANGE of the face's width: shoulders or a hand are not the head), and reaching
        forward to the face oval's mean depth (`face_depth`): the ring round the face always
        lies behind the face's edge, so the face draws over it."""
        half = face_half_width * _mask_half_width(person_mask, pivot[:2], face_half_width)
        return cls(np.asarray(pivot, np.float64), np.array([half, HEIGHT_OVER_WIDTH * half, pivot[2] - face_depth]))

    def front_depth(self, xy: np.ndarray) -> np.ndarray:
        """(n,) the depth of the shell's front surface at image points (n, 2): the pivot's
        depth on and outside the silhouette."""
        u = (xy - self.centre[:2]) / self.axes[:2]
        inside = np.clip(1.0 - (u ** 2).sum(axis=1), 0.0, 1.0)
        return self.centre[2] - self.axes[2] * np.sqrt(inside)


def _mask_half_width(mask: np.ndarray, centre: np.ndarray, face_half_width: float) -> float:
    """Half the width of the person-mask run through `centre` along its row, in face
    half-widths, clipped to WIDTH_RANGE."""
    h, w = mask.shape
    y = int(np.clip(round(float(centre[1])), 0, h - 1))
    x = int(np.clip(round(float(centre[0])), 0, w - 1))
    row = mask[y] >= MASK_LEVEL
    if not row[x]:
        return WIDTH_RANGE[0]
    outside = np.flatnonzero(~row)
    left = outside[outside < x]
    right = outside[outside > x]
    x0 = left[-1] + 1 if len(left) else 0
    x1 = right[0] - 1 if len(right) else w - 1
    share = 0.5 * (x1 - x0) / max(face_half_width, 1.0)
    return float(np.clip(share, *WIDTH_RANGE))
