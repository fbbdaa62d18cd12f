"""Plate layer: the picture as a matte, the person over a still background plate.

src = a P + (1 - a) B: the warp moves the person and its alpha; the plate (the photo's
background with the band a moving head may uncover filled in) stays. At rest this is
exactly the photo, and a turning head keeps its hair's outline and uncovers invented
background, where a single warp squeezed the hair's outer part against the still
background beside it (cutting it along a triangle's edge).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.portrait import Portrait
from talkface.render.completion import textured_fill
from talkface.render.inpaint import dilated, fill_from
from talkface.render.warp import INNER_MOUTH, Warp

BACKGROUND_BAND = 0.12     # how far inside the person's silhouette the background plate is invented (of the size)
BACKGROUND_ALPHA = 0.02    # person-mask value below which a pixel is background as photographed
BACKGROUND_FRINGE = 0.016  # ...unless this close to the person (fraction of the size)
FACE_MASK_SIGMA = 2        # pixels: the face oval's soft edge in the matte
EDGE_ROW = 512             # edge pixels are remapped in rows of this many (cv2.remap pays per row)

CLOSED_MOUTH = 0.02        # mouth opening (IOD) below which the warp samples the photo as it is
TEETH_REACH = 0.04         # IOD: how far past the inner lip line teeth-white pixels are looked for
TEETH_LUM_OVER_LIP = 40    # grey levels: teeth are much paler than the lip round them...
TEETH_SAT_SHARE = 0.5      # ...and greyer (saturation under this share of the lips' median)


def _mouth_filled(source: np.ndarray, points: np.ndarray, iod: float) -> np.ndarray:
    """The image the warp samples: the source with its mouth opening (teeth, dark) filled with
    the lips' own colour. Closed or nearly closed lips then never show a seam of teeth where
    the lip triangles reach a pixel past the source's inner lip line; the interior layer
    (drawn teeth, or the portrait's own from the untouched source) covers the open mouth."""
    size = source.shape[0]
    if lm.mouth_opening(points) < CLOSED_MOUTH:
        return source
    opening = lm.polygon_mask(points[list(INNER_MOUTH)], size) > 0.2
    fill = dilated(opening, 1)
    lips = lm.polygon_mask(points[list(lm.LIPS_UPPER_OUTER) + list(reversed(lm.LIPS_LOWER_OUTER[1:-1]))], size) > 0.5
    # the mesh's inner lip line often runs over the teeth (the lower one along their edge):
    # teeth-white pixels just past it are no lip either, or the closed lips show a white seam
    near = dilated(opening, max(1, int(round(TEETH_REACH * iod))))
    band = near & lips & ~fill
    if band.any():
        lum = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY).astype(np.float32)
        sat = cv2.cvtColor(source, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
        outside = lips & ~near
        lip_lum = np.median(lum[outside if outside.any() else band])
        fill |= band & (lum > lip_lum + TEETH_LUM_OVER_LIP) & (sat < TEETH_SAT_SHARE * np.median(sat[lips]))
    known = lips & ~dilated(fill, 1)
    if known.sum() < 10:
        return source
    filled = fill_from(known, source.astype(np.float32), fill)
    out = source.copy()
    out[fill] = np.clip(filled[fill], 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True, eq=False)
class PlateLayer:
    """Built once per portrait: what the warp samples, and the matte it is composited with."""

    source_rgba: np.ndarray     # (S, S, 4) uint8: what the warp samples (the photo, its mouth opening filled
                                # with lip) and the person's matte in 1/255 steps
    plate: np.ndarray           # (S, S, 3) uint8: the background with the person's outer band invented
    premultiplied: np.ndarray   # (S, S, 3) float32: the person premultiplied by its alpha

    @classmethod
    def build(cls, portrait: Portrait, iod: float) -> "PlateLayer":
        size, source = portrait.size, portrait.image
        warp_source = _mouth_filled(source, portrait.points, iod)
        # the face itself always moves, whatever the segmentation says (a painted or drawn face
        # can fall outside its person mask)
        face = cv2.GaussianBlur(lm.face_oval_mask(portrait.points, size), (0, 0), FACE_MASK_SIGMA)
        a = np.maximum(np.clip(portrait.person_mask, 0, 1), np.clip(2 * face, 0, 1)).astype(np.float32)
        person = (a >= BACKGROUND_ALPHA).astype(np.uint8)
        dist = cv2.distanceTransform(person, cv2.DIST_L2, 3)
        band = (person > 0) & (dist <= BACKGROUND_BAND * size)
        # the background is sampled clear of the person's fringe (flyaway hair the mask misses,
        # a dark halo): taken into the plate, it stayed behind as a ghost outline of the hair.
        # The fringe itself is filled too; the premultiplied person carries it exactly.
        fringe = max(2, int(round(BACKGROUND_FRINGE * size)))
        near = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * fringe + 1, 2 * fringe + 1))) > 0
        fill = band | (near & (person == 0))
        smooth = fill_from(~near, source, fill)
        plate = np.clip(np.round(textured_fill(~near, source, fill, smooth)), 0, 255).astype(np.uint8)
        # alpha in 1/255 steps; the fringe the plate replaced gets the smallest step, so the
        # matte's edge zone (0 < alpha < 255) is exactly where the person and plate mix
        alpha = np.round(a * 255).astype(np.uint8)
        alpha[(alpha == 0) & (plate != source).any(axis=2)] = 1
        share = (1 - alpha.astype(np.float32) / 255)[..., None]
        premultiplied = warp_source.astype(np.float32) - share * plate.astype(np.float32)
        # one remap of four channels (colour and matte) costs half of two: the map's conversion
        # to fixed point, paid per call, is most of a remap's cost
        return cls(source_rgba=np.dstack([warp_source, alpha]), plate=plate, premultiplied=premultiplied)

    def draw(self, warp: Warp) -> np.ndarray:
        """The warped picture, composited over the plate: the plate where the warped person is
        transparent, premultiplied person over plate along its edge. Inside the person the
        warp itself is the answer, so only the edge pays for the matte's float arithmetic."""
        map_x, map_y = warp.map_x, warp.map_y
        warped = cv2.remap(self.source_rgba, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frame = cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)
        a = cv2.extractChannel(warped, 3)
        cv2.copyTo(self.plate, cv2.compare(a, 0, cv2.CMP_EQ), frame)
        edge = np.flatnonzero((a > 0) & (a < 255))
        if not len(edge):
            return frame
        n = len(edge)
        rows = -(-n // EDGE_ROW)
        mx = np.zeros(rows * EDGE_ROW, np.float32)
        my = np.zeros(rows * EDGE_ROW, np.float32)
        map_x.take(edge, out=mx[:n])
        map_y.take(edge, out=my[:n])
        person = cv2.remap(self.premultiplied, mx.reshape(rows, EDGE_ROW), my.reshape(rows, EDGE_ROW),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(-1, 3)[:n]
        share = 1 - a.take(edge).astype(np.float32)[:, None] / 255
        # pixels moved as 3-byte records: a gather / scatter of (n, 3) rows costs twice as much
        mixed = person + share * _pixels(self.plate).take(edge).view(np.uint8).reshape(n, 3)
        mixed += 0.5
        np.clip(mixed, 0, 255, out=mixed)
        _pixels(frame)[edge] = _pixels(mixed.astype(np.uint8))
        return frame


def _pixels(rgb: np.ndarray) -> np.ndarray:
    """A contiguous (..., 3) uint8 picture as a flat view of 3-byte pixel records."""
    return rgb.reshape(-1, 3).view("V3").ravel()
