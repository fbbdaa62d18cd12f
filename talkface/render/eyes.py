"""Eye layer: the eyeballs, drawn from a plate with the iris removed so the lids can close
over them; the irises, moved on top for gaze and clipped by the lids; and on a blink, lid
skin over what was eye at rest, with a lash line along the moving lid margin."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.portrait import Portrait
from talkface.face.rig import Targets
from talkface.render.inpaint import LUMA, dilated, eroded, fill_from, grain
from talkface.render.warp import EYES, EyeRegion, WarpMesh, bbox

LIMBUS = 1.2             # iris radii: the iris disc with its dark limbal ring
SCLERA_PERCENTILE = 25   # sclera samples: not the opening's darker pixels (lashes, limbus, lid shadow)
LID_REACH = 0.6          # of the eye's height: how far past the lids the eyeball plate reaches
LASH_RADIUS = 0.05       # IOD: the lash line round the opening the lid plate replaces
SKIN_PERCENTILE = 45     # lid-skin samples: not the darker pixels (lashes, brows, crease shadow)
LASH_PERCENTILE = 20     # the lash colour: the darkest pixels along the lid margin
DEFAULT_LASH_RGB = (40, 30, 28)
LID_PX = 0.03            # IOD: the lid margin's scale (shadow, lash thickness)
LID_SHADOW = 0.18        # how much the upper lid darkens the filled sclera below it
EYE_PAD = 4              # pixels round an eye's box
OPEN_LID = 0.02          # a lid closed less than this share covers nothing


@dataclass(frozen=True, eq=False)
class EyeLayer:
    """Built once per portrait."""

    src_xy: np.ndarray                # (N, 2) float64: the control points in the photo
    iod: float
    eye_plate: np.ndarray             # (S, S, 3) uint8: the openings with the irises replaced by sclera
    iris_plate: np.ndarray            # (S, S, 3) uint8: the photo with each iris completed to a disc
    iris_shown_src: np.ndarray        # (S, S) float32: where the iris layer may sample
    eye_own: np.ndarray               # (S, S) float32: where the eyeball plate is the photo itself
    iris_src: tuple[tuple[np.ndarray, float], ...]   # per eye: the iris centre and radius in the photo
    lid_plate: np.ndarray             # (S, S, 3) uint8: each opening filled with the lid's skin
    lash_rgb: tuple[np.ndarray, ...]  # per eye

    @classmethod
    def build(cls, portrait: Portrait, src_xy: np.ndarray, iod: float) -> "EyeLayer":
        eye_plate, iris_plate, shown, own, iris_src = _eyeball_plates(portrait)
        lid_plate, lash_rgb = _lid_plate(portrait, iod)
        return cls(src_xy=src_xy, iod=iod, eye_plate=eye_plate, iris_plate=iris_plate, iris_shown_src=shown,
                   eye_own=own, iris_src=iris_src, lid_plate=lid_plate, lash_rgb=lash_rgb)

    def draw(self, frame: np.ndarray, mesh: WarpMesh, ids: np.ndarray, targets: Targets) -> None:
        for k, eye in enumerate(EYES):
            self._draw_eye(frame, mesh, ids, k, eye, targets)

    def _draw_eye(self, frame: np.ndarray, mesh: WarpMesh, ids: np.ndarray, k: int, eye: EyeRegion,
                  targets: Targets) -> None:
        poly = targets.xy[list(eye.polygon)]
        rest_poly = targets.lids_open[list(eye.polygon)] if targets.lids_open is not None else poly
        x0, y0, x1, y1 = bbox(np.concatenate([poly, rest_poly]), EYE_PAD, mesh.size)
        if x1 <= x0 or y1 <= y0:
            return
        mask = (mesh.kind_of_id[ids[y0:y1, x0:x1]] == eye.kind).astype(np.float32)
        a, b = eye.corners
        m = _similarity(self.src_xy[a], self.src_xy[b], targets.xy[a].astype(np.float64), targets.xy[b].astype(np.float64))
        gx, gy = mesh.grid_x[y0:y1, x0:x1], mesh.grid_y[y0:y1, x0:x1]
        sx = m[0, 0] * gx + m[0, 1] * gy + m[0, 2]
        sy = m[1, 0] * gx + m[1, 1] * gy + m[1, 2]
        region = frame[y0:y1, x0:x1].astype(np.float32)
        if mask.any():
            mask = cv2.GaussianBlur(mask, (0, 0), 0.7)   # the opening's soft edge (the lids use it too)
            region = self._eyeball(region, mask, k, eye, targets, m, gx, gy, sx, sy)
        if targets.lids_open is not None:
            region = self._lid(region, mask, k, eye, targets, rest_poly, sx, sy, x0, y0)
        frame[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)

    def _eyeball(self, region, mask, k: int, eye: EyeRegion, targets: Targets, m, gx, gy, sx, sy) -> np.ndarray:
        """The eyeball, and the iris on it: from the source, centred on its target position,
        clipped by the lids."""
        eyeball = cv2.remap(self.eye_plate, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
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
        top = np.interp(gx, *_sorted_line(upper))
        own = cv2.remap(self.eye_own, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        shade = 1 - LID_SHADOW * (1 - own) * np.exp(-np.maximum(gy - top, 0) / (LID_PX * self.iod * scale ** -1 + 1e-6))
        eyeball *= shade[..., None]
        # the iris with its dark limbal ring and the rim of white round it, the whole disc the
        # eyeball plate filled: at rest it lands on the photo's own iris exactly
        alpha_iris = np.clip((LIMBUS * radius + 1.0 - r) / LIMBUS + 0.5, 0, 1) * np.clip(visible_src * 1.5, 0, 1)
        eyeball = eyeball * (1 - alpha_iris[..., None]) + iris * alpha_iris[..., None]
        return region * (1 - mask[..., None]) + eyeball * mask[..., None]

    def _lid(self, region, open_mask, k: int, eye: EyeRegion, targets: Targets, rest_poly, sx, sy, x0, y0):
        """Where a blink covers what was eye at rest: lid skin (the eye opening filled with the
        lid's own skin), darker towards its edge, and a lash line along the moving lid margin."""
        h, w = region.shape[:2]
        n_up = len(eye.polygon) // 2 + 1
        gap_rest = np.linalg.norm(rest_poly[4] - rest_poly[-4]) + 1e-6   # mid upper vs mid lower lid at rest
        closed = float(np.clip(1 - np.linalg.norm(targets.xy[eye.polygon[4]] - targets.xy[eye.polygon[-4]]) / gap_rest, 0, 1))
        scale = float(np.hypot(*(targets.xy[eye.corners[1]] - targets.xy[eye.corners[0]])) /
                      (np.hypot(*(self.src_xy[eye.corners[1]] - self.src_xy[eye.corners[0]])) + 1e-6))
        lid_px = max(LID_PX * self.iod * scale, 1.0)
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
        if closed < OPEN_LID:
            return region
        covered = np.clip(rest_f - open_mask, 0, 1)
        if covered.max() < 0.05:
            return region
        skin = cv2.remap(self.lid_plate, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        # the lid margin: the current upper lid line; skin darkens slightly towards it
        upper = targets.xy[list(eye.polygon[:n_up])].astype(np.float64) - [x0, y0]
        gx = np.arange(w, dtype=np.float64)[None, :].repeat(h, 0)
        gy = np.arange(h, dtype=np.float64)[:, None].repeat(w, 1)
        margin = np.interp(gx, *_sorted_line(upper))
        dist = margin - gy     # > 0 above the margin (on the lid)
        skin *= (1 - 0.1 * np.exp(-np.maximum(dist, 0) / (2 * lid_px)))[..., None]
        region = region * (1 - covered[..., None]) + skin * covered[..., None]
        # lash line: dark, soft, thickest in the middle of the lid, as strong as the lid is closed
        lo, hi = upper[:, 0].min(), upper[:, 0].max()
        along = np.clip((gx - lo) / max(hi - lo, 1.0), 0, 1)
        thick = lid_px * (0.4 + 0.5 * np.sin(np.pi * along))
        # centred just above the margin: lashes grow from the lid, and a line centred below it
        # ate into the opening (a half blink read as nearly closed)
        line = np.exp(-((gy - margin + 0.3 * lid_px) / thick) ** 2) * (gx >= lo) * (gx <= hi)
        alpha = (0.85 * min(1.0, 2.5 * closed) * line)[..., None]
        return region * (1 - alpha) + self.lash_rgb[k] * alpha


def _similarity(src_a, src_b, dst_a, dst_b) -> np.ndarray:
    """2x3 similarity taking the dst segment onto the src segment (a backward map)."""
    ds, dd = src_b - src_a, dst_b - dst_a
    zs, zd = complex(ds[0], ds[1]), complex(dd[0], dd[1])
    k = zs / (zd if abs(zd) > 1e-6 else 1e-6)
    m = np.array([[k.real, -k.imag], [k.imag, k.real]])
    t = src_a - m @ dst_a
    return np.concatenate([m, t[:, None]], axis=1).astype(np.float32)


def _sorted_line(pts: np.ndarray):
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]


def _disc(shape, centre: tuple[int, int], radius: int) -> np.ndarray:
    disc = np.zeros(shape, np.uint8)
    cv2.circle(disc, centre, radius, 1, -1)
    return disc.astype(bool)


def _eyeball_plates(portrait: Portrait):
    """An eyeball plate: each eye opening with the iris replaced by sclera, and the sclera
    extended past the lids so a wider eye or a moved iris never shows skin. And an iris
    plate: the source with each iris completed to a whole disc where it is mostly visible,
    so a widened eye or an upward look shows a round iris, not one cut flat along the
    portrait's own lid line."""
    pts, size, source = portrait.points, portrait.size, portrait.image
    img = source.astype(np.float32)
    lum = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    plate, iris_plate = img.copy(), img.copy()
    iris_src = []
    shown = np.zeros((size, size), np.float32)
    own = np.zeros((size, size), np.float32)
    for eye in EYES:
        opening = lm.polygon_mask(pts[list(eye.polygon)], size) > 0.5
        centre = pts[eye.iris[0], :2]
        radius = float(np.mean(np.linalg.norm(pts[list(eye.iris[1:]), :2] - centre, axis=1)))
        iris_src.append((centre.astype(np.float32), radius))
        c = (int(round(centre[0])), int(round(centre[1])))
        disc = _disc(opening.shape, c, int(np.ceil(radius * LIMBUS)))
        sclera = eroded(opening & ~disc, 1)
        if sclera.sum() >= 16:
            sclera &= lum >= np.percentile(lum[sclera], SCLERA_PERCENTILE)
        # as far past the lids as they may open (eye_open 2 lifts the upper lid half the opening)
        reach = max(4, int(np.ceil(LID_REACH * np.ptp(pts[list(eye.polygon), 1]))))
        if sclera.sum() < 4:  # eye closed or tiny: nothing to reuse
            continue
        region = dilated(opening, reach) | disc
        filled = fill_from(sclera, img, region)
        # the sclera's own pixels (veins, a highlight) kept inside, faded into the fill at their
        # edge: a hard edge there showed as a thin line when the iris moved over it. (Not its
        # darker ones: an iris's dark rim past the mesh's radius left a ghost ring behind.)
        keep = np.clip(2 * cv2.GaussianBlur(sclera.astype(np.float32), (0, 0), 0.8) - 1, 0, 1)
        plate[region] = keep[region][:, None] * img[region] + (1 - keep[region][:, None]) * filled[region]
        own = np.maximum(own, keep)
        shown = np.maximum(shown, opening.astype(np.float32))
        iris = _disc(opening.shape, c, int(np.ceil(radius)) + 1)
        seen = iris & eroded(opening, 1)
        if seen.sum() >= 0.5 * iris.sum():
            iris_plate[iris] = fill_from(seen, img, iris & ~seen)[iris]
            shown = np.maximum(shown, iris.astype(np.float32))
    return plate.astype(np.uint8), np.clip(iris_plate, 0, 255).astype(np.uint8), shown, own, tuple(iris_src)


def _lid_plate(portrait: Portrait, iod: float) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The closed lid's skin: each eye opening (and its lash line) filled from the skin
    around it; and each eye's lash colour, for the line a closing lid draws."""
    pts, size, source = portrait.points, portrait.size, portrait.image
    img = source.astype(np.float32)
    plate = img.copy()
    lum = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    texture = grain(source)
    rows = np.arange(size, dtype=np.float32)[:, None]
    lash_rgb = []
    r_lash = max(2, int(round(LASH_RADIUS * iod)))
    for eye in EYES:
        opening = lm.polygon_mask(pts[list(eye.polygon)], size) > 0.5
        near = dilated(opening, r_lash)
        # the lid is the skin above the eye coming down: sample above the eye, beside it a little
        known = dilated(opening, 3 * r_lash) & ~near & (rows < pts[list(eye.polygon), 1].mean())
        if known.sum() > 8:
            known &= lum >= np.percentile(lum[known], SKIN_PERCENTILE)
        if known.sum() > 8:
            filled = fill_from(known, img, near)
            # the fill is smooth: give it the grain of the lid skin above the eye (the grain at
            # the eye's own place is its highlights and iris edge, a ghost eye on a closed lid)
            ys, xs = np.nonzero(near)
            above = np.clip(ys - int(np.ceil(np.ptp(pts[list(eye.polygon), 1]) + 2 * r_lash)), 0, size - 1)
            plate[near] = filled[near] + 0.8 * texture[above, xs][:, None]
        band = dilated(opening, 1) & ~eroded(opening, 1)
        vals = source[band].reshape(-1, 3).astype(np.float32)
        if len(vals) > 4:
            luma = vals @ LUMA
            lash = vals[luma <= np.percentile(luma, LASH_PERCENTILE)].mean(axis=0)
        else:
            lash = np.array(DEFAULT_LASH_RGB, np.float32)
        lash_rgb.append(lash.astype(np.float32))
    return np.clip(cv2.GaussianBlur(plate, (0, 0), 0.6), 0, 255).astype(np.uint8), tuple(lash_rgb)
