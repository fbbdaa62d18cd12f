"""Rendering stage: a piecewise-affine warp of the portrait crop, driven by the rig's
control points, with the layers the warp alone cannot make:

- the person, warped, over a still background plate (the photo's background with the band
  a moving head may uncover filled in), composited with the person mask as a matte;
- the mouth interior (cavity, upper and lower teeth, tongue) drawn where the lips part;
- the eyeballs, drawn from a plate with the iris removed, so the lids can close over them;
- the irises, moved on top of the eyeballs for gaze and clipped by the lids.

Per frame: rasterise triangle ids in target space (far triangles first), turn them into a
backward map through per-triangle affine transforms, `cv2.remap` of the premultiplied
person and its alpha over the plate, then the face's layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.portrait import Portrait
from talkface.face.rig import N_MESH, FaceRig, Targets
from talkface.motion.generator import Expression, MotionFrame

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
    """Per-triangle 2x3 affine taking dst vertices to src vertices: (n, 3, 2) -> (n, 6).
    Closed form (edge matrices and a 2x2 inverse): a batched LAPACK solve costs 50x more."""
    d1, d2 = dst[:, 1] - dst[:, 0], dst[:, 2] - dst[:, 0]
    s1, s2 = src[:, 1] - src[:, 0], src[:, 2] - src[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = np.abs(det) > 1e-6
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    # inverse of D = [d1 d2] (columns): [[d2y, -d2x], [-d1y, d1x]] / det; A = S D^-1
    a = (s1[:, 0] * d2[:, 1] - s2[:, 0] * d1[:, 1]) * inv_det
    b = (s2[:, 0] * d1[:, 0] - s1[:, 0] * d2[:, 0]) * inv_det
    c = (s1[:, 1] * d2[:, 1] - s2[:, 1] * d1[:, 1]) * inv_det
    d = (s2[:, 1] * d1[:, 0] - s1[:, 1] * d2[:, 0]) * inv_det
    tx = src[:, 0, 0] - a * dst[:, 0, 0] - b * dst[:, 0, 1]
    ty = src[:, 0, 1] - c * dst[:, 0, 0] - d * dst[:, 0, 1]
    coef = np.stack([a, b, tx, c, d, ty], axis=1)
    coef[~ok] = (1, 0, 0, 0, 1, 0)
    return coef.astype(np.float32)


def _similarity(src_a, src_b, dst_a, dst_b) -> np.ndarray:
    """2x3 similarity taking the dst segment onto the src segment (a backward map)."""
    ds, dd = src_b - src_a, dst_b - dst_a
    zs, zd = complex(ds[0], ds[1]), complex(dd[0], dd[1])
    k = zs / (zd if abs(zd) > 1e-6 else 1e-6)
    m = np.array([[k.real, -k.imag], [k.imag, k.real]])
    t = src_a - m @ dst_a
    return np.concatenate([m, t[:, None]], axis=1).astype(np.float32)


_FILL_SIGMAS = (2, 4, 8, 16, 32)


def _fill_from(known: np.ndarray, image: np.ndarray, fill: np.ndarray) -> np.ndarray:
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
    reach = 3 * _FILL_SIGMAS[-1]
    y0, y1 = max(ys.min() - reach, 0), min(ys.max() + reach + 1, fill.shape[0])
    x0, x1 = max(xs.min() - reach, 0), min(xs.max() + reach + 1, fill.shape[1])
    k = known[y0:y1, x0:x1].astype(np.float32)
    weighted = out[y0:y1, x0:x1] * k[..., None]
    num = np.zeros_like(weighted)
    den = np.zeros_like(k)
    for level, sigma in enumerate(_FILL_SIGMAS):
        w = 0.05 ** level
        num += w * cv2.GaussianBlur(weighted, (0, 0), sigma)
        den += w * cv2.GaussianBlur(k, (0, 0), sigma)
    good = fill[y0:y1, x0:x1] & (den > 1e-9)
    out[y0:y1, x0:x1][good] = num[good] / den[good, None]
    return out


def _grain(rgb: np.ndarray) -> np.ndarray:
    """The picture's own fine grain (film, paint, stone): its luminance minus a blurred copy."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.clip(grey - cv2.GaussianBlur(grey, (0, 0), 1.5), -20, 20)


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
        opened = rig.targets(MotionFrame(expression=Expression(jaw_open=1.0, eye_open=0.3))).xy.astype(np.float64)
        tri, kinds = self._triangulate(opened)
        self.triangles = tri
        self.kinds = kinds
        self.kind_of_id = np.concatenate([kinds, [_KIND_SKIN]]).astype(np.uint8)  # last id: identity
        self.src_tri = src_xy[tri]
        self.src_area_sign = np.sign(self._areas(self.src_tri))
        self.src_abs_area = np.abs(self._areas(self.src_tri))
        self.donor = self._donors(tri, kinds)

        grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
        self.grid_x, self.grid_y = grid_x, grid_y
        self.iod = rig.iod
        self._build_eye_plates(portrait)
        self._build_mouth_palette(portrait)
        self.warp_source = self._lips_filled(portrait)
        self._build_background(portrait)

    BACKGROUND_BAND = 0.12   # how far inside the person's silhouette the background plate is invented
    BACKGROUND_ALPHA = 0.02  # person-mask value below which a pixel is background as photographed
    BACKGROUND_FRINGE = 0.016   # ...unless this close to the person (fraction of the size)

    def _build_background(self, portrait: Portrait) -> None:
        """The picture as a matte: the person over a background plate (the background with the
        person's outer band filled in from around it), src = a P + (1 - a) B. The warp moves
        the person and its alpha; the plate stays. At rest this is exactly the photo, and a
        turning head keeps its hair's outline and uncovers invented background, where a
        single warp squeezed the hair's outer part against the still background beside it
        (cutting it along a triangle's edge)."""
        # the face itself always moves, whatever the segmentation says (a painted or drawn face
        # can fall outside its person mask)
        face = cv2.GaussianBlur(lm.face_oval_mask(portrait.points, self.size), (0, 0), 2)
        a = np.maximum(np.clip(portrait.person_mask, 0, 1), np.clip(2 * face, 0, 1)).astype(np.float32)
        person = (a >= self.BACKGROUND_ALPHA).astype(np.uint8)
        dist = cv2.distanceTransform(person, cv2.DIST_L2, 3)
        band = (person > 0) & (dist <= self.BACKGROUND_BAND * self.size)
        # the background is sampled clear of the person's fringe (flyaway hair the mask misses,
        # a dark halo): taken into the plate, it stayed behind as a ghost outline of the hair.
        # The fringe itself is filled too; the premultiplied person carries it exactly.
        fringe = max(2, int(round(self.BACKGROUND_FRINGE * self.size)))
        near = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * fringe + 1, 2 * fringe + 1))) > 0
        plate = _fill_from(~near, self.source, band | (near & (person == 0)))
        self.plate = np.clip(np.round(plate), 0, 255).astype(np.uint8)
        plate = self.plate.astype(np.float32)
        # alpha in 1/255 steps; the fringe the plate replaced gets the smallest step, so the
        # matte's edge zone (0 < alpha < 255) is exactly where the person and plate mix
        alpha = np.round(a * 255).astype(np.uint8)
        alpha[(alpha == 0) & (self.plate != self.source).any(axis=2)] = 1
        self.alpha = alpha
        share = (1 - alpha.astype(np.float32) / 255)[..., None]
        # the person premultiplied by its alpha, what the warp carries along the matte's edge
        self.premultiplied = self.warp_source.astype(np.float32) - share * plate

    def _composite(self, frame: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> None:
        """In place over the single warp of the picture: the plate where the warped person is
        transparent, premultiplied person over plate along its edge. Inside the person the
        warp itself is the answer, so only the edge pays for the matte's float arithmetic."""
        a = cv2.remap(self.alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.copyTo(self.plate, cv2.compare(a, 0, cv2.CMP_EQ), frame)
        edge = np.flatnonzero((a > 0) & (a < 255))
        if not len(edge):
            return
        # the edge pixels' map entries laid out in rows: cv2.remap pays per row
        rows = -(-len(edge) // 512)
        mx = np.zeros(rows * 512, np.float32)
        my = np.zeros(rows * 512, np.float32)
        mx[:len(edge)] = map_x.ravel().take(edge)
        my[:len(edge)] = map_y.ravel().take(edge)
        person = cv2.remap(self.premultiplied, mx.reshape(rows, 512), my.reshape(rows, 512), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:len(edge)]
        share = 1 - a.ravel().take(edge).astype(np.float32)[:, None] / 255
        mixed = person + share * self.plate.reshape(-1, 3).take(edge, axis=0)
        frame.reshape(-1, 3)[edge] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)

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

        # the rings inside the lips are not vertices: the bands go straight from contour to contour
        lip_ids = set(uo + lo + ui + li + lm.LIPS_UPPER_RING2 + lm.LIPS_UPPER_RING3 + lm.LIPS_LOWER_RING2
                      + lm.LIPS_LOWER_RING3)
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
        self.is_lip = np.zeros(len(tri), bool)
        self.is_lip[len(keep):len(keep) + len(lips)] = True
        centroids = opened[tri].mean(axis=1)
        for eye in _EYES:
            poly = opened[list(eye.polygon)].astype(np.float32)
            members = set(eye.polygon)
            for t, c in enumerate(centroids):
                if all(v in members for v in tri[t]) and cv2.pointPolygonTest(poly, (float(c[0]), float(c[1])), False) >= 0:
                    kinds[t] = eye.kind
        return tri, kinds

    @staticmethod
    def _donors(tri: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """For each mouth or eye triangle, a skin triangle sharing an edge with it (-1 if none):
        mouth triangles prefer the upper lip's (the one nearer the top)."""
        edges: dict[tuple[int, int], list[int]] = {}
        for t, (a, b, c) in enumerate(tri):
            if kinds[t] == _KIND_SKIN:
                for e in ((a, b), (b, c), (a, c)):
                    edges.setdefault((min(e), max(e)), []).append(t)
        upper = set(lm.LIPS_UPPER_INNER)
        donor = np.full(len(tri), -1, np.int64)
        for t, (a, b, c) in enumerate(tri):
            if kinds[t] == _KIND_SKIN:
                continue
            found = []
            for e in ((a, b), (b, c), (a, c)):
                found += [(sum(v in upper for v in e), d) for d in edges.get((min(e), max(e)), [])]
            if found:
                donor[t] = max(found)[1]
        return donor

    @staticmethod
    def _areas(tri: np.ndarray) -> np.ndarray:
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))

    # ------------------------------------------------------------------ set-up
    def _build_eye_plates(self, portrait: Portrait) -> None:
        """An eyeball plate per eye: the eye opening with the iris replaced by sclera, and the
        sclera extended past the lids so a wider eye or a moved iris never shows skin. And an
        iris plate: the source with each iris completed to a whole disc where it is mostly
        visible, so a widened eye or an upward look shows a round iris, not one cut flat
        along the portrait's own lid line."""
        pts = portrait.points
        img = self.source.astype(np.float32)
        lum = cv2.cvtColor(self.source, cv2.COLOR_RGB2GRAY)
        plate = img.copy()
        iris_plate = img.copy()
        self.iris_src = []
        self.iris_shown_src = np.zeros((self.size, self.size), np.float32)   # where the iris layer may sample
        self.eye_own = np.zeros((self.size, self.size), np.float32)   # where the eyeball plate is the photo itself
        for eye in _EYES:
            opening = lm.polygon_mask(pts[list(eye.polygon)], self.size) > 0.5
            centre = pts[eye.iris[0], :2]
            radius = float(np.mean(np.linalg.norm(pts[list(eye.iris[1:]), :2] - centre, axis=1)))
            self.iris_src.append((centre.astype(np.float32), radius))
            c = (int(round(centre[0])), int(round(centre[1])))
            disc = np.zeros_like(opening, np.uint8)
            cv2.circle(disc, c, int(np.ceil(radius * 1.2)), 1, -1)   # with the limbus's dark ring
            disc = disc.astype(bool)
            # sclera: clear of the lashes, the limbus and the lid's shadow (its darker pixels)
            sclera = cv2.erode((opening & ~disc).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if sclera.sum() >= 16:
                sclera &= lum >= np.percentile(lum[sclera], 25)
            # as far past the lids as they may open (eye_open 2 lifts the upper lid half the opening)
            reach = max(4, int(np.ceil(0.6 * np.ptp(pts[list(eye.polygon), 1]))))
            band = cv2.dilate(opening.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
            if sclera.sum() < 4:  # eye closed or tiny: nothing to reuse
                continue
            region = band | disc
            filled = _fill_from(sclera, img, region)
            # the sclera's own pixels (veins, a highlight) kept inside, faded into the fill at their
            # edge: a hard edge there showed as a thin line when the iris moved over it. (Not its
            # darker ones: an iris's dark rim past the mesh's radius left a ghost ring behind.)
            keep = np.clip(2 * cv2.GaussianBlur(sclera.astype(np.float32), (0, 0), 0.8) - 1, 0, 1)
            plate[region] = keep[region][:, None] * img[region] + (1 - keep[region][:, None]) * filled[region]
            self.eye_own = np.maximum(self.eye_own, keep)
            self.iris_shown_src = np.maximum(self.iris_shown_src, opening.astype(np.float32))
            iris = np.zeros_like(opening, np.uint8)
            cv2.circle(iris, c, int(np.ceil(radius)) + 1, 1, -1)
            iris = iris.astype(bool)
            seen = iris & cv2.erode(opening.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if seen.sum() >= 0.5 * iris.sum():
                iris_plate[iris] = _fill_from(seen, img, iris & ~seen)[iris]
                self.iris_shown_src = np.maximum(self.iris_shown_src, iris.astype(np.float32))
        self.eye_plate = plate.astype(np.uint8)
        self.iris_plate = np.clip(iris_plate, 0, 255).astype(np.uint8)
        self._build_lid_plate(portrait)

    def _build_lid_plate(self, portrait: Portrait) -> None:
        """The closed lid's skin: each eye opening (and its lash line) filled from the skin
        around it; and each eye's lash colour, for the line a closing lid draws."""
        pts = portrait.points
        img = self.source.astype(np.float32)
        plate = img.copy()
        lum = cv2.cvtColor(self.source, cv2.COLOR_RGB2GRAY)
        grain = _grain(self.source)
        self.lash_rgb = []
        r_lash = max(2, int(round(0.05 * self.iod)))
        for eye in _EYES:
            opening = lm.polygon_mask(pts[list(eye.polygon)], self.size) > 0.5
            near = cv2.dilate(opening.astype(np.uint8), np.ones((2 * r_lash + 1, 2 * r_lash + 1), np.uint8)).astype(bool)
            around = cv2.dilate(opening.astype(np.uint8), np.ones((6 * r_lash + 1, 6 * r_lash + 1), np.uint8)).astype(bool)
            # the lid is the skin above the eye coming down: sample above the eye, beside it a little
            centre_y = pts[list(eye.polygon), 1].mean()
            known = around & ~near & (self.grid_y < centre_y)
            # skin only: drop the darker pixels (lashes, brows, crease shadow)
            if known.sum() > 8:
                known &= lum >= np.percentile(lum[known], 45)
            if known.sum() > 8:
                filled = _fill_from(known, img, near)
                # the fill is smooth: give it the grain of the lid skin above the eye (the grain at
                # the eye's own place is its highlights and iris edge, a ghost eye on a closed lid)
                ys, xs = np.nonzero(near)
                above = np.clip(ys - int(np.ceil(np.ptp(pts[list(eye.polygon), 1]) + 2 * r_lash)), 0, self.size - 1)
                plate[near] = filled[near] + 0.8 * grain[above, xs][:, None]
            # lash colour: the darkest pixels along the upper lid margin
            margin = lm.polygon_mask(pts[list(eye.polygon[: len(eye.polygon) // 2 + 1])], self.size)
            band = cv2.dilate(opening.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~cv2.erode(
                opening.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            vals = self.source[band].reshape(-1, 3).astype(np.float32)
            if len(vals) > 4:
                l = vals @ np.array([0.299, 0.587, 0.114], np.float32)
                lash = vals[l <= np.percentile(l, 20)].mean(axis=0)
            else:
                lash = np.array([40, 30, 28], np.float32)
            self.lash_rgb.append(lash.astype(np.float32))
            del margin
        self.lid_plate = np.clip(cv2.GaussianBlur(plate, (0, 0), 0.6), 0, 255).astype(np.uint8)

    def _lips_filled(self, portrait: Portrait) -> np.ndarray:
        """The image the warp samples: the source with its mouth opening (teeth, dark) filled with
        the lips' own colour. Closed or nearly closed lips then never show a seam of teeth where
        the lip triangles reach a pixel past the source's inner lip line; the interior layer
        (drawn teeth, or the portrait's own from the untouched source) covers the open mouth."""
        pts = portrait.points
        if lm.mouth_opening(pts) < 0.02:
            return self.source
        opening = lm.polygon_mask(pts[list(_INNER_MOUTH)], self.size) > 0.2
        fill = cv2.dilate(opening.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        lips = lm.polygon_mask(pts[list(lm.LIPS_UPPER_OUTER) + list(reversed(lm.LIPS_LOWER_OUTER[1:-1]))], self.size) > 0.5
        # the mesh's inner lip line often runs over the teeth (the lower one along their edge):
        # teeth-white pixels just past it are no lip either, or the closed lips show a white seam
        r = max(1, int(round(0.04 * self.iod)))
        near = cv2.dilate(opening.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)
        band = near & lips & ~fill
        if band.any():
            # teeth: much paler and greyer than the lip around them (skin highlights are not)
            lum = cv2.cvtColor(self.source, cv2.COLOR_RGB2GRAY).astype(np.float32)
            sat = cv2.cvtColor(self.source, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
            outside = lips & ~near
            lip_lum = np.median(lum[outside if outside.any() else band])
            fill |= band & (lum > lip_lum + 40) & (sat < 0.5 * np.median(sat[lips]))
        known = lips & ~cv2.dilate(fill.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if known.sum() < 10:
            return self.source
        # fill column by column from the nearest lip pixels (a lip is a vertical gradient), then smooth
        filled = _fill_from(known, self.source.astype(np.float32), fill)
        out = self.source.copy()
        out[fill] = np.clip(filled[fill], 0, 255).astype(np.uint8)
        return out

    def _build_mouth_palette(self, portrait: Portrait) -> None:
        """Colours for the synthesized mouth interior, taken from the face so they match its
        lighting and style (a grey photo or a painting gets grey or painted teeth), and the
        portrait's own teeth when its mouth shows them."""
        pts = portrait.points
        face = lm.polygon_mask(pts[list(lm.FACE_OVAL)], self.size) > 0.5
        skin = self.source[face].reshape(-1, 3).astype(np.float32)
        if len(skin) < 16:
            skin = self.source.reshape(-1, 3).astype(np.float32)
        self.skin_rgb = np.median(skin, axis=0)
        lum = skin @ np.array([0.299, 0.587, 0.114], np.float32)
        lum_med, lum_hi = float(np.median(lum)), float(np.percentile(lum, 95))
        self.light = float(np.clip(lum_med / 165.0, 0.35, 1.2))
        # how colourful the face is: 0 for a grey or sepia picture, 1 for a normal photo
        chroma = np.abs(skin - lum[:, None]).mean()
        self.colour = float(np.clip(chroma / 18.0, 0.0, 1.0))
        # enamel: near white, tinted by the picture's own light (ivory under warm light, paint...)
        tint = self.skin_rgb / max(float(self.skin_rgb @ np.array([0.299, 0.587, 0.114])), 1.0)
        enamel = 0.55 * np.array([1.0, 0.985, 0.94], np.float32) + 0.45 * tint
        enamel *= np.clip(0.5 * (lum_med + lum_hi), 70, 232) / float(enamel @ np.array([0.299, 0.587, 0.114]))
        self.enamel = self._style(enamel)
        self.cavity_rgb = self._style(np.array([66, 26, 28], np.float32) * self.light)
        self.tongue_rgb = self._style(np.array([150, 78, 80], np.float32) * self.light)
        self.own_teeth = self._own_teeth(portrait)
        self.own_interior = self._own_interior(portrait)
        # a closed photographed mouth has its own lip line: only a closed-by-warp mouth has a seam
        self.seam_softening = float(np.clip((lm.mouth_opening(portrait.points) - 0.03) / 0.05, 0, 1))
        # the picture's own fine grain (film, paint, stone), laid over what is drawn so it matches
        self.grain = _grain(self.source)

    def _style(self, rgb: np.ndarray) -> np.ndarray:
        grey = float(rgb @ np.array([0.299, 0.587, 0.114]))
        tint = self.skin_rgb / max(float(self.skin_rgb @ np.array([0.299, 0.587, 0.114])), 1.0)
        # in a grey/sepia picture, colours become the picture's own tone at the same brightness
        return (self.colour * rgb + (1 - self.colour) * grey * tint).astype(np.float32)

    def _mouth_frame(self, xy: np.ndarray):
        """Mouth-aligned frame: centre, unit axis corner to corner, its normal (down), half width."""
        left, right = xy[78].astype(np.float64), xy[308].astype(np.float64)
        centre = (left + right) / 2
        axis = right - left
        half_w = max(np.linalg.norm(axis) / 2, 1.0)
        ux = axis / (2 * half_w)
        return centre, ux, np.array([-ux[1], ux[0]]), half_w

    @staticmethod
    def _lip_line(xy, ids, centre, ux, vy, half_w, u):
        p = xy[list(ids)].astype(np.float64) - centre
        pu = (p @ ux) / half_w
        pv = p @ vy
        order = np.argsort(pu)
        return np.interp(u, pu[order], pv[order])

    def _own_teeth(self, portrait: Portrait):
        """The portrait's own teeth, if its mouth shows them: the opening split into an upper
        half (moves with the upper lip) and a lower half (moves with the jaw)."""
        pts = portrait.points.astype(np.float64)
        iod = self.iod
        opening = lm.polygon_mask(pts[list(_INNER_MOUTH)], self.size)
        inner = cv2.erode((opening > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if inner.sum() < max(60, 0.004 * iod * iod) or lm.mouth_opening(pts) < 0.14:   # a sliver of teeth splits badly
            return None
        lum = cv2.cvtColor(self.source, cv2.COLOR_RGB2GRAY).astype(np.float32)
        hsv = cv2.cvtColor(self.source, cv2.COLOR_RGB2HSV)
        face = lm.polygon_mask(pts[list(lm.FACE_OVAL)], self.size) > 0.5
        bright = (lum > 0.72 * np.percentile(lum[face], 90)) & (hsv[..., 1] < 100)
        if bright[inner].mean() < 0.35:
            return None
        centre, ux, vy, half_w = self._mouth_frame(pts[:, :2])
        gy, gx = self.grid_y - centre[1], self.grid_x - centre[0]
        u = (gx * ux[0] + gy * ux[1]) / half_w
        v = gx * vy[0] + gy * vy[1]
        v_up = self._lip_line(pts[:, :2], lm.LIPS_UPPER_INNER, centre, ux, vy, half_w, u)
        v_lo = self._lip_line(pts[:, :2], lm.LIPS_LOWER_INNER, centre, ux, vy, half_w, u)
        split = 0.5 * (v_up + v_lo)
        # keep the lip's own colour out: shrink the opening a little, soft edge
        soft = np.clip(cv2.GaussianBlur(inner.astype(np.float32), (0, 0), 1.0) * 2 - 0.6, 0, 1)
        upper = soft * np.clip(split - v + 0.5, 0, 1)
        lower = soft * np.clip(v - split + 0.5, 0, 1)
        return {"centre": centre, "ux": ux, "vy": vy,
                "v_up0": float(self._lip_line(pts[:, :2], lm.LIPS_UPPER_INNER, centre, ux, vy, half_w, np.zeros(1))[0]),
                "v_lo0": float(self._lip_line(pts[:, :2], lm.LIPS_LOWER_INNER, centre, ux, vy, half_w, np.zeros(1))[0]),
                "upper": upper.astype(np.float32), "lower": lower.astype(np.float32)}


    # ------------------------------------------------------------------ per frame
    def render(self, targets: Targets, expression: Expression | None = None) -> np.ndarray:
        dst_xy = targets.xy.astype(np.float64)
        dst_tri = dst_xy[self.triangles]
        coef = _affine_from_triangles(dst_tri, self.src_tri)
        area = self._areas(dst_tri)
        # The mouth opening and a squeezed eye take their warp from the lip or lid next to them:
        # a nearly flat triangle's own affine magnifies a sliver of the source into streaks.
        squeezed = (self.donor >= 0) & ((self.kinds == _KIND_MOUTH) | (np.abs(area) < 0.35 * self.src_abs_area))
        coef[squeezed] = coef[self.donor[squeezed]]
        coef = np.concatenate([coef, np.array([[1, 0, 0, 0, 1, 0]], np.float32)])  # identity: never used after the gap fill

        # draw far triangles first so the near ones win where a turn folds the mesh; a skin
        # triangle turned away from the camera (flipped) is not drawn: the hole it leaves takes
        # the warp of the nearest front-facing one, which continues the surface without a crease
        valid = (np.abs(area) > 1e-3) & ((np.sign(area) == self.src_area_sign) | (self.kinds != _KIND_SKIN) | self.is_lip)
        depth = targets.depth[self.triangles].mean(axis=1)
        order = np.argsort(-depth)
        gap = len(self.triangles)
        ids = np.full((self.size, self.size), gap, np.int32)
        fixed = np.round(dst_tri * 16).astype(np.int32)
        for t in order:
            if valid[t]:
                cv2.fillConvexPoly(ids, fixed[t], int(t), lineType=cv2.LINE_8, shift=4)
        holes = ids == gap
        if holes.any():  # pixels no triangle covers (a fold, a closed mouth or eye): the nearest covered pixel's
            ys, xs = np.nonzero(holes)
            pad = 8
            y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, self.size)
            x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, self.size)
            sub_holes = holes[y0:y1, x0:x1]
            sub_ids = ids[y0:y1, x0:x1]
            if (~sub_holes).any():
                _, labels = cv2.distanceTransformWithLabels(sub_holes.astype(np.uint8), cv2.DIST_L2, 3,
                                                            labelType=cv2.DIST_LABEL_PIXEL)
                covered = np.flatnonzero(~sub_holes.ravel())   # labels number the covered pixels in scan order
                flat = sub_ids.ravel().copy()
                hole_idx = np.flatnonzero(sub_holes.ravel())
                flat[hole_idx] = flat[covered[labels.ravel()[hole_idx] - 1]]
                ids[y0:y1, x0:x1] = flat.reshape(sub_ids.shape)

        # the backward map, one coefficient plane at a time and in place: gathering all six
        # per pixel and combining strided views cost twice as much
        k = [plane.take(ids) for plane in np.ascontiguousarray(coef.T)]
        map_x, map_y = k[0], k[3]
        map_x *= self.grid_x
        k[1] *= self.grid_y
        map_x += k[1]
        map_x += k[2]
        map_y *= self.grid_x
        k[4] *= self.grid_y
        map_y += k[4]
        map_y += k[5]
        frame = cv2.remap(self.warp_source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._composite(frame, map_x, map_y)
        for eye in _EYES:
            self._draw_eye(frame, ids, eye, targets)
        self._draw_mouth(frame, ids, targets)
        return frame

    def _bbox(self, pts: np.ndarray, pad: int) -> tuple[int, int, int, int]:
        x0, y0 = np.floor(pts.min(axis=0)).astype(int) - pad
        x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + pad
        return max(x0, 0), max(y0, 0), min(x1, self.size), min(y1, self.size)

    def _draw_eye(self, frame: np.ndarray, ids: np.ndarray, eye: _Eye, targets: Targets) -> None:
        poly = targets.xy[list(eye.polygon)]
        rest_poly = targets.lids_open[list(eye.polygon)] if targets.lids_open is not None else poly
        x0, y0, x1, y1 = self._bbox(np.concatenate([poly, rest_poly]), 4)
        if x1 <= x0 or y1 <= y0:
            return
        mask = (self.kind_of_id[ids[y0:y1, x0:x1]] == eye.kind).astype(np.float32)
        a, b = eye.corners
        m = _similarity(self.src_xy[a], self.src_xy[b], targets.xy[a].astype(np.float64), targets.xy[b].astype(np.float64))
        gx, gy = self.grid_x[y0:y1, x0:x1], self.grid_y[y0:y1, x0:x1]
        sx = m[0, 0] * gx + m[0, 1] * gy + m[0, 2]
        sy = m[1, 0] * gx + m[1, 1] * gy + m[1, 2]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        if mask.any():
            eyeball = cv2.remap(self.eye_plate, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            # the iris: from the source, centred on its target position, clipped by the lids
            k = 0 if eye.kind == _KIND_EYE_R else 1
            c_src, radius = self.iris_src[k]
            c_dst = targets.xy[eye.iris[0]]
            scale = np.hypot(m[0, 0], m[1, 0])
            ix = c_src[0] + (gx - c_dst[0]) * scale
            iy = c_src[1] + (gy - c_dst[1]) * scale
            iris = cv2.remap(self.iris_plate, ix, iy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            r = np.hypot(ix - c_src[0], iy - c_src[1])
            visible_src = cv2.remap(self.iris_shown_src, ix, iy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            # the upper lid's shadow on the filled sclera (the photo's own pixels have theirs)
            upper = targets.xy[list(eye.polygon[: len(eye.polygon) // 2 + 1])]
            top = np.interp(gx, *self._sorted_line(upper))
            own = cv2.remap(self.eye_own, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            shade = 1 - 0.18 * (1 - own) * np.exp(-np.maximum(gy - top, 0) / (0.03 * self.iod * scale ** -1 + 1e-6))
            eyeball *= shade[..., None]
            # the iris with its dark limbal ring and the rim of white round it, the whole disc the
            # eyeball plate filled: at rest it lands on the photo's own iris exactly
            alpha_iris = np.clip((1.2 * radius + 1.0 - r) / 1.2 + 0.5, 0, 1) * np.clip(visible_src * 1.5, 0, 1)
            eyeball = eyeball * (1 - alpha_iris[..., None]) + iris * alpha_iris[..., None]
            mask = cv2.GaussianBlur(mask, (0, 0), 0.7)
            region = region * (1 - mask[..., None]) + eyeball * mask[..., None]
        if targets.lids_open is not None:
            region = self._draw_lid(region, mask, eye, targets, rest_poly, sx, sy, x0, y0)
        frame[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)

    @staticmethod
    def _sorted_line(pts: np.ndarray):
        order = np.argsort(pts[:, 0])
        return pts[order, 0], pts[order, 1]

    def _draw_lid(self, region, open_mask, eye: _Eye, targets: Targets, rest_poly, sx, sy, x0, y0):
        """Where a blink covers what was eye at rest: lid skin (the eye opening filled with the
        lid's own skin), darker towards its edge, and a lash line along the moving lid margin."""
        h, w = region.shape[:2]
        n_up = len(eye.polygon) // 2 + 1
        gap_rest = np.linalg.norm(rest_poly[4] - rest_poly[-4]) + 1e-6   # mid upper vs mid lower lid at rest
        closed = float(np.clip(1 - np.linalg.norm(targets.xy[eye.polygon[4]] - targets.xy[eye.polygon[-4]]) / gap_rest, 0, 1))
        scale = float(np.hypot(*(targets.xy[eye.corners[1]] - targets.xy[eye.corners[0]])) /
                      (np.hypot(*(self.src_xy[eye.corners[1]] - self.src_xy[eye.corners[0]])) + 1e-6))
        lid_px = max(0.03 * self.iod * scale, 1.0)
        # what the lid now covers: the eye at rest, reaching a little above its rest line as the lid
        # closes (the source's own lashes, stretched down by the warp, go under the new skin)
        cover_poly = rest_poly.astype(np.float64).copy()
        lift = 1.6 * lid_px * min(1.0, 2.0 * closed)
        cover_poly[1:n_up - 1, 1] -= lift * np.sin(np.linspace(0, np.pi, n_up)[1:-1])
        rest = np.zeros((h, w), np.uint8)
        cv2.fillPoly(rest, [np.round((cover_poly - [x0, y0]) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        rest_f = cv2.GaussianBlur(rest.astype(np.float32) / 255.0, (0, 0), max(0.5, 0.4 * lid_px))
        # a lid no lower than at rest covers nothing (a widened eye): skip, or the two masks'
        # different edges (polygon vs triangles) draw a thin ring of lid skin round the eye
        if closed < 0.02:
            return region
        covered = np.clip(rest_f - open_mask, 0, 1)
        if covered.max() < 0.05:
            return region
        k = 0 if eye.kind == _KIND_EYE_R else 1
        skin = cv2.remap(self.lid_plate, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        # the lid margin: the current upper lid line; skin darkens slightly towards it
        upper = targets.xy[list(eye.polygon[:n_up])].astype(np.float64) - [x0, y0]
        gx = np.arange(w, dtype=np.float64)[None, :].repeat(h, 0)
        gy = np.arange(h, dtype=np.float64)[:, None].repeat(w, 1)
        margin = np.interp(gx, *self._sorted_line(upper))
        dist = margin - gy     # > 0 above the margin (on the lid)
        skin *= (1 - 0.1 * np.exp(-np.maximum(dist, 0) / (2 * lid_px)))[..., None]
        region = region * (1 - covered[..., None]) + skin * covered[..., None]
        # lash line: dark, soft, thickest in the middle of the lid, as strong as the lid is closed
        if closed > 0.02:
            lo, hi = upper[:, 0].min(), upper[:, 0].max()
            along = np.clip((gx - lo) / max(hi - lo, 1.0), 0, 1)
            thick = lid_px * (0.4 + 0.5 * np.sin(np.pi * along))
            # centred just above the margin: lashes grow from the lid, and a line centred below it
            # ate into the opening (a half blink read as nearly closed)
            line = np.exp(-((gy - margin + 0.3 * lid_px) / thick) ** 2) * (gx >= lo) * (gx <= hi)
            alpha = (0.85 * min(1.0, 2.5 * closed) * line)[..., None]
            region = region * (1 - alpha) + self.lash_rgb[k] * alpha
        return region

    def _draw_mouth(self, frame: np.ndarray, ids: np.ndarray, targets: Targets) -> None:
        xy = targets.xy
        poly = xy[list(_INNER_MOUTH)]
        x0, y0, x1, y1 = self._bbox(poly, 4)
        if x1 <= x0 or y1 <= y0:
            return
        mask = (self.kind_of_id[ids[y0:y1, x0:x1]] == _KIND_MOUTH).astype(np.float32)
        if mask.sum() < 2 and self.seam_softening == 0:   # closed, and no warp-made seam to soften
            return
        iod_now = self.iod * float(np.linalg.norm(xy[263] - xy[33]) / (np.linalg.norm(self.src_xy[263] - self.src_xy[33]) + 1e-6))
        centre, ux, vy, half_w = self._mouth_frame(xy)
        gx, gy = self.grid_x[y0:y1, x0:x1] - centre[0], self.grid_y[y0:y1, x0:x1] - centre[1]
        u = (gx * ux[0] + gy * ux[1]) / half_w        # -1..1 corner to corner
        v = gx * vy[0] + gy * vy[1]                    # pixels, down is positive
        v_up = self._lip_line(xy, lm.LIPS_UPPER_INNER, centre, ux, vy, half_w, u)
        v_lo = self._lip_line(xy, lm.LIPS_LOWER_INNER, centre, ux, vy, half_w, u)
        opening = np.maximum(v_lo - v_up, 0)
        gap_mid = float(self._lip_line(xy, lm.LIPS_LOWER_INNER, centre, ux, vy, half_w, np.zeros(1))[0]
                        - self._lip_line(xy, lm.LIPS_UPPER_INNER, centre, ux, vy, half_w, np.zeros(1))[0])
        au = np.abs(u)
        if self.seam_softening > 0:
            self._soften_lip_seam(frame, x0, y0, x1, y1, v, v_up, v_lo, au, self.seam_softening)
        if mask.sum() < 2:
            return

        # cavity: dark, darkest at the back (the middle of a wide opening)
        depth = np.clip(1 - au ** 2, 0, 1) * np.clip(opening / (0.25 * iod_now + 1e-6), 0, 1)
        out = self.cavity_rgb * (1 - 0.6 * depth)[..., None]
        # tongue: low in the mouth, its tip curving up at the middle, lit from the front
        tongue_top = v_lo - 0.15 * iod_now * (1 - 0.5 * au ** 2)
        t_alpha = np.clip((v - tongue_top) / 2.0, 0, 1) * np.clip((0.8 - au) / 0.2, 0, 1)
        t_alpha *= np.clip((gap_mid - 0.12 * iod_now) / (0.1 * iod_now), 0, 1)
        t_shade = 0.6 + 0.4 * np.clip((v - tongue_top) / (0.08 * iod_now), 0, 1)
        out = out * (1 - t_alpha[..., None]) + self.tongue_rgb * t_shade[..., None] * t_alpha[..., None]

        if self.own_teeth is not None:
            out = self._own_teeth_layer(out, u, v, half_w, xy, iod_now, x0, y0, x1, y1)
        else:
            out = self._drawn_teeth_layer(out, u, v, v_up, v_lo, opening, iod_now)

        # as soft and as grainy as the picture around it
        out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), 0.6) + 0.8 * self.grain[y0:y1, x0:x1, None]
        own = 0.0
        if self.own_interior is not None:
            out, own = self._own_interior_layer(out, u, v, v_up, v_lo, gap_mid)
        # the opening fades in over its first pixel or two: closed lips show no seam
        alpha = cv2.GaussianBlur(mask, (0, 0), 0.8) * float(np.clip((gap_mid - 0.01 * iod_now) / (0.03 * iod_now), 0, 1))
        if own > 0:
            edge = cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), 0.8)
            alpha = np.maximum(alpha, own * edge)
        region = frame[y0:y1, x0:x1].astype(np.float32)
        # the inner edge of the lips falls into shadow where the mouth opens
        ring = np.clip(cv2.GaussianBlur(mask, (0, 0), 2.0) - alpha, 0, 1)
        region *= (1 - 0.3 * (1 - own) * ring)[..., None]   # the portrait's own opening has its shadow
        frame[y0:y1, x0:x1] = np.clip(region * (1 - alpha[..., None]) + out * alpha[..., None], 0, 255).astype(np.uint8)

    @staticmethod
    def _soften_lip_seam(frame, x0, y0, x1, y1, v, v_up, v_lo, au, strength: float) -> None:
        """Where the lips meet, upper-lip and lower-lip triangles sample different parts of the
        source with no anti-aliasing between them: a 1 px staircase along the closed lips. Blur
        across the seam only, over a band of about 2 px."""
        seam = strength * np.clip(1 - np.abs(v - 0.5 * (v_up + v_lo)) / 2.0, 0, 1) * np.clip((1 - au) / 0.1, 0, 1)
        region = frame[y0:y1, x0:x1].astype(np.float32)
        region += (cv2.GaussianBlur(region, (1, 5), sigmaX=0, sigmaY=1.0) - region) * seam[..., None]
        frame[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)

    def _drawn_teeth_layer(self, out, u, v, v_up, v_lo, opening, iod_now):
        """Upper and lower teeth on a curved arch: teeth narrow and darken towards the corners."""
        au = np.abs(u)
        theta_max = np.radians(72)
        theta = np.arcsin(np.clip(u, -1, 1) * np.sin(theta_max))     # angle round the arch
        step = np.radians(13.0)                                      # one tooth
        frac = np.abs(theta) / step
        edge = np.abs(frac - np.round(frac)) * step                  # angle to the nearest tooth boundary
        seam = 1 - 0.22 * np.exp(-(edge / np.radians(1.4)) ** 2)
        bump = np.exp(-(edge / (0.3 * step)) ** 2)                    # rounded tooth corners
        side = np.clip(1 - 0.7 * au ** 2.2, 0, 1)
        # upper teeth hang from the upper lip, in its shadow at the top
        up_h = 0.115 * iod_now * (1 - 0.45 * au ** 2) - 0.012 * iod_now * bump
        up_alpha = np.clip((v_up + up_h - v) / 1.2, 0, 1) * np.clip((0.92 - au) / 0.12, 0, 1)
        up_shade = (0.62 + 0.38 * np.clip((v - v_up) / (0.045 * iod_now), 0, 1)) * side * seam
        out = out * (1 - up_alpha[..., None]) + self.enamel * up_shade[..., None] * up_alpha[..., None]
        # lower teeth rise from behind the lower lip, in shadow, shown once the mouth is open
        lo_h = 0.06 * iod_now * (1 - 0.5 * au ** 2) - 0.008 * iod_now * bump
        lo_alpha = (np.clip((v - (v_lo - lo_h)) / 1.2, 0, 1) * np.clip((0.72 - au) / 0.12, 0, 1)
                    * np.clip((opening - 0.1 * iod_now) / (0.1 * iod_now), 0, 1))
        lo_shade = 0.66 * side * seam
        return out * (1 - lo_alpha[..., None]) + self.enamel * lo_shade[..., None] * lo_alpha[..., None]

    def _own_interior(self, portrait: Portrait):
        """The portrait's own mouth opening as a whole: a mouth near its photographed shape
        (re-enacting the portrait) shows exactly what the picture shows, not a drawn interior
        (drawn teeth in a dark "o" changed the face) nor teeth split between the lips."""
        pts = portrait.points[:, :2].astype(np.float64)
        opening = lm.polygon_mask(pts[list(_INNER_MOUTH)], self.size) > 0.5
        if opening.sum() < 12 or lm.mouth_opening(portrait.points) < 0.03:
            return None
        centre, ux, vy, half_w = self._mouth_frame(pts)
        gap = float(self._lip_line(pts, lm.LIPS_LOWER_INNER, centre, ux, vy, half_w, np.zeros(1))[0]
                    - self._lip_line(pts, lm.LIPS_UPPER_INNER, centre, ux, vy, half_w, np.zeros(1))[0])
        return {"points": pts, "centre": centre, "ux": ux, "vy": vy, "half_w": half_w, "gap": max(gap, 1.0)}

    def _own_interior_layer(self, out, u, v, v_up, v_lo, gap_mid):
        """The source's opening stretched onto the current one (lip line to lip line at each
        point across the mouth): all of it at the photographed gap, handing over to the other
        interior layers by half or one and a half times that gap (stretched further, a sliver of
        teeth smears, a screaming mouth squeezed shows its tongue as a third lip).
        Returns the layer and its weight."""
        t = self.own_interior
        own = float(np.clip(1.0 - abs(gap_mid / t["gap"] - 1.0) / 0.5, 0.0, 1.0))
        if own <= 0:
            return out, 0.0
        src_up = self._lip_line(t["points"], lm.LIPS_UPPER_INNER, t["centre"], t["ux"], t["vy"], t["half_w"], u)
        src_lo = self._lip_line(t["points"], lm.LIPS_LOWER_INNER, t["centre"], t["ux"], t["vy"], t["half_w"], u)
        # a little past the lip lines too: the lips' inner edge as photographed (the warp's
        # source has the opening, and a pixel round it, filled with lip colour)
        across = np.clip((v - v_up) / np.maximum(v_lo - v_up, 1e-3), -0.3, 1.3)
        vs = src_up + across * (src_lo - src_up)
        along = u * t["half_w"]
        sx = (t["centre"][0] + t["ux"][0] * along + t["vy"][0] * vs).astype(np.float32)
        sy = (t["centre"][1] + t["ux"][1] * along + t["vy"][1] * vs).astype(np.float32)
        rgb = cv2.remap(self.source, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        return out * (1 - own) + rgb * own, own

    def _own_teeth_layer(self, out, u, v, half_w, xy, iod_now, x0, y0, x1, y1):
        """The portrait's own teeth: the upper half rides on the upper lip, the lower on the jaw,
        scaled with the face; the cavity shows between them."""
        t = self.own_teeth
        k = self.iod / max(iod_now, 1e-6)
        centre, ux, vy, _ = self._mouth_frame(xy)
        v_up0 = float(self._lip_line(xy, lm.LIPS_UPPER_INNER, centre, ux, vy, half_w, np.zeros(1))[0])
        v_lo0 = float(self._lip_line(xy, lm.LIPS_LOWER_INNER, centre, ux, vy, half_w, np.zeros(1))[0])
        along = u * half_w * k
        for key, v_src0, v_dst0 in (("lower", t["v_lo0"], v_lo0), ("upper", t["v_up0"], v_up0)):
            vs = v_src0 + (v - v_dst0) * k
            sx = (t["centre"][0] + t["ux"][0] * along + t["vy"][0] * vs).astype(np.float32)
            sy = (t["centre"][1] + t["ux"][1] * along + t["vy"][1] * vs).astype(np.float32)
            rgb = cv2.remap(self.source, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            a = cv2.remap(t[key], sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            shade = 0.85 if key == "lower" else 1.0
            out = out * (1 - a[..., None]) + rgb * shade * a[..., None]
        return out


def render_motion(renderer: Renderer, motion: MotionFrame) -> np.ndarray:
    return renderer.render(renderer.rig.targets(motion), motion.expression)
