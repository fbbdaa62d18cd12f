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
from talkface.motion.generator import Expression, MotionFrame
from talkface.analysis.portrait import Portrait

N_MESH = 478
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


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _follow_lip_rings(field: np.ndarray) -> None:
    """In place: each lip-ring point takes the blend of its outer and inner contour points'
    displacement (ring 2: 2/3 outer, ring 3: 1/3 outer)."""
    for outer, inner, r2, r3 in ((lm.LIPS_UPPER_OUTER, lm.LIPS_UPPER_INNER, lm.LIPS_UPPER_RING2, lm.LIPS_UPPER_RING3),
                                 (lm.LIPS_LOWER_OUTER, lm.LIPS_LOWER_INNER, lm.LIPS_LOWER_RING2, lm.LIPS_LOWER_RING3)):
        for k in range(1, len(outer) - 1):
            o, i = field[outer[k]], field[inner[k]]
            field[r2[k]] = (2 * o + i) / 3
            field[r3[k]] = (o + 2 * i) / 3


def _spread_field(c: np.ndarray, field: np.ndarray, sigma: float, frozen: set[int]) -> np.ndarray:
    """Extend a displacement field from the points it moves to the still points near them:
    Gaussian-weighted average of the moved points' displacements, fading with distance."""
    moved = np.flatnonzero(np.abs(field).sum(axis=1) > 1e-9)
    still = np.array([i for i in range(len(c)) if i not in frozen and i not in set(moved.tolist())])
    if len(moved) == 0 or len(still) == 0:
        return field
    d2 = ((c[still, None, :2] - c[None, moved, :2]) ** 2).sum(axis=2) / sigma ** 2
    w = np.exp(-d2)
    avg = (w @ field[moved]) / (w.sum(axis=1, keepdims=True) + 1e-12)
    fade = np.exp(-d2.min(axis=1))[:, None]
    out = field.copy()
    out[still] = avg * fade
    return out


class FaceRig:
    """Built once per portrait; `targets(motion)` is called once per frame."""

    DEPTH_GAIN = 1.4
    # Ring points (hair, ears, neck) sit at this share of the way from the face outline's depth
    # back to the pivot's: the head's silhouette is its widest part, about at the pivot, so a
    # turn slides the face inside a nearly still outline. At the outline's own depth the hair
    # swung sideways with the face (re-enacting the shared clips, whole-frame PSNR 21.86 ->
    # 22.21 dB at 1.0, face figures unchanged).
    RING_DEPTH = 1.0
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
        pts = _smooth_depth(portrait.points.astype(np.float64), passes=2)
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
        self.turn_share = 1.0 - (1.0 - self.PROFILE_TURN_SHARE) * float(_smoothstep((abs(self.rest_yaw) - lo) / (hi - lo)))
        oval = pts[list(lm.FACE_OVAL)]
        face_w = np.ptp(oval[:, 0])
        # Pivot: about the middle of the skull, behind the face, at ear height.
        self.pivot = np.array([oval[:, 0].mean(), pts[[33, 263, 1], 1].mean(), oval[:, 2].mean() + 0.35 * face_w])
        self.canonical = (pts - self.pivot) @ self.rest_rotation  # head frame: R^T (p - pivot)

        ring_xy, ring_z, ring_follow, ring_weights = self._build_ring(portrait, pts, oval)
        border = self._border_points(size)
        self.source_xy = np.concatenate([pts[:, :2], ring_xy, border]).astype(np.float32)
        self.n_ring = len(ring_xy)
        self.n_points = len(self.source_xy)
        self.ring_canonical = np.concatenate([ring_xy, ring_z[:, None]], axis=1)
        self.ring_canonical = (self.ring_canonical - self.pivot) @ self.rest_rotation
        self.ring_follow = ring_follow
        self.basis = self._expression_basis()  # (K, 478, 3) in the head frame
        self._lid_k = [EXPRESSION_NAMES.index(n) for n in ("blink_left", "blink_right", "eye_open")]
        # ring points borrow a share of the nearby face's expression (the jaw pulls the neck)
        self.ring_basis = np.einsum("rn,knc->krc", ring_weights, self.basis)
        # and of the closing of the portrait's mouth: without it, mouth_rest = 1 (undoing the
        # closing) moved the neck where the photographed face has none
        self.ring_closing = ring_weights @ self.closing
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
                    w *= 0.5 * _smoothstep((on_person - 0.2) / 0.6)
                # (above it, background points follow too: the renderer composites the moving
                # person over a still background plate, so they only carry the hair's outline)
                inner.append(last_level.get(i, lm.FACE_OVAL[i]) if factor != self.RING_FACTORS[0] else lm.FACE_OVAL[i])
                level[i] = N_MESH + len(xy)
                xy.append(q)
                z.append(p[2] + self.RING_DEPTH * (self.pivot[2] - p[2]))
                follow.append(w)
                row = np.zeros(N_MESH)
                row[lm.FACE_OVAL[i]] = 0.6 * (factor == self.RING_FACTORS[0]) * w
                weights.append(row)
            last_level = level
        self.ring_inner = np.array(inner, np.int64)
        return np.array(xy), np.array(z), np.array(follow), np.array(weights)

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

    def _keep_ring_gaps(self, face_xy: np.ndarray, ring_xy: np.ndarray) -> np.ndarray:
        """Push ring points outwards where the head moves into them, so the band of hair or
        background between the face and the ring compresses smoothly instead of folding (a
        hard cut at the face's edge on turns). Processed level by level, inner first."""
        if not len(ring_xy):
            return ring_xy
        if not hasattr(self, "_ring_levels"):
            rest = self.source_xy.astype(np.float64)
            d_rest = rest[N_MESH:N_MESH + len(ring_xy)] - rest[self.ring_inner]
            self._gap_rest = np.linalg.norm(d_rest, axis=1)
            self._ray = d_rest / np.maximum(self._gap_rest, 1e-6)[:, None]
            level = np.zeros(len(ring_xy), np.int64)
            for k, j in enumerate(self.ring_inner):   # inner points come first in the list
                level[k] = 0 if j < N_MESH else level[j - N_MESH] + 1
            self._ring_levels = [np.flatnonzero(level == v) for v in range(level.max() + 1)]
        ring_xy = ring_xy.copy()
        floor, soft = 0.4 * self._gap_rest, 0.25 * self._gap_rest
        for ks in self._ring_levels:
            j = self.ring_inner[ks]
            inner_now = np.where((j < N_MESH)[:, None], face_xy[np.minimum(j, N_MESH - 1)],
                                 ring_xy[np.maximum(j - N_MESH, 0)])
            gap_now = ((ring_xy[ks] - inner_now) * self._ray[ks]).sum(axis=1)
            f, sft = floor[ks], soft[ks]
            # a C1 soft floor; identity where nothing presses, so the rest pose is untouched
            wanted = np.where(gap_now >= f + sft, gap_now,
                              np.where(gap_now <= f - sft, f, f + (gap_now - f + sft) ** 2 / (4 * np.maximum(sft, 1e-9))))
            ring_xy[ks] += (wanted - gap_now)[:, None] * self._ray[ks]
        return ring_xy

    # ---------------------------------------------------------------- expressions
    def _expression_basis(self) -> np.ndarray:
        c = self.canonical
        iod = self.iod
        n = len(c)
        basis = {name: np.zeros((n, 3)) for name in EXPRESSION_NAMES}
        idx = np.arange(n)

        mouth_c = c[list(lm.INNER_CORNERS)].mean(axis=0)
        half_w = np.linalg.norm(c[308] - c[78]) / 2
        across = (c[:, 0] - mouth_c[0]) / (half_w * 1.15)
        profile = 0.25 + 0.75 * np.cos(np.clip(across, -1, 1) * np.pi / 2)  # corners move less: an oval opening

        upper = set(lm.LIPS_UPPER_INNER + lm.LIPS_UPPER_OUTER) - set(lm.MOUTH_CORNERS + lm.INNER_CORNERS)
        lower = set(lm.LIPS_LOWER_INNER + lm.LIPS_LOWER_OUTER) - set(lm.MOUTH_CORNERS + lm.INNER_CORNERS)
        corners = list(lm.MOUTH_CORNERS + lm.INNER_CORNERS)
        upper_i, lower_i = sorted(upper), sorted(lower)

        # Close the portrait's own mouth: neutral is lips together, whatever the photo shows.
        # Each lip moves column by column, its outer contour with its inner one less the
        # thickness the lip regains as it closes. (Moving the outer lips by the mean gap
        # stretched a wide-open lower lip in the middle, where the gap is largest, into a fat
        # tongue-like blob; by the full inner move, the closed lips came out too thin.)
        close = np.zeros((n, 3))
        up_thin, lo_thin = self.LIP_THINNING
        up_cap, lo_cap = (f * iod for f in self.CLOSED_LIP_MAX)
        columns = list(zip(lm.LIPS_UPPER_OUTER[1:-1], lm.LIPS_UPPER_INNER[1:-1],
                           lm.LIPS_LOWER_INNER[1:-1], lm.LIPS_LOWER_OUTER[1:-1]))

        def closed_lips(uo, u, l, lo) -> tuple[float, float]:
            """Closed thickness of the upper and lower lip in one column: each regains what
            opening thinned it by, but not past a typical closed lip (a scream's regain made a
            fat, swollen upper lip)."""
            gap = c[l, 1] - c[u, 1]
            t_up = min(c[u, 1] - c[uo, 1] + up_thin * gap, max(c[u, 1] - c[uo, 1], up_cap))
            t_lo = min(c[lo, 1] - c[l, 1] + lo_thin * gap, max(c[lo, 1] - c[l, 1], lo_cap))
            return t_up, t_lo

        # The upper lip's outer edge takes this share of the closure, the jaw the rest; eased
        # where the skin between nose and lip would stretch past PHILTRUM_MAX (a wide-open mouth
        # pulls the upper lip up, and its usual share made the lip long and swollen).
        up_share = (0.45 - up_thin) / (1.0 - up_thin - lo_thin)
        uo, u, l, lo = columns[lm.LIPS_UPPER_OUTER.index(lm.LIP_UPPER_OUTER_MID) - 1]
        mid_closure = c[lo, 1] - c[uo, 1] - sum(closed_lips(uo, u, l, lo))
        philtrum = c[uo, 1] - c[lm.SUBNASALE, 1]
        room = max(0.0, max(self.PHILTRUM_MAX[0] * philtrum, self.PHILTRUM_MAX[1] * iod) - philtrum)
        if up_share * mid_closure > room:
            up_share = room / mid_closure
        for uo, u, l, lo in columns:
            gap = c[l] - c[u]
            close[u] += 0.45 * gap
            close[l] -= 0.55 * gap
            if gap[1] <= 0:
                continue
            t_up, t_lo = closed_lips(uo, u, l, lo)
            up_move = up_share * (c[lo, 1] - c[uo, 1] - t_up - t_lo)
            meet = c[uo, 1] + up_move + t_up           # where the two inner contours meet
            close[uo, 1] += up_move
            close[u, 1] = meet - c[u, 1]
            close[l, 1] = meet - c[l, 1]
            close[lo, 1] -= (c[lo, 1] - meet) - t_lo
        # the jaw rises with the middle of the lower lip's outer edge (any more squeezes the
        # shadow under the lip into a dark tick); the skin beside the mouth takes that over a
        # height of at least twice the rise (over less it folds into a crease running out from
        # the mouth corners)
        lower_shift = close[lm.LIP_LOWER_OUTER_MID, 1]
        below = c[:, 1] > mouth_c[1]
        ramp = max(0.25 * iod, 2.0 * abs(lower_shift))
        lateral = np.exp(-((c[:, 0] - mouth_c[0]) / (1.1 * iod)) ** 2)
        jaw_region = _smoothstep((c[:, 1] - mouth_c[1]) / (0.25 * iod)) * lateral
        # the skin below and beside the lips goes along with them (beside a wide-open mouth the
        # lips' own move differs from the jaw's: skin pinned there folded into streaks of lip
        # texture); above the mouth it stays, or the nose stretches
        lips = upper | lower | set(lm.LIPS_UPPER_INNER + lm.LIPS_LOWER_INNER)
        outer_only = close.copy()   # the skin borders the outer contours, not the inner ones
        outer_only[list(lm.LIPS_UPPER_INNER + lm.LIPS_LOWER_INNER)] = 0
        spread = _spread_field(c, outer_only, 0.25 * iod, frozen=set(idx[~below]) - lips)
        for i in idx:
            if i not in lips and below[i]:
                jaw = lower_shift * _smoothstep((c[i, 1] - mouth_c[1]) / ramp) * lateral[i]
                close[i, 1] = min(spread[i, 1], jaw)   # whichever lifts it more
                close[i, 0] = spread[i, 0]
        self.closing = close
        # mouth_rest = 1 undoes the closing: the portrait's mouth exactly as photographed, the
        # rest pose for re-enacting the portrait's own video (whose first frame it is)
        basis["mouth_rest"] = -close

        # jaw_open = 1: about 0.45 IOD between the inner lips at the centre.
        b = basis["jaw_open"]
        for i in lower_i:
            b[i, 1] = 0.38 * iod * profile[i]
        for i in upper_i:
            b[i, 1] = -0.07 * iod * profile[i]
        for i in corners:
            b[i, 1] = 0.10 * iod
        for i in idx:
            if i not in upper and i not in lower and i not in corners and c[i, 1] > mouth_c[1]:
                b[i, 1] = 0.36 * iod * jaw_region[i]
                b[i, 2] = 0.05 * iod * jaw_region[i]
        # cheeks beside the mouth stretch a little
        for i in lm.RIGHT_CHEEK + lm.LEFT_CHEEK:
            if c[i, 1] > mouth_c[1] - 0.3 * iod:
                b[i, 1] = max(b[i, 1], 0.06 * iod)

        lip_pts = sorted(upper | lower | set(corners))
        b = basis["lip_spread"]
        for i in lip_pts:
            b[i, 0] = 0.12 * iod * np.clip(across[i], -1, 1)
        for i in lm.RIGHT_CHEEK + lm.LEFT_CHEEK:
            b[i, 0] = 0.04 * iod * np.sign(c[i, 0] - mouth_c[0])

        b = basis["lip_round"]
        for i in lip_pts:
            b[i, 0] = -0.32 * (c[i, 0] - mouth_c[0])
            b[i, 2] = -0.10 * iod
        for i in lm.LIPS_UPPER_OUTER[2:-2]:
            b[i, 1] = -0.03 * iod
        for i in lm.LIPS_LOWER_OUTER[2:-2]:
            b[i, 1] = 0.03 * iod
        for i in lm.LIPS_LOWER_INNER[2:-2]:
            b[i, 1] = 0.06 * iod * profile[i]

        b = basis["lip_press"]  # lips pressed together and thinned (bilabials, tension)
        for u, l in zip(lm.LIPS_UPPER_OUTER[1:-1], lm.LIPS_UPPER_INNER[1:-1]):
            b[u, 1] = 0.35 * (c[l, 1] - c[u, 1])
        for u, l in zip(lm.LIPS_LOWER_OUTER[1:-1], lm.LIPS_LOWER_INNER[1:-1]):
            b[u, 1] = 0.35 * (c[l, 1] - c[u, 1])
        for i in lm.LIPS_LOWER_INNER[1:-1]:
            b[i, 1] = -0.02 * iod

        b = basis["smile"]
        for i in lip_pts:
            w = np.clip(np.abs(across[i]), 0, 1) ** 1.5
            b[i, 0] = 0.07 * iod * np.sign(across[i]) * w
            b[i, 1] = -0.11 * iod * w
        for i in lm.RIGHT_CHEEK + lm.LEFT_CHEEK:
            b[i, 1] = -0.05 * iod
            b[i, 0] = 0.02 * iod * np.sign(c[i, 0] - mouth_c[0])
        for ring in (lm.RIGHT_LOWER_RING, lm.LEFT_LOWER_RING):
            for i in ring:
                b[i, 1] = -0.03 * iod
        for lower_lid in (lm.RIGHT_EYE_LOWER[2:-2], lm.LEFT_EYE_LOWER[2:-2]):
            for i in lower_lid:
                b[i, 1] = -0.025 * iod

        b = basis["mouth_frown"]  # corners down (sadness)
        for i in lip_pts:
            w = np.clip(np.abs(across[i]), 0, 1) ** 1.5
            b[i, 1] = 0.08 * iod * w
        for i in lm.LIPS_LOWER_OUTER[3:-3]:
            b[i, 1] = -0.02 * iod

        brow_y = c[list(lm.RIGHT_BROW + lm.LEFT_BROW), 1].mean()
        b = basis["brow_raise"]
        for i in lm.RIGHT_BROW + lm.LEFT_BROW:
            b[i, 1] = -0.12 * iod
        for ring, k in ((lm.RIGHT_LID_RING2 + lm.LEFT_LID_RING2, 0.06), (lm.RIGHT_LID_RING1 + lm.LEFT_LID_RING1, 0.025)):
            for i in ring:
                b[i, 1] = -k * iod
        forehead = (c[:, 1] < brow_y) & (np.abs(c[:, 0] - mouth_c[0]) < 1.3 * iod)
        for i in idx[forehead]:
            if i not in lm.RIGHT_BROW + lm.LEFT_BROW:
                b[i, 1] = -0.12 * iod * np.exp(-((brow_y - c[i, 1]) / (0.45 * iod)) ** 2)

        b = basis["brow_frown"]
        for inner, sign in ((lm.RIGHT_BROW_INNER, 1.0), (lm.LEFT_BROW_INNER, -1.0)):
            for i in inner:
                b[i, 1] = 0.07 * iod
                b[i, 0] = sign * 0.045 * iod
        for i in lm.RIGHT_BROW + lm.LEFT_BROW:
            if i not in lm.RIGHT_BROW_INNER + lm.LEFT_BROW_INNER:
                b[i, 1] = 0.03 * iod

        # inner brow raiser: the brows' inner ends go up (outer ends stay), and the middle of the
        # forehead above them with them; brow_raise + brow_frown could only fake the oblique brow
        b = basis["brow_inner"]
        inward = _smoothstep((0.75 * iod - np.abs(c[:, 0] - mouth_c[0])) / (0.5 * iod))
        for i in lm.RIGHT_BROW + lm.LEFT_BROW:
            b[i, 1] = -0.11 * iod * inward[i]
        for i in idx[forehead]:
            if i not in lm.RIGHT_BROW + lm.LEFT_BROW:
                b[i, 1] = -0.09 * iod * inward[i] * np.exp(-((brow_y - c[i, 1]) / (0.4 * iod)) ** 2)
        for i in lm.RIGHT_LID_RING2 + lm.LEFT_LID_RING2:
            b[i, 1] = -0.04 * iod * inward[i]

        for name, upper_lid, lower_lid, ring1, ring2 in (
            ("blink_right", lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER, lm.RIGHT_LID_RING1, lm.RIGHT_LID_RING2),
            ("blink_left", lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER, lm.LEFT_LID_RING1, lm.LEFT_LID_RING2),
        ):
            b = basis[name]
            gaps = []
            for u, l in zip(upper_lid[1:-1], lower_lid[1:-1]):
                gap = c[l] - c[u]
                gaps.append(gap)
                b[u] = 0.9 * gap   # the upper lid does most of the closing
                b[l] = -0.1 * gap
            mean_gap = np.mean(gaps, axis=0)
            for i in ring1[1:-1]:
                b[i] = 0.5 * mean_gap
            for i in ring2[1:-1]:
                b[i] = 0.15 * mean_gap
            wide = basis["eye_open"]
            for u, l in zip(upper_lid[1:-1], lower_lid[1:-1]):
                gap = c[l] - c[u]
                wide[u] = -0.25 * gap  # eye_open > 0 widens, < 0 squints
                wide[l] = 0.12 * gap
            for i in ring1[1:-1]:
                wide[i] = -0.12 * mean_gap

        # Lip shapes drag the skin around the mouth along (a moved corner with the cheek
        # beside it pinned folds the mesh: the "torn corner" under lip_round)
        eyes = set(lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
                   + lm.RIGHT_IRIS + lm.LEFT_IRIS)
        for name in ("lip_spread", "lip_round", "lip_press", "smile", "mouth_frown"):
            basis[name] = _spread_field(c, basis[name], 0.2 * iod, frozen=eyes)

        # gaze: the irises slide over the eyeball; unit = one radian of eye rotation
        eyeball_r = 0.19 * iod
        for iris in (lm.RIGHT_IRIS, lm.LEFT_IRIS):
            for i in iris:
                basis["gaze_yaw"][i, 0] = eyeball_r
                basis["gaze_pitch"][i, 1] = -eyeball_r
        # the lids follow the eye's pitch (the upper lid rides on the cornea): looking up lifts
        # them, looking down lowers them. With still lids an upward look of 20 degrees slid the
        # iris under the upper lid. Most in the middle of the lid, none at the corners.
        for upper_lid, lower_lid, ring1, ring2 in ((lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER, lm.RIGHT_LID_RING1, lm.RIGHT_LID_RING2),
                                                   (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER, lm.LEFT_LID_RING1, lm.LEFT_LID_RING2)):
            for ids, share in ((upper_lid, self.LID_FOLLOW[0]), (lower_lid, self.LID_FOLLOW[1]),
                               (ring1, 0.6 * self.LID_FOLLOW[0]), (ring2, 0.2 * self.LID_FOLLOW[0])):
                along = np.sin(np.pi * np.arange(len(ids)) / (len(ids) - 1))
                for i, w in zip(ids, along):
                    basis["gaze_pitch"][i, 1] = -share * eyeball_r * w
        # the rings inside the lips move with their lip, between its outer and inner contours
        for fld in list(basis.values()) + [self.closing]:
            _follow_lip_rings(fld)
        return np.stack([basis[name] for name in EXPRESSION_NAMES])

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
        face = self.canonical + self.closing + np.tensordot(weights, self.basis, axes=1)
        ring = self.ring_canonical + self.ring_closing + np.tensordot(weights, self.ring_basis, axes=1)
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
        ring_w[:, :2] = self._keep_inside(self._keep_ring_gaps(face_w[:, :2], ring_w[:, :2]))
        face_w[:, :2] = self._keep_inside(face_w[:, :2])
        border = self.source_xy[N_MESH + self.n_ring:]
        xy = np.concatenate([face_w[:, :2], ring_w[:, :2], border]).astype(np.float32)
        depth = np.concatenate([face_w[:, 2], ring_w[:, 2], self.rest_depth[N_MESH + self.n_ring:]]).astype(np.float32)
        lid_w = weights[self._lid_k]
        lids_open = None
        if np.any(lid_w != 0):
            rest = face - np.tensordot(lid_w, self.basis[self._lid_k], axes=1)
            lids_open = (rest[:, :2] @ rot[:2, :2].T + rest[:, 2:3] * rot[:2, 2]) * motion.scale + self.pivot[:2] + shift[:2]
            lids_open = lids_open.astype(np.float32)
        return Targets(xy=xy, depth=depth, lids_open=lids_open)
