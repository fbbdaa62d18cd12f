"""Rendering stage: a piecewise-affine warp of the portrait crop, driven by the rig's
control points, with the layers the warp alone cannot make. Each layer is built once per
portrait into its own frozen object; `Renderer.render` runs them in order:

- warp (talkface.render.warp): triangle ids in target space and the backward map;
- plate (talkface.render.plate): the person, warped, over a still background plate;
- mirror (talkface.render.mirror): a turning face's stretched side takes the fine detail of
  its other half, mirrored;
- silhouette (talkface.render.silhouette): the edges where a turning head folds over what
  is behind it, softened;
- eyes (talkface.render.eyes): eyeballs, irises moved for gaze, lids and lashes on a blink;
- mouth (talkface.render.mouth): the interior where the lips part, the lip seam.
"""
from __future__ import annotations

import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.landmarks import N_MESH
from talkface.analysis.portrait import Portrait
from talkface.face.rig import FaceRig, Targets
from talkface.motion.generator import MotionFrame
from talkface.render.eyes import EyeLayer
from talkface.render.mirror import MirrorLayer
from talkface.render.mouth import MouthLayer
from talkface.render.plate import PlateLayer
from talkface.render.silhouette import HEAD_MARGIN, grown_box, soften_folds
from talkface.render.warp import WarpMesh

LIPS_OUTER = list(lm.LIPS_UPPER_OUTER + lm.LIPS_LOWER_OUTER)


class Renderer:
    """Built once per portrait; `render(targets)` makes one RGB frame."""

    def __init__(self, portrait: Portrait, rig: FaceRig) -> None:
        self.size = portrait.size
        self.rig = rig
        src_xy = rig.source_xy.astype(np.float64)
        self.mesh = WarpMesh.build(rig)
        self.plate = PlateLayer.build(portrait, rig.iod)
        self.mirror = MirrorLayer.build(portrait.image, rig, self.mesh)
        self.eyes = EyeLayer.build(portrait, src_xy, rig.iod)
        self.mouth = MouthLayer.build(portrait, self.mesh, src_xy, rig.iod)

    def render(self, targets: Targets) -> np.ndarray:
        warp = self.mesh.warp(targets)
        frame = self.plate.draw(warp)
        self.mirror.draw(frame, self.mesh, warp, targets)
        soften_folds(frame, warp, grown_box(targets.xy[:N_MESH], HEAD_MARGIN, self.size),
                     grown_box(targets.xy[LIPS_OUTER], 0.0, self.size))
        self.eyes.draw(frame, self.mesh, warp.ids, targets)
        self.mouth.draw(frame, self.mesh, warp.ids, targets)
        return frame


def render_motion(renderer: Renderer, motion: MotionFrame) -> np.ndarray:
    return renderer.render(renderer.rig.targets(motion))
