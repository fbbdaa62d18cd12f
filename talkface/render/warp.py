"""Warp layer: the triangle mesh over the rig's control points, and per frame the backward
map it makes (which source pixel each output pixel shows).

Per frame: rasterise triangle ids in target space (far triangles first), turn them into a
backward map through per-triangle affine transforms. The id raster also tells the other
layers which pixels are mouth opening or eye.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.face.rig import FaceRig, Targets
from talkface.motion.generator import Expression, MotionFrame

KIND_SKIN, KIND_MOUTH, KIND_EYE_R, KIND_EYE_L = 0, 1, 2, 3

# The pose the mesh is triangulated in: mouth open, so the triangles inside the lips are
# exactly the mouth interior; eyes a little open.
TRIANGULATION_POSE = MotionFrame(expression=Expression(jaw_open=1.0, eye_open=0.3))
SQUEEZED_AREA = 0.35     # a triangle below this share of its source area takes its donor's warp
MIN_AREA = 1e-3          # pixels^2: flatter triangles are not drawn
SUBPIXEL_BITS = 4        # fixed-point vertices for cv2.fillConvexPoly
HOLE_PAD = 8             # pixels round the holes searched for their nearest covered pixel
DEGENERATE_DET = 1e-6
IDENTITY_AFFINE = (1, 0, 0, 0, 1, 0)


@dataclass(frozen=True)
class EyeRegion:
    corners: tuple[int, int]   # outer, inner
    polygon: tuple[int, ...]   # the opening: upper lid outer -> inner, then the lower lid back
    iris: tuple[int, ...]      # centre first
    kind: int


EYES = (
    EyeRegion((lm.RIGHT_EYE_UPPER[0], lm.RIGHT_EYE_UPPER[-1]),
              lm.RIGHT_EYE_UPPER + tuple(reversed(lm.RIGHT_EYE_LOWER[1:-1])), lm.RIGHT_IRIS, KIND_EYE_R),
    EyeRegion((lm.LEFT_EYE_UPPER[0], lm.LEFT_EYE_UPPER[-1]),
              lm.LEFT_EYE_UPPER + tuple(reversed(lm.LEFT_EYE_LOWER[1:-1])), lm.LEFT_IRIS, KIND_EYE_L),
)
INNER_MOUTH = lm.LIPS_UPPER_INNER + tuple(reversed(lm.LIPS_LOWER_INNER[1:-1]))


def affine_from_triangles(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Per-triangle 2x3 affine taking dst vertices to src vertices: (n, 3, 2) -> (n, 6).
    Closed form (edge matrices and a 2x2 inverse): a batched LAPACK solve costs 50x more."""
    d1, d2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
    s1, s2 = src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = np.abs(det) > DEGENERATE_DET
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # inverse of D = [d1 d2] (columns): [[d2y, -d2x], [-d1y, d1x]] / det; A = S D^-1
    a = (s1[:, 0] * d2[:, 1] - s2[:, 0] * d1[:, 1]) * inv_det
    b = (s2[:, 0] * d1[:, 0] - s1[:, 0] * d2[:, 0]) * inv_det
    c = (s1[:, 1] * d2[:, 1] - s2[:, 1] * d1[:, 1]) * inv_det
    d = (s2[:, 1] * d1[:, 0] - s1[:, 1] * d2[:, 0]) * inv_det
    tx = src[:, 0, 0] - a * dst[:, 0, 0] - b * dst[:, 0, 1]
    ty = src[:, 0, 1] - c * dst[:, 0, 0] - d * dst[:, 0, 1]
    coef = np.stack([a, b, tx, c, d, ty], axis=1)
    coef[~ok] = IDENTITY_AFFINE
    return coef.astype(np.float32)


def triangle_areas(tri: np.ndarray) -> np.ndarray:
    """Signed areas of (n, 3, 2) triangles."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))


def bbox(pts: np.ndarray, pad: int, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the pixel box round the points, padded, inside the frame."""
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
    return max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)


def _bands(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Two triangles per step between two contours of the same length; degenerate ones dropped."""
    out = []
    for i in range(len(a) - 1):
        out += [(a[i], a[i + 1], b[i + 1]), (a[i], b[i + 1], b[i])]
    return [t for t in out if len(set(t)) == 3]


def _inside(poly: np.ndarray, point: np.ndarray) -> bool:
    return cv2.pointPolygonTest(poly, (float(point[0]), float(point[1])), False) >= 0


@dataclass(frozen=True, eq=False)
class Topology:
    triangles: np.ndarray   # (T, 3) control point ids
    kinds: np.ndarray       # (T,) KIND_*
    is_lip: np.ndarray      # (T,) bool: the bands between the lips' outer and inner contours


def triangulate(opened: np.ndarray, n_points: int) -> Topology:
    """Triangles over all control points, and what each one is (skin, mouth, an eye).

    The lips get explicit bands of triangles between their inner and outer contours, and
    the mouth interior explicit triangles between the inner contours: a free
    triangulation cuts across a smiling mouth's concave corners. Delaunay, on the face
    with its mouth open, covers the rest.
    """
    from scipy.spatial import Delaunay

    uo, lo = lm.LIPS_UPPER_OUTER, lm.LIPS_LOWER_OUTER
    ui = (lm.INNER_CORNERS[0],) + lm.LIPS_UPPER_INNER[1:-1] + (lm.INNER_CORNERS[1],)
    li = (lm.INNER_CORNERS[0],) + lm.LIPS_LOWER_INNER[1:-1] + (lm.INNER_CORNERS[1],)
    lips = _bands(uo, ui) + _bands(lo, li)
    mouth = _bands(ui, li)
    # the control points without the irises (they live in the eye layer); the rings inside the
    # lips are not vertices either: the bands go straight from contour to contour
    irises = set(lm.RIGHT_IRIS + lm.LEFT_IRIS)
    lip_ids = set(uo + lo + ui + li + lm.LIPS_UPPER_RING2 + lm.LIPS_UPPER_RING3 + lm.LIPS_LOWER_RING2
                  + lm.LIPS_LOWER_RING3)
    outer_ids = set(uo + lo)
    others = np.array([i for i in range(n_points) if i not in irises and (i not in lip_ids or i in outer_ids)])
    tri = others[Delaunay(opened[others]).simplices]
    outer_poly = opened[list(uo) + list(reversed(lo[1:-1]))].astype(np.float32)
    keep = [t for t in tri if not (all(v in outer_ids for v in t) or _inside(outer_poly, opened[t].mean(axis=0)))]
    tri = np.concatenate([np.array(keep), np.array(lips), np.array(mouth)]).astype(np.int64)
    kinds = np.full(len(tri), KIND_SKIN)
    kinds[len(tri) - len(mouth):] = KIND_MOUTH
    is_lip = np.zeros(len(tri), bool)
    is_lip[len(keep):len(keep) + len(lips)] = True
    centroids = opened[tri].mean(axis=1)
    for eye in EYES:
        poly = opened[list(eye.polygon)].astype(np.float32)
        members = set(eye.polygon)
        for t, c in enumerate(centroids):
            if all(v in members for v in tri[t]) and _inside(poly, c):
                kinds[t] = eye.kind
    return Topology(tri, kinds, is_lip)


def donors(tri: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """For each mouth or eye triangle, a skin triangle sharing an edge with it (-1 if none):
    mouth triangles prefer the upper lip's (the one nearer the top)."""
    edges: dict[tuple[int, int], list[int]] = {}
    for t, (a, b, c) in enumerate(tri):
        if kinds[t] == KIND_SKIN:
            for e in ((a, b), (b, c), (a, c)):
                edges.setdefault((min(e), max(e)), []).append(t)
    upper = set(lm.LIPS_UPPER_INNER)
    donor = np.full(len(tri), -1, np.int64)
    for t, (a, b, c) in enumerate(tri):
        if kinds[t] == KIND_SKIN:
            continue
        found = []
        for e in ((a, b), (b, c), (a, c)):
            found += [(sum(v in upper for v in e), d) for d in edges.get((min(e), max(e)), [])]
        if found:
            donor[t] = max(found)[1]
    return donor


def _fill_holes(ids: np.ndarray, gap: int) -> None:
    """In place: pixels no triangle covers (a fold, a closed mouth or eye) take the nearest
    covered pixel's triangle."""
    holes = ids == gap
    if not holes.any():
        return
    ys, xs = np.nonzero(holes)
    h, w = ids.shape
    y0, y1 = max(ys.min() - HOLE_PAD, 0), min(ys.max() + HOLE_PAD + 1, h)
    x0, x1 = max(xs.min() - HOLE_PAD, 0), min(xs.max() + HOLE_PAD + 1, w)
    sub_holes = holes[y0:y1, x0:x1]
    sub_ids = ids[y0:y1, x0:x1]
    if not (~sub_holes).any():
        return
    _, labels = cv2.distanceTransformWithLabels(sub_holes.astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    covered = np.flatnonzero(~sub_holes.ravel())   # labels number the covered pixels in scan order
    flat = sub_ids.ravel().copy()
    hole_idx = np.flatnonzero(sub_holes.ravel())
    flat[hole_idx] = flat[covered[labels.ravel()[hole_idx] - 1]]
    ids[y0:y1, x0:x1] = flat.reshape(sub_ids.shape)


@dataclass(frozen=True, eq=False)
class Warp:
    """One frame's warp: the triangle id of every pixel and the backward map."""

    ids: np.ndarray     # (S, S) int32; len(triangles) only where no triangle reached
    map_x: np.ndarray   # (S, S) float32 source x of every output pixel
    map_y: np.ndarray


@dataclass(frozen=True, eq=False)
class WarpMesh:
    """Built once per portrait: the triangles, what each is, and their source geometry."""

    size: int
    topology: Topology
    kind_of_id: np.ndarray     # (T + 1,) uint8 kind per triangle id; the last id (identity) is skin
    src_tri: np.ndarray        # (T, 3, 2) float64
    src_area_sign: np.ndarray
    src_abs_area: np.ndarray
    donor: np.ndarray          # (T,) int64, -1: none
    grid_x: np.ndarray         # (S, S) float32 pixel x
    grid_y: np.ndarray

    @classmethod
    def build(cls, rig: FaceRig) -> "WarpMesh":
        opened = rig.targets(TRIANGULATION_POSE).xy.astype(np.float64)
        topo = triangulate(opened, rig.n_points)
        src_tri = rig.source_xy.astype(np.float64)[topo.triangles]
        areas = triangle_areas(src_tri)
        grid_y, grid_x = np.mgrid[0:rig.size, 0:rig.size].astype(np.float32)
        return cls(size=rig.size, topology=topo,
                   kind_of_id=np.concatenate([topo.kinds, [KIND_SKIN]]).astype(np.uint8),
                   src_tri=src_tri, src_area_sign=np.sign(areas), src_abs_area=np.abs(areas),
                   donor=donors(topo.triangles, topo.kinds), grid_x=grid_x, grid_y=grid_y)

    @property
    def triangles(self) -> np.ndarray:
        return self.topology.triangles

    @property
    def kinds(self) -> np.ndarray:
        return self.topology.kinds

    def _affines(self, dst_tri: np.ndarray, area: np.ndarray) -> np.ndarray:
        """(T + 1, 6) backward affines; the last is the identity (never used after the gap fill)."""
        coef = affine_from_triangles(dst_tri, self.src_tri)
        # The mouth opening and a squeezed eye take their warp from the lip or lid next to them:
        # a nearly flat triangle's own affine magnifies a sliver of the source into streaks.
        kinds = self.topology.kinds
        squeezed = (self.donor >= 0) & ((kinds == KIND_MOUTH) | (np.abs(area) < SQUEEZED_AREA * self.src_abs_area))
        coef[squeezed] = coef[self.donor[squeezed]]
        return np.concatenate([coef, np.array([IDENTITY_AFFINE], np.float32)])

    def triangle_ids(self, targets: Targets, fill_holes: bool = True) -> np.ndarray:
        """Triangle id per pixel; len(triangles) where none reached (only with fill_holes off)."""
        dst_tri = targets.xy.astype(np.float64)[self.topology.triangles]
        return self._rasterise(dst_tri, triangle_areas(dst_tri), targets.depth, fill_holes)

    def _rasterise(self, dst_tri: np.ndarray, area: np.ndarray, depth: np.ndarray, fill_holes: bool = True) -> np.ndarray:
        """Triangle id per pixel. Far triangles are drawn first so the near ones win where a turn
        folds the mesh; a skin triangle turned away from the camera (flipped) is not drawn: the
        hole it leaves takes the warp of the nearest front-facing one, which continues the
        surface without a crease."""
        topo = self.topology
        valid = (np.abs(area) > MIN_AREA) & ((np.sign(area) == self.src_area_sign) | (topo.kinds != KIND_SKIN)
                                             | topo.is_lip)
        order = np.argsort(-depth[topo.triangles].mean(axis=1))
        gap = len(topo.triangles)
        ids = np.full((self.size, self.size), gap, np.int32)
        order = order[valid[order]]
        fixed = np.round(dst_tri[order] * (1 << SUBPIXEL_BITS)).astype(np.int32)
        fill = cv2.fillConvexPoly
        for t, poly in zip(order.tolist(), fixed):    # (per call: Python's overhead is most of the cost)
            fill(ids, poly, t, cv2.LINE_8, SUBPIXEL_BITS)
        if fill_holes:
            _fill_holes(ids, gap)
        return ids

    def warp(self, targets: Targets) -> Warp:
        dst_tri = targets.xy.astype(np.float64)[self.topology.triangles]
        area = triangle_areas(dst_tri)
        coef = self._affines(dst_tri, area)
        ids = self._rasterise(dst_tri, area, targets.depth)
        # the backward map, one coefficient plane at a time and in place: gathering all six
        # per pixel and combining strided views cost twice as much
        index = ids.astype(np.intp)   # take converts int32 indices on every call otherwise
        k = [plane.take(index) for plane in np.ascontiguousarray(coef.T)]
        map_x, map_y = k[0], k[3]
        map_x *= self.grid_x
        k[1] *= self.grid_y
        map_x += k[1]
        map_x += k[2]
        map_y *= self.grid_x
        k[4] *= self.grid_y
        map_y += k[4]
        map_y += k[5]
        return Warp(ids, map_x, map_y)

