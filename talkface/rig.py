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

from . import landmarks as lm
from .motion import Expression, MotionFrame
from .portrait import Portrait

N_MESH = 478
EXPRESSION_NAMES = tuple(f.name for f in fields(Expression))


@dataclass(frozen=True)
class Targets:
    """Where every control point goes in one output frame."""

    xy: np.ndarray     # (N, 2) float32 target pixel positions
    depth: np.ndarray  # (N,) float32, larger is farther from the camera (draw order)


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


class FaceRig:
    """Built once per portrait; `targets(motion)` is called once per frame."""

    RING_FACTORS = (1.3, 1.75, 2.4)
    RING_FOLLOW = (1.0, 0.6, 0.2)

    def __init__(self, portrait: Portrait) -> None:
        size = portrait.size
        pts = _smooth_depth(portrait.points.astype(np.float64))
        self.size = size
        self.iod = lm.interocular(pts)
        self.rest_rotation = lm.head_rotation(pts)
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
        # ring points borrow a share of the nearby face's expression (the jaw pulls the neck)
        self.ring_basis = np.einsum("rn,knc->krc", ring_weights, self.basis)
        self.rest_depth = np.concatenate([pts[:, 2], ring_z, np.full(len(border), pts[:, 2].max() + 100)])

    # ---------------------------------------------------------------- control points
    def _build_ring(self, portrait: Portrait, pts: np.ndarray, oval: np.ndarray):
        import cv2

        centre = oval[:, :2].mean(axis=0)
        mask = cv2.GaussianBlur(portrait.person_mask, (0, 0), 6)
        xy, z, follow, weights = [], [], [], []
        chin_y = pts[lm.CHIN, 1]
        for factor, base_follow in zip(self.RING_FACTORS, self.RING_FOLLOW):
            for i in range(0, len(lm.FACE_OVAL), 2):
                p = oval[i]
                q = centre + (p[:2] - centre) * factor
                if not (-0.1 * self.size <= q[0] <= 1.1 * self.size and -0.1 * self.size <= q[1] <= 1.1 * self.size):
                    continue
                qi = np.clip(np.round(q).astype(int), 0, self.size - 1)
                on_person = float(mask[qi[1], qi[0]])
                w = base_follow * _smoothstep((on_person - 0.2) / 0.6)
                if q[1] > chin_y:  # below the chin: neck and shoulders belong to the body more than the head
                    w *= 0.5
                xy.append(q)
                z.append(p[2])
                follow.append(w)
                row = np.zeros(N_MESH)
                row[lm.FACE_OVAL[i]] = 0.6 * (factor == self.RING_FACTORS[0]) * w
                weights.append(row)
        return np.array(xy), np.array(z), np.array(follow), np.array(weights)

    @staticmethod
    def _border_points(size: int, per_side: int = 8) -> np.ndarray:
        t = np.linspace(0, size - 1, per_side + 1)
        e = np.full_like(t, size - 1.0)
        z = np.zeros_like(t)
        pts = np.concatenate([np.stack([t, z], 1), np.stack([t, e], 1), np.stack([z, t], 1), np.stack([e, t], 1)])
        # one margin outside the frame too, so edge triangles are never degenerate
        return np.unique(np.round(pts, 3), axis=0)

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
        close = np.zeros((n, 3))
        for u, l in zip(lm.LIPS_UPPER_INNER[1:-1], lm.LIPS_LOWER_INNER[1:-1]):
            gap = c[l] - c[u]
            close[u] += 0.45 * gap
            close[l] -= 0.55 * gap
        # carry the outer lips and jaw along with the inner lips
        lower_shift = -0.55 * np.mean([c[l, 1] - c[u, 1] for u, l in zip(lm.LIPS_UPPER_INNER[1:-1], lm.LIPS_LOWER_INNER[1:-1])])
        upper_shift = 0.45 * np.mean([c[l, 1] - c[u, 1] for u, l in zip(lm.LIPS_UPPER_INNER[1:-1], lm.LIPS_LOWER_INNER[1:-1])])
        below = c[:, 1] > mouth_c[1]
        jaw_region = _smoothstep((c[:, 1] - mouth_c[1]) / (0.25 * iod)) * np.exp(-((c[:, 0] - mouth_c[0]) / (1.1 * iod)) ** 2)
        for i in idx:
            if i in lm.LIPS_LOWER_INNER[1:-1] or i in lm.LIPS_UPPER_INNER[1:-1]:
                continue
            if i in lower:
                close[i, 1] += lower_shift * profile[i]
            elif i in upper:
                close[i, 1] += upper_shift * profile[i]
            elif below[i]:
                close[i, 1] += lower_shift * jaw_region[i]
        self.closing = close

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
        eye_y = c[list(lm.RIGHT_EYE_UPPER + lm.LEFT_EYE_UPPER), 1].mean()
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

        # gaze: the irises slide over the eyeball; unit = one radian of eye rotation
        eyeball_r = 0.19 * iod
        for iris in (lm.RIGHT_IRIS, lm.LEFT_IRIS):
            for i in iris:
                basis["gaze_yaw"][i, 0] = eyeball_r
                basis["gaze_pitch"][i, 1] = -eyeball_r
        return np.stack([basis[name] for name in EXPRESSION_NAMES])

    def rest_gaze_deg(self) -> tuple[float, float]:
        """The portrait's own gaze (yaw, pitch) in degrees, from where the irises sit between
        the eye corners: what `--gaze camera` cancels."""
        eyeball_r = 0.19 * self.iod
        offsets = []
        for iris, (a, b), upper, lower in ((lm.RIGHT_IRIS, (33, 133), lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
                                           (lm.LEFT_IRIS, (263, 362), lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)):
            c = self.canonical
            centre_x = (c[a, 0] + c[b, 0]) / 2
            centre_y = (c[list(upper[1:-1]), 1].mean() + c[list(lower[1:-1]), 1].mean()) / 2
            offsets.append((c[iris[0], 0] - centre_x, c[iris[0], 1] - centre_y))
        dx, dy = np.mean(offsets, axis=0)
        yaw = np.degrees(np.arcsin(np.clip(dx / eyeball_r, -1, 1)))
        pitch = np.degrees(np.arcsin(np.clip(-dy / eyeball_r, -1, 1)))
        return float(yaw), float(pitch)

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
        ring = self.ring_canonical + np.tensordot(weights, self.ring_basis, axes=1)
        delta = lm.rotation_matrix(motion.yaw, motion.pitch, motion.roll)
        rot = delta @ self.rest_rotation
        shift = np.array([motion.tx * self.size, motion.ty * self.size, 0.0])
        face_w = face @ rot.T * motion.scale + self.pivot + shift
        ring_moved = ring @ rot.T * motion.scale + self.pivot + shift
        ring_rest = self.ring_canonical @ self.rest_rotation.T + self.pivot
        f = self.ring_follow[:, None]
        ring_w = f * ring_moved + (1 - f) * ring_rest
        border = self.source_xy[N_MESH + self.n_ring:]
        xy = np.concatenate([face_w[:, :2], ring_w[:, :2], border]).astype(np.float32)
        depth = np.concatenate([face_w[:, 2], ring_w[:, 2], self.rest_depth[N_MESH + self.n_ring:]]).astype(np.float32)
        return Targets(xy=xy, depth=depth)
