"""The face's outline as seen: on a turn, the far side of the face oval goes behind the cheek.

The mesh's oval points are where the photo's face ends; turned away, they project inside the
face's own silhouette (the cheek folds over them). The band of hair, ear and background
between the oval and the ring round it then started behind the cheek, and what showed past
the fold was the band's outer part (background), not its inner (the temple's hair, the
sideburn): the far cheek was cut straight against the background. Here each oval point that
the face hides is moved out along its ray from the face's centre to the silhouette there,
so the band starts where the visible face ends. On the near side, and at rest, the oval is
the silhouette and nothing moves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RAY_WINDOW = 0.12     # radians either side of an oval point's ray whose face points make its silhouette


def _excess(face_xy: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per oval point: how far the face reaches past it on its ray, the centre, the unit rays."""
    centre = face_xy[ids].mean(axis=0)
    rel = face_xy - centre
    angle = np.arctan2(rel[:, 1], rel[:, 0])
    radius = np.hypot(rel[:, 0], rel[:, 1])
    gap = np.angle(np.exp(1j * (angle[None, :] - angle[ids][:, None])))     # (O, N), wrapped
    # the silhouette on the oval point's ray: the face points near that ray, projected on it
    along = np.where(np.abs(gap) <= RAY_WINDOW, radius[None, :] * np.cos(gap), -np.inf)
    unit = rel[ids] / np.maximum(radius[ids], 1e-6)[:, None]
    return along.max(axis=1) - radius[ids], centre, unit


@dataclass(frozen=True, eq=False)
class Outline:
    """Built once per portrait from the rest pose (where the oval is the silhouette, up to
    the reach the rest pose itself has past it, which is kept)."""

    ids: np.ndarray
    rest_excess: np.ndarray

    @classmethod
    def build(cls, rest_xy: np.ndarray, oval: tuple[int, ...]) -> "Outline":
        ids = np.array(oval)
        return cls(ids, _excess(rest_xy, ids)[0])

    def visible(self, face_xy: np.ndarray) -> np.ndarray:
        """face_xy (N, 2) with the hidden oval points moved out to the face's silhouette."""
        excess, _, unit = _excess(face_xy, self.ids)
        hidden = np.maximum(excess - self.rest_excess, 0.0)
        out = face_xy.copy()
        out[self.ids] += unit * hidden[:, None]
        return out
