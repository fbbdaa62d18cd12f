"""What the mouth layer is drawn from, measured once per portrait: the mouth's own frame of
reference, a palette taken from the face, and the portrait's own teeth and opening when its
mouth shows them."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.portrait import Portrait
from talkface.render.inpaint import LUMA, LUMA_WEIGHTS, eroded
from talkface.render.warp import INNER_MOUTH

# the synthesised interior's colours under a face of median luminance 165 (scaled by its light)
CAVITY_RGB = (66, 26, 28)
TONGUE_RGB = (150, 78, 80)
ENAMEL_RGB = (1.0, 0.985, 0.94)
REFERENCE_LUM = 165.0
LIGHT_RANGE = (0.35, 1.2)
FULL_CHROMA = 18.0              # mean |channel - luminance| of a normally coloured face
ENAMEL_MIX = (0.55, 0.45)       # white and the skin's tint in the teeth's colour
ENAMEL_LUM = (70, 232)          # grey levels the teeth's brightness stays within
OWN_MOUTH_MIN_OPENING = 0.03    # IOD: a photographed opening smaller than this is not reused
OWN_TEETH_MIN_OPENING = 0.14    # IOD: a sliver of teeth splits badly
TEETH_BRIGHT = 0.72             # of the face's 90th luminance percentile: teeth are at least this bright...
TEETH_MAX_SAT = 100             # ...and this grey (HSV saturation)
TEETH_SHARE = 0.35              # the opening is the portrait's own teeth if this share of it is bright
SEAM_OPENING = (0.03, 0.05)     # photographed opening (IOD) over which the warp-made lip seam fades in


@dataclass(frozen=True)
class MouthAxes:
    """Mouth-aligned frame: centre, unit axis corner to corner, its normal (down), half width."""

    centre: np.ndarray
    ux: np.ndarray
    vy: np.ndarray
    half_w: float

    @classmethod
    def of(cls, xy: np.ndarray) -> "MouthAxes":
        left, right = xy[lm.INNER_CORNERS[0]].astype(np.float64), xy[lm.INNER_CORNERS[1]].astype(np.float64)
        centre = (left + right) / 2
        axis = right - left
        half_w = max(np.linalg.norm(axis) / 2, 1.0)
        ux = axis / (2 * half_w)
        return cls(centre, ux, np.array([-ux[1], ux[0]]), half_w)

    def lip_line(self, xy: np.ndarray, ids: tuple[int, ...], u: np.ndarray) -> np.ndarray:
        """The lip contour's offset along vy (pixels) at positions u (-1..1 corner to corner)."""
        p = xy[list(ids)].astype(np.float64) - self.centre
        pu = (p @ self.ux) / self.half_w
        pv = p @ self.vy
        order = np.argsort(pu)
        return np.interp(u, pu[order], pv[order])

    def mid_gap(self, xy: np.ndarray) -> tuple[float, float]:
        """The inner lips' offsets at the middle of the mouth: (upper, lower)."""
        zero = np.zeros(1)
        return (float(self.lip_line(xy, lm.LIPS_UPPER_INNER, zero)[0]),
                float(self.lip_line(xy, lm.LIPS_LOWER_INNER, zero)[0]))

    def source_xy(self, along: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel maps of points `along` the axis and `across` it (both in pixels)."""
        sx = (self.centre[0] + self.ux[0] * along + self.vy[0] * across).astype(np.float32)
        sy = (self.centre[1] + self.ux[1] * along + self.vy[1] * across).astype(np.float32)
        return sx, sy


@dataclass(frozen=True)
class MouthPalette:
    """Colours for the synthesised interior, taken from the face so they match its lighting
    and style (a grey photo or a painting gets grey or painted teeth)."""

    enamel: np.ndarray
    cavity_rgb: np.ndarray
    tongue_rgb: np.ndarray

    @classmethod
    def of(cls, portrait: Portrait) -> "MouthPalette":
        face = lm.polygon_mask(portrait.points[list(lm.FACE_OVAL)], portrait.size) > 0.5
        skin = portrait.image[face].reshape(-1, 3).astype(np.float32)
        if len(skin) < 16:
            skin = portrait.image.reshape(-1, 3).astype(np.float32)
        skin_rgb = np.median(skin, axis=0)
        lum = skin @ LUMA
        lum_med, lum_hi = float(np.median(lum)), float(np.percentile(lum, 95))
        light = float(np.clip(lum_med / REFERENCE_LUM, *LIGHT_RANGE))
        # how colourful the face is: 0 for a grey or sepia picture, 1 for a normal photo
        colour = float(np.clip(np.abs(skin - lum[:, None]).mean() / FULL_CHROMA, 0.0, 1.0))
        luma64 = np.array(LUMA_WEIGHTS)
        tint = skin_rgb / max(float(skin_rgb @ luma64), 1.0)

        def style(rgb: np.ndarray) -> np.ndarray:
            # in a grey/sepia picture, colours become the picture's own tone at the same brightness
            grey = float(rgb @ luma64)
            return (colour * rgb + (1 - colour) * grey * tint).astype(np.float32)

        # enamel: near white, tinted by the picture's own light (ivory under warm light, paint...)
        enamel = ENAMEL_MIX[0] * np.array(ENAMEL_RGB, np.float32) + ENAMEL_MIX[1] * tint
        enamel *= np.clip(0.5 * (lum_med + lum_hi), *ENAMEL_LUM) / float(enamel @ luma64)
        return cls(enamel=style(enamel), cavity_rgb=style(np.array(CAVITY_RGB, np.float32) * light),
                   tongue_rgb=style(np.array(TONGUE_RGB, np.float32) * light))


@dataclass(frozen=True, eq=False)
class OwnTeeth:
    """The portrait's own teeth: the opening split into an upper half (moves with the upper
    lip) and a lower half (moves with the jaw)."""

    axes: MouthAxes
    v_up0: float            # the inner lips' offsets at the middle of the photographed mouth
    v_lo0: float
    upper: np.ndarray       # (S, S) float32 alpha of the upper teeth in the photo
    lower: np.ndarray

    @classmethod
    def find(cls, portrait: Portrait, iod: float, grid_x: np.ndarray, grid_y: np.ndarray) -> "OwnTeeth | None":
        pts = portrait.points.astype(np.float64)
        source = portrait.image
        opening = lm.polygon_mask(pts[list(INNER_MOUTH)], portrait.size)
        inner = eroded(opening > 0.5, 1)
        if inner.sum() < max(60, 0.004 * iod * iod) or lm.mouth_opening(pts) < OWN_TEETH_MIN_OPENING:
            return None
        lum = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY).astype(np.float32)
        hsv = cv2.cvtColor(source, cv2.COLOR_RGB2HSV)
        face = lm.polygon_mask(pts[list(lm.FACE_OVAL)], portrait.size) > 0.5
        bright = (lum > TEETH_BRIGHT * np.percentile(lum[face], 90)) & (hsv[..., 1] < TEETH_MAX_SAT)
        if bright[inner].mean() < TEETH_SHARE:
            return None
        axes = MouthAxes.of(pts[:, :2])
        gy, gx = grid_y - axes.centre[1], grid_x - axes.centre[0]
        u = (gx * axes.ux[0] + gy * axes.ux[1]) / axes.half_w
        v = gx * axes.vy[0] + gy * axes.vy[1]
        split = 0.5 * (axes.lip_line(pts[:, :2], lm.LIPS_UPPER_INNER, u) + axes.lip_line(pts[:, :2], lm.LIPS_LOWER_INNER, u))
        # keep the lip's own colour out: shrink the opening a little, soft edge
        soft = np.clip(cv2.GaussianBlur(inner.astype(np.float32), (0, 0), 1.0) * 2 - 0.6, 0, 1)
        upper = soft * np.clip(split - v + 0.5, 0, 1)
        lower = soft * np.clip(v - split + 0.5, 0, 1)
        v_up0, v_lo0 = axes.mid_gap(pts[:, :2])
        return cls(axes, v_up0, v_lo0, upper.astype(np.float32), lower.astype(np.float32))


@dataclass(frozen=True, eq=False)
class OwnInterior:
    """The portrait's own mouth opening as a whole: a mouth near its photographed shape
    (re-enacting the portrait) shows exactly what the picture shows, not a drawn interior
    (drawn teeth in a dark "o" changed the face) nor teeth split between the lips."""

    points: np.ndarray      # (478, 2) float64 the photographed mesh
    axes: MouthAxes
    gap: float              # pixels between the inner lips at the middle

    @classmethod
    def find(cls, portrait: Portrait) -> "OwnInterior | None":
        pts = portrait.points[:, :2].astype(np.float64)
        opening = lm.polygon_mask(pts[list(INNER_MOUTH)], portrait.size) > 0.5
        if opening.sum() < 12 or lm.mouth_opening(portrait.points) < OWN_MOUTH_MIN_OPENING:
            return None
        axes = MouthAxes.of(pts)
        v_up, v_lo = axes.mid_gap(pts)
        return cls(pts, axes, max(v_lo - v_up, 1.0))


def seam_softening(portrait: Portrait) -> float:
    """A closed photographed mouth has its own lip line: only a closed-by-warp mouth has a seam."""
    lo, span = SEAM_OPENING
    return float(np.clip((lm.mouth_opening(portrait.points) - lo) / span, 0, 1))
