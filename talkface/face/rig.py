"""Face rig: turns a MotionFrame into target positions of the renderer's control points.

The portrait's mesh is brought into a head-aligned frame (x right, y down, z back, unit
= pixels), expressions are linear displacement fields defined there on named mesh
regions, then the head is rotated about a pivot behind the face and projected back.
Points around the head (hair, ears, neck) follow the head by a weight that fades
outwards and is zero on the background, so the background stays still.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from talkface.analysis import landmarks as lm
from talkface.analysis.landmarks import N_MESH
from talkface.analysis.portrait import Portrait
from talkface.face.expressions import Face, LipLimits, closing_field, expression_basis, smoothstep
from talkface.face.outline import Outline
from talkface.face.shell import HeadShell
from talkface.motion.generator import Expression, MotionFrame

EXPRESSION_NAMES = tuple(f.name for f in fields(Expression))


@dataclass(frozen=True)
class Targets:
    """Where every control point goes in one output frame."""

    xy: np.ndarray     # (N, 2) float32 target pixel positions
    depth: np.ndarray  # (N,) float32, larger is farther from the camera (draw order)
    lids_open: np.ndarray | None = None  # (478, 2) the mesh with the lids at rest (no blink/eye_open), same pose


def _smooth_depth(points: np.ndarray, passes: int = 4) -> np.ndarray:
    """Average each point's z with its nearest neighbours: MediaPipe's z jumps near the
    silhouette, and rotating raw z folds triangles at the face edge."""
    from scipy.spatial import cKDTree

    xy = points[:, :2]
    _, nbr = cKDTree(xy).query(xy, k=7)
    z = points[:, 2].copy()
    for _ in range(passes):
        z = 0.5 * z + 0.5 * z[nbr].mean(axis=1)
    out = points.copy()
    out[:, 2] = z
    return out


RING_GAP_FLOOR = 0.4   # share of its rest gap a ring point keeps from the point inside it...
RING_GAP_SOFT = 0.25   # ...reached over a soft zone of this share


@dataclass(frozen=True, eq=False)
class RingGaps:
    """Pushes ring points outwards where the head moves into them, so the band of hair or
    background between the face and the ring compresses smoothly instead of folding (a
    hard cut at the face's edge on turns). Processed level by level, inner first."""

    inner: np.ndarray          # (R,) per ring point: the control point inside it on its ray
    gap_rest: np.ndarray       # (R,) pixels to it at rest
    ray: np.ndarray            # (R, 2) unit direction outwards
    levels: tuple[np.ndarray, ...]   # ring point ids per level, inner level first

    @classmethod
    def build(cls, source_xy: np.ndarray, inner: np.ndarray) -> "RingGaps":
        rest = source_xy.astype(np.float64)
        d_rest = rest[N_MESH:N_MESH + len(inner)] - rest[inner]
        gap_rest = np.linalg.norm(d_rest, axis=1)
        level = np.zeros(len(inner), np.int64)
        for k, j in enumerate(inner):   # inner points come first in the list
            level[k] = 0 if j < N_MESH else level[j - N_MESH] + 1
        levels = tuple(np.flatnonzero(level == v) for v in range(level.max() + 1)) if len(inner) else ()
        return cls(inner, gap_rest, d_rest / np.maximum(gap_rest, 1e-6)[:, None], levels)

    def keep(self, face_xy: np.ndarray, ring_xy: np.ndarray) -> np.ndarray:
        if not len(ring_xy):
            return ring_xy
        ring_xy = ring_xy.copy()
        floor, soft = RING_GAP_FLOOR * self.gap_rest, RING_GAP_SOFT * self.gap_rest
        for ks in self.levels:
            j = self.inner[ks]
            inner_now = np.where((j < N_MESH)[:, None], face_xy[np.minimum(j, N_MESH - 1)],
                                 ring_xy[np.maximum(j - N_MESH, 0)])
            gap_now = ((ring_xy[ks] - inner_now) * self.ray[ks]).sum(axis=1)
            f, sft = floor[ks], soft[ks]
            # a C1 soft floor; identity where nothing presses, so the rest pose is untouched
            wanted = np.where(gap_now >= f + sft, gap_now,
                              np.where(gap_now <= f - sft, f, f + (gap_now - f + sft) ** 2 / (4 * np.maximum(sft, 1e-9))))
            ring_xy[ks] += (wanted - gap_now)[:, None] * self.ray[ks]
        return ring_xy


class FaceRig:
    """Built once per portrait; `targets(motion)` is called once per frame."""

    DEPTH_GAIN = 1.4
    DEPTH_SMOOTH_PASSES = 2
    PIVOT_BEHIND = 0.35   # the pivot this far behind the face oval (face widths)
    # Ring points (hair, ears, neck) sit at this share of the way from the face outline's depth
    # back to the pivot's: the head's silhouette is its widest part, about at the pivot, so a
    # turn slides the face inside a nearly still outline. At the outline's own depth the hair
    # swung sideways with the face (re-enacting the shared clips, whole-frame PSNR 21.86 ->
    # 22.21 dB at 1.0, face figures unchanged).
    RING_DEPTH = 1.0
    # The far oval is held at the visible silhouette (face/outline.py) only on large turns, eased
    # in over these yaws (degrees from the portrait): on the turns real speakers make (hdtf_08,
    # up to 21) it moved the jaw line off the real one (re-enactment landmark error 0.0429 ->
    # 0.0441), while at 30 it keeps the far cheek from being cut straight (smear 9.2 -> 5.3 bits
    # on photo_man_frontal_01).
    OUTLINE_YAW = (20.0, 30.0)
    RING_FACTORS = (1.3, 1.75, 2.4)
    RING_FOLLOW = (1.0, 0.6, 0.2)
    LID_FOLLOW = (0.6, 0.3)   # share of the iris's vertical travel the upper and lower lids follow
    # How much thinner the upper and lower lips get per unit of gap between them as the mouth
    # opens: closing the portrait's open mouth gives that thickness back. The mesh's contours
    # on the tracked real videos say upper 0.09-0.15, lower 0.03-0.13; re-enacting hdtf_06 from
    # its open-mouth first frame, fuller closed lips match the real ones better (identity
    # distance to the portrait, worst frame: 0.10 0.438, 0.20 0.414, 0.30 0.384), but past
    # 0.2 the stretched upper lip's jagged edge shows as vertical streaks.
    LIP_THINNING = (0.20, 0.12)
    # Closed lip thickness (upper, lower, IOD) that regaining stops at, unless the lip is
    # thicker already: a typical closed upper lip is 0.06-0.10 IOD, a lower one 0.08-0.15
    # (face mesh on the shared closed-mouth portraits).
    CLOSED_LIP_MAX = (0.12, 0.17)
    # Closing a mouth stretches the skin between nose and lip at most to the larger of these:
    # a factor of its photographed length, and a typical length (IOD; 0.20-0.26 on the shared
    # closed-mouth portraits).
    PHILTRUM_MAX = (1.35, 0.25)

    def __init__(self, portrait: Portrait) -> None:
        size = portrait.size
        pts = _smooth_depth(portrait.points.astype(np.float64), passes=self.DEPTH_SMOOTH_PASSES)
        # MediaPipe's depth is flatter than a real head: with its raw relief a commanded 20 degree
        # turn reads as ~13 on the rendered face (measured with the same face mesh)
        z_mid = np.median(pts[:, 2])
        pts[:, 2] = z_mid + (pts[:, 2] - z_mid) * self.DEPTH_GAIN
        self.size = size
        self.iod = lm.interocular(pts)
        self.rest_rotation = lm.head_rotation(pts)
        self.rest_yaw = lm.rotation_to_angles(self.rest_rotation)[0]
        # Share of the commanded yaw and pitch a turned portrait can take: the warp can only
        # show what the photo shows, and turning a near-profile face by even a few degrees
        # stretches its hidden side (the mesh's guess of it lies over the nose and the
        # background) into torn streaks. Roll is an in-plane rotation and stays free.
        lo, hi = self.PROFILE_YAW
        self.turn_share = 1.0 - (1.0 - self.PROFILE_TURN_SHARE) * float(smoothstep((abs(self.rest_yaw) - lo) / (hi - lo)))
        oval = pts[list(lm.FACE_OVAL)]
        face_w = np.ptp(oval[:, 0])
        # Pivot: about the middle of the skull, behind the face, at ear height.
        self.pivot = np.array([oval[:, 0].mean(), pts[list(lm.EYE_OUTER) + [lm.NOSE_TIP], 1].mean(), oval[:, 2].mean() + self.PIVOT_BEHIND * face_w])
        self.canonical = (pts - self.pivot) @ self.rest_rotation  # head frame: R^T (p - pivot)
        self.shell = HeadShell.fit(self.pivot, 0.5 * face_w, oval[:, 2].mean(), portrait.person_mask)

        ring_xy, ring_z, ring_follow, ring_weights, ring_inner = self._build_ring(portrait, pts, oval)
        border = self._border_points(size)
        self.source_xy = np.concatenate([pts[:, :2], ring_xy, border]).astype(np.float32)
        self.n_ring = len(ring_xy)
        self.n_points = len(self.source_xy)
        self.ring_canonical = np.concatenate([ring_xy, ring_z[:, None]], axis=1)
        self.ring_canonical = (self.ring_canonical - self.pivot) @ self.rest_rotation
        self.ring_follow = ring_follow
        self.ring_gaps = RingGaps.build(self.source_xy, ring_inner)
        face = Face.of(self.canonical, self.iod)
        self.closing = closing_field(face, LipLimits(self.LIP_THINNING, self.CLOSED_LIP_MAX, self.PHILTRUM_MAX))
        self.basis = expression_basis(face, self.closing, self.LID_FOLLOW, EXPRESSION_NAMES)  # (K, 478, 3)
        self._lid_k = [EXPRESSION_NAMES.index(n) for n in ("blink_left", "blink_right", "eye_open")]
        # ring points borrow a share of the nearby face's expression (the jaw pulls the neck)
        self.ring_basis = np.einsum("rn,knc->krc", ring_weights, self.basis)
        # and of the closing of the portrait's mouth: without it, mouth_rest = 1 (undoing the
        # closing) moved the neck where the photographed face has none
        self.ring_closing = ring_weights @ self.closing
        self.outline = Outline.build(pts[:, :2], lm.FACE_OVAL)
        self.rest_depth = np.concatenate([pts[:, 2], ring_z, np.full(len(border), pts[:, 2].max() + 100)])

    # ---------------------------------------------------------------- control points
    def _build_ring(self, portrait: Portrait, pts: np.ndarray, oval: np.ndarray):
        import cv2

        centre = oval[:, :2].mean(axis=0)
        mask = cv2.GaussianBlur(portrait.person_mask, (0, 0), 6)
        xy, z, follow, weights = [], [], [], []
        inner = []       # per ring point: index (in all control points) of the point inside it on its ray
        last_level: dict[int, int] = {}
        chin_y = pts[lm.CHIN, 1]
        for factor, base_follow in zip(self.RING_FACTORS, self.RING_FOLLOW):
            level: dict[int, int] = {}
            for i in range(0, len(lm.FACE_OVAL), 2):
                p = oval[i]
                q = centre + (p[:2] - centre) * factor
                # only inside the frame (clear of its edge): the frame's border points must be the
                # hull, or moving ring points outside it would move the frame's edge pixels
                lo, hi = self.RING_CLEAR * self.size, (1 - self.RING_CLEAR) * (self.size - 1)
                if not (lo <= q[0] <= hi and lo <= q[1] <= hi):
                    continue
                qi = np.clip(np.round(q).astype(int), 0, self.size - 1)
                w = base_follow
                if q[1] > chin_y:  # below the chin: neck and shoulders belong to the body more than the
                    # head, and the background beside them stays put (it pins the shoulders' outline)
                    on_person = float(mask[qi[1], qi[0]])
                    w *= 0.5 * smoothstep((on_person - 0.2) / 0.6)
                # (above it, background points follow too: the renderer composites the moving
                # person over a still background plate, so they only carry the hair's outline)
                inner.append(last_level.get(i, lm.FACE_OVAL[i]) if factor != self.RING_FACTORS[0] else lm.FACE_OVAL[i])
                level[i] = N_MESH + len(xy)
                xy.append(q)
                z.append(float(self.shell.front_depth(q[None])[0]))
                follow.append(w)
                row = np.zeros(N_MESH)
                row[lm.FACE_OVAL[i]] = 0.6 * (factor == self.RING_FACTORS[0]) * w
                weights.append(row)
            last_level = level
        return np.array(xy), np.array(z), np.array(follow), np.array(weights), np.array(inner, np.int64)

    PROFILE_YAW = (35.0, 55.0)   # portrait yaw (degrees) over which head turns are scaled down...
    PROFILE_TURN_SHARE = 0.25    # ...to this share (a 59 degree profile tore at full share)

    BORDER_INSET = 0.025   # a second fixed frame this far in (fraction of the size): the strip between
    RING_CLEAR = 0.07      # it and the edge never moves; ring points stay this far from the edge

    @classmethod
    def _border_points(cls, size: int, per_side: int = 16) -> np.ndarray:
        """Fixed points on the frame's edge and on a frame just inside it: every triangle touching
        the edge has only fixed corners, so the frame's border pixels never change."""
        frames = []
        for inset in (0.0, cls.BORDER_INSET * size):
            t = np.linspace(inset, size - 1 - inset, per_side + 1)
            lo = np.full_like(t, inset)
            hi = np.full_like(t, size - 1.0 - inset)
            frames.append(np.concatenate([np.stack([t, lo], 1), np.stack([t, hi], 1),
                                          np.stack([lo, t], 1), np.stack([hi, t], 1)]))
        return np.unique(np.round(np.concatenate(frames), 3), axis=0)

    @staticmethod
    def _limited(delta: float, rest: float, knee: float, limit: float) -> float:
        """A turn relative to the portrait, eased so the head's total angle (its own pose plus
        the turn) stays under `limit`: a 2-D warp of an already-turned face cannot show its far
        side, and past ~35 degrees it tears. Identity while the total stays under `knee`."""
        total = rest + delta
        if abs(total) <= knee or abs(total) <= abs(rest):   # turning back towards frontal is always free
            return delta
        span = limit - knee
        eased = np.sign(total) * (knee + span * np.tanh((abs(total) - knee) / span))
        if abs(rest) > knee:    # the portrait itself is past the knee: ease from where it is,
            # within what is left below the limit (a portrait past the limit keeps 2 degrees: a
            # negative room here turned a near-profile face 16 degrees back, tearing it)
            room = max(limit - abs(rest), 2.0)
            eased = np.sign(total) * (abs(rest) + room * np.tanh((abs(total) - abs(rest)) / room))
        return float(eased - rest)

    def _keep_inside(self, xy: np.ndarray) -> np.ndarray:
        """Moving points ease to a stop before the fixed frame inside the border (a soft wall, so
        a jaw opening near the frame's edge compresses the skin there instead of folding it)."""
        wall = (self.BORDER_INSET + 0.008) * self.size
        soft = 0.03 * self.size
        out = xy.copy()
        for col in (0, 1):
            for sign, edge in ((1.0, wall), (-1.0, self.size - 1 - wall)):
                d = sign * (out[:, col] - edge)          # distance inside the wall
                near = d < soft
                if not near.any():
                    continue
                dn = d[near]
                eased = np.where(dn <= -soft, 0.0, (dn + soft) ** 2 / (4 * soft))   # C1 soft floor at 0
                out[near, col] = edge + sign * eased
        return out

    def rest_gaze_deg(self) -> tuple[float, float]:
        """The portrait's own gaze (yaw, pitch) in degrees, from where the irises sit between
        the eye corners: what `--gaze camera` cancels."""
        return lm.gaze_deg(self.canonical)

    # ---------------------------------------------------------------- per frame
    def expression_vector(self, e: Expression) -> np.ndarray:
        v = np.array([getattr(e, name) for name in EXPRESSION_NAMES], np.float64)
        # gaze is given in degrees; the basis is per radian of (sin) rotation
        k_yaw, k_pitch = EXPRESSION_NAMES.index("gaze_yaw"), EXPRESSION_NAMES.index("gaze_pitch")
        v[k_yaw] = np.sin(np.radians(v[k_yaw]))
        v[k_pitch] = np.sin(np.radians(v[k_pitch]))
        return v

    def targets(self, motion: MotionFrame) -> Targets:
        weights = self.expression_vector(motion.expression)
        # einsum, not tensordot: a BLAS call here costs 50x more, and its threads spin against the renderers'
        face = self.canonical + self.closing + np.einsum("k,kij->ij", weights, self.basis)
        ring = self.ring_canonical + self.ring_closing + np.einsum("k,kij->ij", weights, self.ring_basis)
        # (yaw only: the mesh's pitch has no reliable zero, a frontal face reads about -13)
        yaw = self._limited(motion.yaw * self.turn_share, self.rest_yaw, 18.0, 34.0)
        delta = lm.rotation_matrix(yaw, motion.pitch * self.turn_share, motion.roll)
        rot = delta @ self.rest_rotation
        shift = np.array([motion.tx * self.size, motion.ty * self.size, 0.0])
        face_w = face @ rot.T * motion.scale + self.pivot + shift
        ring_moved = ring @ rot.T * motion.scale + self.pivot + shift
        ring_rest = self.ring_canonical @ self.rest_rotation.T + self.pivot
        f = self.ring_follow[:, None]
        ring_w = f * ring_moved + (1 - f) * ring_rest
        lo, hi = self.OUTLINE_YAW
        hold = float(smoothstep((abs(yaw) - lo) / (hi - lo)))
        if hold > 0:
            face_w[:, :2] += hold * (self.outline.visible(face_w[:, :2]) - face_w[:, :2])
        ring_w[:, :2] = self._keep_inside(self.ring_gaps.keep(face_w[:, :2], ring_w[:, :2]))
        face_w[:, :2] = self._keep_inside(face_w[:, :2])
        border = self.source_xy[N_MESH + self.n_ring:]
        xy = np.concatenate([face_w[:, :2], ring_w[:, :2], border]).astype(np.float32)
        depth = np.concatenate([face_w[:, 2], ring_w[:, 2], self.rest_depth[N_MESH + self.n_ring:]]).astype(np.float32)
        lid_w = weights[self._lid_k]
        lids_open = None
        if np.any(lid_w != 0):
            rest = face - np.einsum("k,kij->ij", lid_w, self.basis[self._lid_k])
            lids_open = (rest[:, :2] @ rot[:2, :2].T + rest[:, 2:3] * rot[:2, 2]) * motion.scale + self.pivot[:2] + shift[:2]
            lids_open = lids_open.astype(np.float32)
        return Targets(xy=xy, depth=depth, lids_open=lids_open)
