"""Mouth layer: the interior (cavity, tongue, upper and lower teeth: the portrait's own when
it shows them, drawn ones otherwise) where the lips part, the portrait's own opening near its
photographed shape, and a softened seam where the warp closes a photographed open mouth."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.portrait import Portrait
from talkface.face.rig import Targets
from talkface.render.inpaint import grain
from talkface.render.mouth_parts import MouthAxes, MouthPalette, OwnInterior, OwnTeeth, seam_softening
from talkface.render.warp import INNER_MOUTH, KIND_MOUTH, WarpMesh, bbox

MOUTH_PAD = 4               # pixels round the mouth's box
OWN_HANDOVER = 0.5          # the own opening hands over within this share of its photographed gap
ARCH_ANGLE = np.radians(72)     # half the teeth's arch, corner to corner
TOOTH_ANGLE = np.radians(13.0)  # one tooth
LOWER_TEETH_SHADE = 0.85        # the portrait's own lower teeth, in the jaw's shadow


@dataclass(frozen=True)
class _Lips:
    """One frame's mouth in its own frame over the box: u across (-1..1), v down (pixels), the
    inner lip lines at every u and their gap at the middle."""

    axes: MouthAxes
    u: np.ndarray
    v: np.ndarray
    v_up: np.ndarray
    v_lo: np.ndarray
    gap_mid: float
    iod: float      # the face's current inter-ocular distance


@dataclass(frozen=True, eq=False)
class MouthLayer:
    """Built once per portrait."""

    source: np.ndarray             # the photo (the own teeth and opening are sampled from it)
    src_xy: np.ndarray             # (N, 2) float64
    iod: float
    palette: MouthPalette
    own_teeth: OwnTeeth | None
    own_interior: OwnInterior | None
    seam_softening: float          # 0..1
    grain: np.ndarray              # (S, S) float32: the picture's fine grain, laid over what is drawn

    @classmethod
    def build(cls, portrait: Portrait, mesh: WarpMesh, src_xy: np.ndarray, iod: float) -> "MouthLayer":
        return cls(source=portrait.image, src_xy=src_xy, iod=iod, palette=MouthPalette.of(portrait),
                   own_teeth=OwnTeeth.find(portrait, iod, mesh.grid_x, mesh.grid_y),
                   own_interior=OwnInterior.find(portrait), seam_softening=seam_softening(portrait),
                   grain=grain(portrait.image))

    def _lips(self, mesh: WarpMesh, xy: np.ndarray, box: tuple[int, int, int, int]) -> _Lips:
        x0, y0, x1, y1 = box
        right, left = lm.EYE_OUTER
        iod_now = self.iod * float(np.linalg.norm(xy[left] - xy[right])
                                   / (np.linalg.norm(self.src_xy[left] - self.src_xy[right]) + 1e-6))
        axes = MouthAxes.of(xy)
        gx, gy = mesh.grid_x[y0:y1, x0:x1] - axes.centre[0], mesh.grid_y[y0:y1, x0:x1] - axes.centre[1]
        u = (gx * axes.ux[0] + gy * axes.ux[1]) / axes.half_w        # -1..1 corner to corner
        v = gx * axes.vy[0] + gy * axes.vy[1]                         # pixels, down is positive
        v_up0, v_lo0 = axes.mid_gap(xy)
        return _Lips(axes, u, v, axes.lip_line(xy, lm.LIPS_UPPER_INNER, u), axes.lip_line(xy, lm.LIPS_LOWER_INNER, u),
                     v_lo0 - v_up0, iod_now)

    def draw(self, frame: np.ndarray, mesh: WarpMesh, ids: np.ndarray, targets: Targets) -> None:
        xy = targets.xy
        x0, y0, x1, y1 = box = bbox(xy[list(INNER_MOUTH)], MOUTH_PAD, mesh.size)
        if x1 <= x0 or y1 <= y0:
            return
        mask = (mesh.kind_of_id[ids[y0:y1, x0:x1]] == KIND_MOUTH).astype(np.float32)
        if mask.sum() < 2 and self.seam_softening == 0:   # closed, and no warp-made seam to soften
            return
        lips = self._lips(mesh, xy, box)
        if self.seam_softening > 0:
            _soften_lip_seam(frame, box, lips, self.seam_softening)
        if mask.sum() < 2:
            return
        out = self._interior(lips, xy)
        # as soft and as grainy as the picture around it
        out = cv2.GaussianBlur(out.astype(np.float32), (0, 0), 0.6) + 0.8 * self.grain[y0:y1, x0:x1, None]
        own = 0.0
        if self.own_interior is not None:
            out, own = self._own_interior_layer(out, lips)
        # the opening fades in over its first pixel or two: closed lips show no seam
        alpha = cv2.GaussianBlur(mask, (0, 0), 0.8) * float(np.clip((lips.gap_mid - 0.01 * lips.iod) / (0.03 * lips.iod), 0, 1))
        if own > 0:
            edge = cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (0, 0), 0.8)
            alpha = np.maximum(alpha, own * edge)
        region = frame[y0:y1, x0:x1].astype(np.float32)
        # the inner edge of the lips falls into shadow where the mouth opens
        ring = np.clip(cv2.GaussianBlur(mask, (0, 0), 2.0) - alpha, 0, 1)
        region *= (1 - 0.3 * (1 - own) * ring)[..., None]   # the portrait's own opening has its shadow
        frame[y0:y1, x0:x1] = np.clip(region * (1 - alpha[..., None]) + out * alpha[..., None], 0, 255).astype(np.uint8)

    def _interior(self, lips: _Lips, xy: np.ndarray) -> np.ndarray:
        """Cavity, tongue and teeth over the box."""
        u, v, iod_now = lips.u, lips.v, lips.iod
        au = np.abs(u)
        opening = np.maximum(lips.v_lo - lips.v_up, 0)
        # cavity: dark, darkest at the back (the middle of a wide opening)
        depth = np.clip(1 - au ** 2, 0, 1) * np.clip(opening / (0.25 * iod_now + 1e-6), 0, 1)
        out = self.palette.cavity_rgb * (1 - 0.6 * depth)[..., None]
        # tongue: low in the mouth, its tip curving up at the middle, lit from the front
        tongue_top = lips.v_lo - 0.15 * iod_now * (1 - 0.5 * au ** 2)
        t_alpha = np.clip((v - tongue_top) / 2.0, 0, 1) * np.clip((0.8 - au) / 0.2, 0, 1)
        t_alpha *= np.clip((lips.gap_mid - 0.12 * iod_now) / (0.1 * iod_now), 0, 1)
        t_shade = 0.6 + 0.4 * np.clip((v - tongue_top) / (0.08 * iod_now), 0, 1)
        out = out * (1 - t_alpha[..., None]) + self.palette.tongue_rgb * t_shade[..., None] * t_alpha[..., None]
        if self.own_teeth is not None:
            return self._own_teeth_layer(out, lips, xy)
        return _drawn_teeth(out, lips, opening, self.palette.enamel)

    def _own_interior_layer(self, out: np.ndarray, lips: _Lips) -> tuple[np.ndarray, float]:
        """The source's opening stretched onto the current one (lip line to lip line at each
        point across the mouth): all of it at the photographed gap, handing over to the other
        interior layers by half or one and a half times that gap (stretched further, a sliver of
        teeth smears, a screaming mouth squeezed shows its tongue as a third lip).
        Returns the layer and its weight."""
        t = self.own_interior
        own = float(np.clip(1.0 - abs(lips.gap_mid / t.gap - 1.0) / OWN_HANDOVER, 0.0, 1.0))
        if own <= 0:
            return out, 0.0
        src_up = t.axes.lip_line(t.points, lm.LIPS_UPPER_INNER, lips.u)
        src_lo = t.axes.lip_line(t.points, lm.LIPS_LOWER_INNER, lips.u)
        # a little past the lip lines too: the lips' inner edge as photographed (the warp's
        # source has the opening, and a pixel round it, filled with lip colour)
        across = np.clip((lips.v - lips.v_up) / np.maximum(lips.v_lo - lips.v_up, 1e-3), -0.3, 1.3)
        sx, sy = t.axes.source_xy(lips.u * t.axes.half_w, src_up + across * (src_lo - src_up))
        rgb = cv2.remap(self.source, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        return out * (1 - own) + rgb * own, own

    def _own_teeth_layer(self, out: np.ndarray, lips: _Lips, xy: np.ndarray) -> np.ndarray:
        """The portrait's own teeth: the upper half rides on the upper lip, the lower on the jaw,
        scaled with the face; the cavity shows between them."""
        t = self.own_teeth
        k = self.iod / max(lips.iod, 1e-6)
        v_up0, v_lo0 = lips.axes.mid_gap(xy)
        along = lips.u * lips.axes.half_w * k
        for alpha_src, v_src0, v_dst0, shade in ((t.lower, t.v_lo0, v_lo0, LOWER_TEETH_SHADE),
                                                 (t.upper, t.v_up0, v_up0, 1.0)):
            sx, sy = t.axes.source_xy(along, v_src0 + (lips.v - v_dst0) * k)
            rgb = cv2.remap(self.source, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            a = cv2.remap(alpha_src, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            out = out * (1 - a[..., None]) + rgb * shade * a[..., None]
        return out


def _soften_lip_seam(frame: np.ndarray, box: tuple[int, int, int, int], lips: _Lips, strength: float) -> None:
    """Where the lips meet, upper-lip and lower-lip triangles sample different parts of the
    source with no anti-aliasing between them: a 1 px staircase along the closed lips. Blur
    across the seam only, over a band of about 2 px."""
    x0, y0, x1, y1 = box
    au = np.abs(lips.u)
    seam = strength * np.clip(1 - np.abs(lips.v - 0.5 * (lips.v_up + lips.v_lo)) / 2.0, 0, 1) * np.clip((1 - au) / 0.1, 0, 1)
    region = frame[y0:y1, x0:x1].astype(np.float32)
    region += (cv2.GaussianBlur(region, (1, 5), sigmaX=0, sigmaY=1.0) - region) * seam[..., None]
    frame[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


def _drawn_teeth(out: np.ndarray, lips: _Lips, opening: np.ndarray, enamel: np.ndarray) -> np.ndarray:
    """Upper and lower teeth on a curved arch: teeth narrow and darken towards the corners."""
    u, v, iod_now = lips.u, lips.v, lips.iod
    au = np.abs(u)
    theta = np.arcsin(np.clip(u, -1, 1) * np.sin(ARCH_ANGLE))     # angle round the arch
    frac = np.abs(theta) / TOOTH_ANGLE
    edge = np.abs(frac - np.round(frac)) * TOOTH_ANGLE            # angle to the nearest tooth boundary
    seam = 1 - 0.22 * np.exp(-(edge / np.radians(1.4)) ** 2)
    bump = np.exp(-(edge / (0.3 * TOOTH_ANGLE)) ** 2)              # rounded tooth corners
    side = np.clip(1 - 0.7 * au ** 2.2, 0, 1)
    # upper teeth hang from the upper lip, in its shadow at the top
    up_h = 0.115 * iod_now * (1 - 0.45 * au ** 2) - 0.012 * iod_now * bump
    up_alpha = np.clip((lips.v_up + up_h - v) / 1.2, 0, 1) * np.clip((0.92 - au) / 0.12, 0, 1)
    up_shade = (0.62 + 0.38 * np.clip((v - lips.v_up) / (0.045 * iod_now), 0, 1)) * side * seam
    out = out * (1 - up_alpha[..., None]) + enamel * up_shade[..., None] * up_alpha[..., None]
    # lower teeth rise from behind the lower lip, in shadow, shown once the mouth is open
    lo_h = 0.06 * iod_now * (1 - 0.5 * au ** 2) - 0.008 * iod_now * bump
    lo_alpha = (np.clip((v - (lips.v_lo - lo_h)) / 1.2, 0, 1) * np.clip((0.72 - au) / 0.12, 0, 1)
                * np.clip((opening - 0.1 * iod_now) / (0.1 * iod_now), 0, 1))
    return out * (1 - lo_alpha[..., None]) + enamel * (0.66 * side * seam)[..., None] * lo_alpha[..., None]
