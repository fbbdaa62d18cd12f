"""Mirror layer: symmetric texture completion of a turning face's stretched side.

Turned towards the side the photo hardly shows (a portrait already turned a little, turned
further the other way), that side's skin triangles grow many times their photographed size
and the warp stretches a few pixels into smooth streaks. A face is nearly symmetric: the
same place on the other half (its mirror landmark) was photographed larger. Here, per skin
triangle, where the warp magnifies its own source more than MAGNIFIED and the mirror
triangle has more pixels than it, the frame's fine detail there is replaced by the mirror
triangle's fine detail warped onto the same place (the classic frontalisation technique).
Only the detail (the photo minus its blur) is taken: the frame's own colour and shading stay,
so the two halves' light and skin tone never mix. At rest and on small turns nothing changes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.landmarks import N_MESH
from talkface.face.expressions import smoothstep
from talkface.face.rig import FaceRig, Targets
from talkface.render.warp import KIND_SKIN, Warp, WarpMesh, affine_from_triangles, triangle_areas

DETAIL_SIGMA = 0.03    # IOD: the blur whose residual is the "fine detail" taken from the mirror
MAGNIFIED = (0.5, 1.0)  # log2 of own magnification (target area / source area): ramp of the weight
MIRROR_GAIN = (0.3, 1.0)  # log2 of mirror source area / own source area: ramp of the weight
WEIGHT_BLUR = 7        # pixels: box blur of the per-triangle weight (no steps along triangle edges)
MIN_WEIGHT = 0.02
# Only the sides of the face: near the middle (nose, mouth, the eyes' inner corners) the nearest
# mirror landmark is often the wrong one, and a nostril's detail landed on the cheek.
SIDE_SHARE = 0.4       # a triangle's centroid at least this share of the face's half width off the middle
EYES_AND_BROWS = frozenset(lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
                           + lm.RIGHT_BROW + lm.LEFT_BROW + lm.RIGHT_LOWER_RING + lm.LEFT_LOWER_RING)


def mirror_pairs(canonical: np.ndarray) -> np.ndarray:
    """(N_MESH,) the landmark across the face from each one: the nearest point to its mirror
    image in the rig's head frame (frontal), mirrored about the mesh's mean x."""
    pts = canonical[:N_MESH]
    mirrored = pts.copy()
    mirrored[:, 0] = 2 * pts[:, 0].mean() - pts[:, 0]
    d = ((mirrored[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1)


@dataclass(frozen=True, eq=False)
class MirrorLayer:
    """Built once per portrait: the face's skin triangles, their mirror triangles' source
    geometry, and the photo's fine detail."""

    tris: np.ndarray           # (F,) triangle ids (into the warp mesh) of the face's skin
    own_area: np.ndarray       # (F,) source areas
    mirror_src: np.ndarray     # (F, 3, 2) the mirror triangles' source vertices
    gain: np.ndarray           # (F,) weight share from how much larger the mirror is in the photo
    detail: np.ndarray         # (S, S, 3) float32: photo minus its blur
    n_tri: int

    @classmethod
    def build(cls, image: np.ndarray, rig: FaceRig, mesh: WarpMesh) -> "MirrorLayer":
        topo = mesh.topology
        tri = topo.triangles
        face_only = (tri < N_MESH).all(axis=1) & (topo.kinds == KIND_SKIN) & ~topo.is_lip
        canon_x = rig.canonical[:N_MESH, 0]
        mid, half = canon_x.mean(), 0.5 * np.ptp(canon_x)
        off_middle = np.abs(canon_x[np.minimum(tri, N_MESH - 1)].mean(axis=1) - mid) > SIDE_SHARE * half
        no_eye = ~np.isin(tri, list(EYES_AND_BROWS)).any(axis=1)
        face_only &= off_middle & no_eye
        ids = np.flatnonzero(face_only)
        pairs = mirror_pairs(rig.canonical)
        src = rig.source_xy.astype(np.float64)
        mirror_src = src[pairs[tri[ids]]]
        own = mesh.src_abs_area[ids]
        mirror_area = np.abs(triangle_areas(mirror_src))
        ratio = np.log2(np.maximum(mirror_area, 1e-6) / np.maximum(own, 1e-6))
        lo, hi = MIRROR_GAIN
        gain = smoothstep((ratio - lo) / (hi - lo))
        keep = gain > 0
        img = image.astype(np.float32)
        detail = img - cv2.GaussianBlur(img, (0, 0), max(DETAIL_SIGMA * rig.iod, 0.8))
        return cls(tris=ids[keep], own_area=own[keep], mirror_src=mirror_src[keep], gain=gain[keep],
                   detail=detail, n_tri=len(tri))

    def _weights(self, targets: Targets, mesh: WarpMesh) -> tuple[np.ndarray, np.ndarray]:
        """Per face triangle: the mirror's weight this frame, and the destination triangles."""
        dst = targets.xy.astype(np.float64)[mesh.triangles[self.tris]]
        mag = np.log2(np.maximum(np.abs(triangle_areas(dst)), 1e-6) / np.maximum(self.own_area, 1e-6))
        lo, hi = MAGNIFIED
        return self.gain * smoothstep((mag - lo) / (hi - lo)), dst

    def draw(self, frame: np.ndarray, mesh: WarpMesh, warp: Warp, targets: Targets) -> None:
        """In place: where a stretched face triangle's mirror has more of the photo, the frame's
        fine detail is swapped for the mirror's."""
        if not len(self.tris):
            return
        w_tri, dst = self._weights(targets, mesh)
        on = w_tri > MIN_WEIGHT
        if not on.any():
            return
        x0, y0 = np.maximum(np.floor(dst[on].reshape(-1, 2).min(axis=0)).astype(int) - WEIGHT_BLUR, 0)
        x1, y1 = np.minimum(np.ceil(dst[on].reshape(-1, 2).max(axis=0)).astype(int) + WEIGHT_BLUR, frame.shape[0])
        per_id = np.zeros(self.n_tri + 1, np.float32)
        per_id[self.tris[on]] = w_tri[on]
        ids = warp.ids[y0:y1, x0:x1].astype(np.intp)
        weight = cv2.blur(per_id.take(ids), (WEIGHT_BLUR, WEIGHT_BLUR))
        # the mirror's backward map: its own affine on its own triangles, the frame's elsewhere
        coef = np.zeros((self.n_tri + 1, 6), np.float32)
        coef[self.tris[on]] = affine_from_triangles(dst[on], self.mirror_src[on])
        has = np.zeros(self.n_tri + 1, bool)
        has[self.tris[on]] = True
        gx, gy = mesh.grid_x[y0:y1, x0:x1], mesh.grid_y[y0:y1, x0:x1]
        c = coef.take(ids, axis=0)
        inside = has.take(ids)
        own_x, own_y = warp.map_x[y0:y1, x0:x1], warp.map_y[y0:y1, x0:x1]
        mx = np.where(inside, c[..., 0] * gx + c[..., 1] * gy + c[..., 2], own_x).astype(np.float32)
        my = np.where(inside, c[..., 3] * gx + c[..., 4] * gy + c[..., 5], own_y).astype(np.float32)
        theirs = cv2.remap(self.detail, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        mine = cv2.remap(self.detail, own_x, own_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        region = frame[y0:y1, x0:x1]
        out = region.astype(np.float32) + weight[..., None] * (theirs - mine)
        region[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)

