"""Rendering stage: a piecewise-affine warp of the portrait crop, driven by the rig's
control points, with three layers the warp alone cannot make:

- the mouth interior (cavity, upper and lower teeth, tongue) drawn where the lips part;
- the eyeballs, drawn from a plate with the iris removed, so the lids can close over them;
- the irises, moved on top of the eyeballs for gaze and clipped by the lids.

Per frame: rasterise triangle ids in target space (far triangles first), turn them into a
backward map through per-triangle affine transforms, `cv2.remap`, then the layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import landmarks as lm
from .motion import Expression, MotionFrame
from .portrait import Portrait
from .rig import N_MESH, FaceRig, Targets

_KIND_SKIN, _KIND_MOUTH, _KIND_EYE_R, _KIND_EYE_L = 0, 1, 2, 3


@dataclass(frozen=True)
class _Eye:
    corners: tuple[int, int]
    polygon: tuple[int, ...]
    iris: tuple[int, ...]
    kind: int


_EYES = (
    _Eye((33, 133), lm.RIGHT_EYE_UPPER + tuple(reversed(lm.RIGHT_EYE_LOWER[1:-1])), lm.RIGHT_IRIS, _KIND_EYE_R),
    _Eye((263, 362), lm.LEFT_EYE_UPPER + tuple(reversed(lm.LEFT_EYE_LOWER[1:-1])), lm.LEFT_IRIS, _KIND_EYE_L),
)
_INNER_MOUTH = lm.LIPS_UPPER_INNER + tuple(reversed(lm.LIPS_LOWER_INNER[1:-1]))


def _affine_from_triangles(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Per-triangle 2x3 affine taking dst vertices to src vertices: (n, 3, 2) -> (n, 6)."""
    n = len(dst)
    a = np.concatenate([dst, np.ones((n, 3, 1), np.float64)], axis=2)
    det = np.linalg.det(a)
    ok = np.abs(det) > 1e-6
    coef = np.zeros((n, 3, 2))
    coef[ok] = np.linalg.solve(a[ok], src[ok])
    coef[~ok] = [[1, 0], [0, 1], [0, 0]]
    return coef.transpose(0, 2, 1).reshape(n, 6).astype(np.float32)


def _similarity(src_a, src_b, dst_a, dst_b) -> np.ndarray:
    """2x3 similarity taking the dst segment onto the src segment (a backward map)."""
    ds, dd = src_b - src_a, dst_b - dst_a
    zs, zd = complex(ds[0], ds[1]), complex(dd[0], dd[1])
    k = zs / (zd if abs(zd) > 1e-6 else 1e-6)
    m = np.array([[k.real, -k.imag], [k.imag, k.real]])
    t = src_a - m @ dst_a
    return np.concatenate([m, t[:, None]], axis=1).astype(np.float32)


def _fill_from(known: np.ndarray, image: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Fill the `fill` pixels from the `known` ones by normalised convolution at growing scales."""
    out = image.astype(np.float32).copy()
    k = known.astype(np.float32)
    todo = fill.copy()
    for sigma in (2, 4, 8, 16, 32):
        num = cv2.GaussianBlur(image.astype(np.float32) * k[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(k, (0, 0), sigma)[..., None]
        good = todo & (den[..., 0] > 1e-3)
        out[good] = (num / np.maximum(den, 1e-6))[good]
        todo &= ~good
        if not todo.any():
            break
    return out


class Renderer:
    """Built once per portrait; `render(targets)` makes one RGB frame."""

    def __init__(self, portrait: Portrait, rig: FaceRig) -> None:
        self.size = size = portrait.size
        self.rig = rig
        self.source = portrait.image
        src_xy = rig.source_xy.astype(np.float64)
        # control points for the mesh: the face without the irises (they live in their own layer)
        self.mesh_ids = np.array([i for i in range(rig.n_points) if not 468 <= i < N_MESH])
        self.src_xy = src_xy

        # Triangulate the face with its mouth open: that topology keeps the lips apart, so the
        # triangles inside the lips are exactly the mouth interior.
        from scipy.spatial import Delaunay

        opened = rig.targets(MotionFrame(expression=Expression(jaw_open=1.0, eye_open=0.3))).xy.astype(np.float64)
        tri, kinds = self._triangulate(opened)
        self.triangles = tri
        self.kinds = kinds
        self.kind_of_id = np.concatenate([kinds, [_KIND_SKIN]]).astype(np.uint8)  # last id: identity
        self.src_tri = src_xy[tri]
        self.src_area_sign = np.sign(self._areas(self.src_tri))

        grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
        self.grid_x, self.grid_y = grid_x, grid_y
        self.iod = rig.iod
        self._build_eye_plates(portrait)
        self._build_mouth_palette(portrait)

    def _triangulate(self, opened: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Triangles over all control points, and what each one is (skin, mouth, an eye).

        The lips get explicit bands of triangles between their inner and outer contours, and
        the mouth interior explicit triangles between the inner contours: a free
        triangulation cuts across a smiling mouth's concave corners. Delaunay, on the face
        with its mouth open, covers the rest.
        """
        from scipy.spatial import Delaunay

        def bands(a, b):
            out = []
            for i in range(len(a) - 1):
                out += [(a[i], a[i + 1], b[i + 1]), (a[i], b[i + 1], b[i])]
            return out

        uo, lo = lm.LIPS_UPPER_OUTER, lm.LIPS_LOWER_OUTER
        ui = (lm.INNER_CORNERS[0],) + lm.LIPS_UPPER_INNER[1:-1] + (lm.INNER_CORNERS[1],)
        li = (lm.INNER_CORNERS[0],) + lm.LIPS_LOWER_INNER[1:-1] + (lm.INNER_CORNERS[1],)
        lips = bands(uo, ui) + bands(lo, li)
        mouth = bands(ui, li)
        mouth = [t for t in mouth if len(set(t)) == 3]
        lips = [t for t in lips if len(set(t)) == 3]

        lip_ids = set(uo + lo + ui + li)
        outer_ids = set(uo + lo)
        others = np.array([i for i in self.mesh_ids if i not in lip_ids or i in outer_ids])
        tri = others[Delaunay(opened[others]).simplices]
        outer_poly = opened[list(uo) + list(reversed(lo[1:-1]))].astype(np.float32)
        keep = []
        for t in tri:
            c = opened[t].mean(axis=0)
            if all(v in outer_ids for v in t) or cv2.pointPolygonTest(outer_poly, (float(c[0]), float(c[1])), False) >= 0:
                continue
            keep.append(t)
        tri = np.concatenate([np.array(keep), np.array(lips), np.array(mouth)]).astype(np.int64)
        kinds = np.full(len(tri), _KIND_SKIN)
        kinds[len(tri) - len(mouth):] = _KIND_MOUTH
        centroids = opened[tri].mean(axis=1)
        for eye in _EYES:
            poly = opened[list(eye.polygon)].astype(np.float32)
            members = set(eye.polygon)
            for t, c in enumerate(centroids):
                if all(v in members for v in tri[t]) and cv2.pointPolygonTest(poly, (float(c[0]), float(c[1])), False) >= 0:
                    kinds[t] = eye.kind
        return tri, kinds

    @staticmethod
    def _areas(tri: np.ndarray) -> np.ndarray:
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))

    # ------------------------------------------------------------------ set-up
    def _build_eye_plates(self, portrait: Portrait) -> None:
        """An eyeball plate per eye: the eye opening with the iris replaced by sclera, and the
        sclera extended past the lids so a wider eye or a moved iris never shows skin."""
        pts = portrait.points
        img = self.source.astype(np.float32)
        plate = img.copy()
        self.iris_src = []
        self.eye_open_src = np.zeros((self.size, self.size), np.float32)
        for eye in _EYES:
            opening = lm.polygon_mask(pts[list(eye.polygon)], self.size) > 0.5
            centre = pts[eye.iris[0], :2]
            radius = float(np.mean(np.linalg.norm(pts[list(eye.iris[1:]), :2] - centre, axis=1)))
            self.iris_src.append((centre.astype(np.float32), radius))
            disc = np.zeros_like(opening, np.uint8)
            cv2.circle(disc, (int(round(centre[0])), int(round(centre[1]))), int(np.ceil(radius * 1.15)), 1, -1)
            disc = disc.astype(bool)
            sclera = opening & ~disc
            sclera = cv2.erode(sclera.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)  # lash-free sclera
            band = cv2.dilate(opening.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            if sclera.sum() < 4:  # eye closed or tiny: nothing to reuse
                continue
            filled = _fill_from(sclera, img, (band | disc) & ~sclera)
            region = (band | disc) & ~sclera
            plate[region] = filled[region]
            self.eye_open_src = np.maximum(self.eye_open_src, opening.astype(np.float32))
        self.eye_plate = plate.astype(np.uint8)

    def _build_mouth_palette(self, portrait: Portrait) -> None:
        pts = portrait.points
        cheek = lm.polygon_mask(pts[list(lm.FACE_OVAL)], self.size) > 0.5
        skin = self.source[cheek].reshape(-1, 3).astype(np.float32)
        self.skin_rgb = np.median(skin, axis=0) if len(skin) else np.array([180, 140, 120], np.float32)
        lum = float(self.skin_rgb @ np.array([0.299, 0.587, 0.114]))
        self.light = float(np.clip(lum / 165.0, 0.45, 1.15))
        lip = pts[list(lm.LIPS_LOWER_OUTER[2:-2]), :2].mean(axis=0).astype(int)
        self.lip_rgb = self.source[np.clip(lip[1], 0, self.size - 1), np.clip(lip[0], 0, self.size - 1)].astype(np.float32)

    # ------------------------------------------------------------------ per frame
    def render(self, targets: Targets, expression: Expression | None = None) -> np.ndarray:
        dst_xy = targets.xy.astype(np.float64)
        dst_tri = dst_xy[self.triangles]
        coef = _affine_from_triangles(dst_tri, self.src_tri)
        coef = np.concatenate([coef, np.array([[1, 0, 0, 0, 1, 0]], np.float32)])  # identity for uncovered pixels

        # draw far triangles first so the near ones win where a turn folds the mesh; skip flipped ones
        area = self._areas(dst_tri)
        valid = (np.sign(area) == self.src_area_sign) & (np.abs(area) > 1e-3) | (self.kinds != _KIND_SKIN)
        depth = targets.depth[self.triangles].mean(axis=1)
        order = np.argsort(-depth)
        ids = np.full((self.size, self.size), len(self.triangles), np.int32)
        fixed = np.round(dst_tri * 16).astype(np.int32)
        for t in order:
            if valid[t]:
                cv2.fillConvexPoly(ids, fixed[t], int(t), lineType=cv2.LINE_8, shift=4)

        c = coef[ids]
        map_x = c[..., 0] * self.grid_x + c[..., 1] * self.grid_y + c[..., 2]
        map_y = c[..., 3] * self.grid_x + c[..., 4] * self.grid_y + c[..., 5]
        frame = cv2.remap(self.source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        kind = self.kind_of_id[ids]
        for eye in _EYES:
            self._draw_eye(frame, kind, eye, targets)
        self._draw_mouth(frame, kind, targets)
        return frame

    def _bbox(self, pts: np.ndarray, pad: int) -> tuple[int, int, int, int]:
        x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
        return max(x0, 0), max(y0, 0), min(x1, self.size), min(y1, self.size)

    def _draw_eye(self, frame: np.ndarray, kind: np.ndarray, eye: _Eye, targets: Targets) -> None:
        poly = targets.xy[list(eye.polygon)]
        x0, y0, x1, y1 = self._bbox(poly, 3)
        if x1 <= x0 or y1 <= y0:
            return
        mask = (kind[y0:y1, x0:x1] == eye.kind).astype(np.float32)
        if not mask.any():
            return
        a, b = eye.corners
        m = _similarity(self.src_xy[a], self.src_xy[b], targets.xy[a].astype(np.float64), targets.xy[b].astype(np.float64))
        gx, gy = self.grid_x[y0:y1, x0:x1], self.grid_y[y0:y1, x0:x1]
        sx = m[0, 0] * gx + m[0, 1] * gy + m[0, 2]
        sy = m[1, 0] * gx + m[1, 1] * gy + m[1, 2]
        eyeball = cv2.remap(self.eye_plate, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

        # the iris: from the source, centred on its target position, clipped by the lids
        k = 0 if eye.kind == _KIND_EYE_R else 1
        c_src, radius = self.iris_src[k]
        c_dst = targets.xy[eye.iris[0]]
        scale = np.hypot(m[0, 0], m[1, 0])
        ix = c_src[0] + (gx - c_dst[0]) * scale
        iy = c_src[1] + (gy - c_dst[1]) * scale
        iris = cv2.remap(self.source, ix, iy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        r = np.hypot(ix - c_src[0], iy - c_src[1])
        visible_src = cv2.remap(self.eye_open_src, ix, iy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha_iris = np.clip((radius - r) / 1.2 + 0.5, 0, 1) * np.clip(visible_src * 1.5, 0, 1)
        eyeball = eyeball * (1 - alpha_iris[..., None]) + iris * alpha_iris[..., None]
        # soft lid edges, and the shadow the upper lid casts on the eyeball
        mask = cv2.GaussianBlur(mask, (0, 0), 0.7)
        region = frame[y0:y1, x0:x1].astype(np.float32)
        frame[y0:y1, x0:x1] = (region * (1 - mask[..., None]) + eyeball * mask[..., None]).astype(np.uint8)

    def _draw_mouth(self, frame: np.ndarray, kind: np.ndarray, targets: Targets) -> None:
        xy = targets.xy
        poly = xy[list(_INNER_MOUTH)]
        x0, y0, x1, y1 = self._bbox(poly, 4)
        if x1 <= x0 or y1 <= y0:
            return
        mask = (kind[y0:y1, x0:x1] == _KIND_MOUTH).astype(np.float32)
        if mask.sum() < 2:
            return
        iod_now = self.iod * float(np.linalg.norm(xy[263] - xy[33]) / (np.linalg.norm(self.src_xy[263] - self.src_xy[33]) + 1e-6))
        left, right = xy[78].astype(np.float64), xy[308].astype(np.float64)
        centre = (left + right) / 2
        axis = right - left
        half_w = max(np.linalg.norm(axis) / 2, 1.0)
        ux = axis / (2 * half_w)
        vy = np.array([-ux[1], ux[0]])
        gx, gy = self.grid_x[y0:y1, x0:x1] - centre[0], self.grid_y[y0:y1, x0:x1] - centre[1]
        u = (gx * ux[0] + gy * ux[1]) / half_w        # -1..1 corner to corner
        v = gx * vy[0] + gy * vy[1]                    # pixels, down is positive

        def lip_line(ids):
            p = xy[list(ids)].astype(np.float64) - centre
            pu = (p @ ux) / half_w
            pv = p @ vy
            order = np.argsort(pu)
            return np.interp(u, pu[order], pv[order])

        v_up = lip_line(lm.LIPS_UPPER_INNER)
        v_lo = lip_line(lm.LIPS_LOWER_INNER)
        opening = np.maximum(v_lo - v_up, 0)
        light = self.light
        # cavity: dark, warm, darkest at the back
        depth = np.clip(1 - np.abs(u) ** 2, 0, 1) * np.clip(opening / (0.25 * iod_now + 1e-6), 0, 1)
        cavity = np.array([70, 28, 30], np.float32) * light * (1 - 0.55 * depth)[..., None]
        out = np.broadcast_to(cavity, u.shape + (3,)).copy()
        # tongue: low in the mouth, visible when it opens wide
        tongue_top = v_lo - 0.16 * iod_now
        t_alpha = np.clip((v - tongue_top) / 2.0, 0, 1) * np.clip(1 - np.abs(u) / 0.75, 0, 1) ** 0.5
        tongue = np.array([160, 78, 80], np.float32) * light * (0.75 + 0.25 * np.clip((v - tongue_top) / (0.1 * iod_now), 0, 1))[..., None]
        out = out * (1 - t_alpha[..., None]) + tongue * t_alpha[..., None]
        # teeth: upper set hangs from the upper lip, lower set rises from the lower lip
        tooth_w = 0.105 * iod_now / half_w
        gaps = 1 - 0.13 * np.exp(-(((np.abs(u) + tooth_w / 2) % tooth_w - tooth_w / 2) / (0.008 * iod_now / half_w)) ** 2)
        side_shade = np.clip(1 - 0.65 * np.abs(u) ** 2, 0, 1)
        enamel = np.array([236, 230, 214], np.float32) * light
        up_h = 0.12 * iod_now
        up_alpha = np.clip((v_up + up_h - v) / 1.5, 0, 1) * np.clip(np.abs(1 - np.abs(u)) / 0.2, 0, 1) * (np.abs(u) < 0.9)
        up_shade = (0.55 + 0.45 * np.clip((v - v_up) / (0.05 * iod_now), 0, 1)) * side_shade * gaps
        out = out * (1 - up_alpha[..., None]) + enamel * up_shade[..., None] * up_alpha[..., None]
        lo_h = 0.09 * iod_now
        lo_alpha = np.clip((v - (v_lo - lo_h)) / 1.5, 0, 1) * (np.abs(u) < 0.75) * np.clip(opening / (0.18 * iod_now), 0, 1)
        lo_shade = 0.62 * side_shade * gaps
        out = out * (1 - lo_alpha[..., None]) + enamel * lo_shade[..., None] * lo_alpha[..., None]

        alpha = cv2.GaussianBlur(mask, (0, 0), 0.8)
        region = frame[y0:y1, x0:x1].astype(np.float32)
        # the inner edge of the lips falls into shadow where the mouth opens
        ring = np.clip(cv2.GaussianBlur(mask, (0, 0), 2.0) - alpha, 0, 1)
        region *= (1 - 0.35 * ring)[..., None]
        frame[y0:y1, x0:x1] = np.clip(region * (1 - alpha[..., None]) + out * alpha[..., None], 0, 255).astype(np.uint8)


def render_motion(renderer: Renderer, motion: MotionFrame) -> np.ndarray:
    return renderer.render(renderer.rig.targets(motion), motion.expression)
