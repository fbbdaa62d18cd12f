"""The rig's expression basis: one displacement field per Expression coefficient, each
built by its own function from the portrait's mesh in the head frame (x right, y down,
z back, pixels), plus the field that closes the portrait's own mouth.

Coefficients are in units of the inter-ocular distance (IOD) unless said otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.analysis import landmarks as lm

# jaw_open = 1: about 0.45 IOD between the inner lips at the centre
JAW_LOWER_LIP = 0.38          # the lower lip drops
JAW_UPPER_LIP = -0.07         # the upper lip rises a little
JAW_CORNERS = 0.10
JAW_CHIN = (0.36, 0.05)       # the jaw below the mouth: down, back
JAW_CHEEK = 0.06              # cheeks beside the mouth stretch a little (at least this)
JAW_CHEEK_ABOVE = 0.3         # ...from this far above the mouth down
JAW_REGION = (0.25, 1.1)      # the jaw's influence: ramp below the mouth, lateral Gaussian width
CORNER_SHARE = 0.25           # lip corners move this share of the middle (an oval opening)
LIP_WIDTH_PAD = 1.15          # the lip profile spans this much of the mouth's half width

SPREAD_LIPS, SPREAD_CHEEKS = 0.12, 0.04
ROUND_INWARD = 0.32           # share of each lip point's distance from the centre
ROUND_FORWARD = -0.10
ROUND_LIPS_OUT = 0.03         # outer contours away from each other
ROUND_LOWER_INNER = 0.06
PRESS_THINNING = 0.35         # share of each lip's thickness it loses pressed
PRESS_LOWER_INNER = -0.02
SMILE_CORNERS = (0.07, -0.11)   # out, up
SMILE_CHEEKS = (0.02, -0.05)
SMILE_LOWER_RINGS = -0.03       # the skin under the eyes rises
SMILE_LOWER_LIDS = -0.025
CORNER_WEIGHT_POWER = 1.5       # how the corners' share grows towards them (smile, frown)
FROWN_CORNERS = 0.08
FROWN_LOWER_LIP = -0.02
BROW_RAISE = 0.12
BROW_RAISE_LIDS = (0.025, 0.06)  # lid rings 1 and 2 go up with the brows
FOREHEAD_WIDTH = 1.3             # forehead points within this of the face's middle move
FOREHEAD_FADE = 0.45             # ...fading over this height above the brows
BROW_FROWN_INNER = (0.045, 0.07)  # inner brow ends: in (towards the middle), down
BROW_FROWN_OTHER = 0.03
BROW_INNER = (-0.11, -0.09, -0.04)   # brows, forehead, lid ring 2: up at the middle
BROW_INNER_FADE = 0.4
BROW_INNER_WIDTH = (0.75, 0.5)       # full effect within |x| < 0.25, none past 0.75
BLINK_SHARES = (0.9, -0.1)           # of the lid gap: upper lid down, lower lid up
BLINK_RINGS = (0.5, 0.15)            # of the mean lid gap: lid rings 1, 2 follow
WIDEN_SHARES = (-0.25, 0.12, -0.12)  # eye_open = 1: upper lid, lower lid, ring 1
EYEBALL_RADIUS = 0.19                # the iris moves this far per radian of gaze
LIP_SPREAD_SIGMA = 0.2               # the skin round the mouth follows lip shapes over this
SPREAD_SHAPES = ("lip_spread", "lip_round", "lip_press", "smile", "mouth_frown")


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def spread_field(c: np.ndarray, field: np.ndarray, sigma: float, frozen: set[int]) -> np.ndarray:
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


def follow_lip_rings(field: np.ndarray) -> None:
    """In place: each lip-ring point takes the blend of its outer and inner contour points'
    displacement (ring 2: 2/3 outer, ring 3: 1/3 outer)."""
    for outer, inner, r2, r3 in ((lm.LIPS_UPPER_OUTER, lm.LIPS_UPPER_INNER, lm.LIPS_UPPER_RING2, lm.LIPS_UPPER_RING3),
                                 (lm.LIPS_LOWER_OUTER, lm.LIPS_LOWER_INNER, lm.LIPS_LOWER_RING2, lm.LIPS_LOWER_RING3)):
        for k in range(1, len(outer) - 1):
            o, i = field[outer[k]], field[inner[k]]
            field[r2[k]] = (2 * o + i) / 3
            field[r3[k]] = (o + 2 * i) / 3


@dataclass(frozen=True, eq=False)
class Face:
    """The mesh in the head frame and the measurements every builder shares."""

    c: np.ndarray          # (478, 3) head-frame points
    iod: float
    mouth_c: np.ndarray    # the inner corners' midpoint
    across: np.ndarray     # (478,) x across the mouth: -1..1 corner to corner (beyond: outside)
    profile: np.ndarray    # (478,) how much of a lip's move a point takes (corners less)
    upper: frozenset       # upper lip points without the corners
    lower: frozenset
    corners: tuple[int, ...]
    brow_y: float

    @classmethod
    def of(cls, c: np.ndarray, iod: float) -> "Face":
        mouth_c = c[list(lm.INNER_CORNERS)].mean(axis=0)
        half_w = np.linalg.norm(c[lm.INNER_CORNERS[1]] - c[lm.INNER_CORNERS[0]]) / 2
        across = (c[:, 0] - mouth_c[0]) / (half_w * LIP_WIDTH_PAD)
        profile = CORNER_SHARE + (1 - CORNER_SHARE) * np.cos(np.clip(across, -1, 1) * np.pi / 2)
        corners = lm.MOUTH_CORNERS + lm.INNER_CORNERS
        upper = frozenset(lm.LIPS_UPPER_INNER + lm.LIPS_UPPER_OUTER) - set(corners)
        lower = frozenset(lm.LIPS_LOWER_INNER + lm.LIPS_LOWER_OUTER) - set(corners)
        brow_y = c[list(lm.RIGHT_BROW + lm.LEFT_BROW), 1].mean()
        return cls(c, iod, mouth_c, across, profile, upper, lower, corners, brow_y)

    @property
    def n(self) -> int:
        return len(self.c)

    def zeros(self) -> np.ndarray:
        return np.zeros((self.n, 3))

    @property
    def lip_points(self) -> list[int]:
        return sorted(self.upper | self.lower | set(self.corners))

    @property
    def below_mouth(self) -> np.ndarray:
        return self.c[:, 1] > self.mouth_c[1]

    def jaw_region(self) -> np.ndarray:
        """(478,) the jaw's weight: rising below the mouth, fading sideways."""
        ramp, width = JAW_REGION
        lateral = np.exp(-((self.c[:, 0] - self.mouth_c[0]) / (width * self.iod)) ** 2)
        return smoothstep((self.c[:, 1] - self.mouth_c[1]) / (ramp * self.iod)) * lateral

    def forehead(self) -> np.ndarray:
        """Point ids above the brows near the face's middle, the brows themselves excluded."""
        c = self.c
        mask = (c[:, 1] < self.brow_y) & (np.abs(c[:, 0] - self.mouth_c[0]) < FOREHEAD_WIDTH * self.iod)
        brows = set(lm.RIGHT_BROW + lm.LEFT_BROW)
        return np.array([i for i in np.flatnonzero(mask) if i not in brows], np.int64)


def jaw_open(f: Face) -> np.ndarray:
    b, c, iod = f.zeros(), f.c, f.iod
    for i in sorted(f.lower):
        b[i, 1] = JAW_LOWER_LIP * iod * f.profile[i]
    for i in sorted(f.upper):
        b[i, 1] = JAW_UPPER_LIP * iod * f.profile[i]
    for i in f.corners:
        b[i, 1] = JAW_CORNERS * iod
    jaw = f.jaw_region()
    for i in range(f.n):
        if i not in f.upper and i not in f.lower and i not in f.corners and c[i, 1] > f.mouth_c[1]:
            b[i, 1] = JAW_CHIN[0] * iod * jaw[i]
            b[i, 2] = JAW_CHIN[1] * iod * jaw[i]
    for i in lm.RIGHT_CHEEK + lm.LEFT_CHEEK:
        if c[i, 1] > f.mouth_c[1] - JAW_CHEEK_ABOVE * iod:
            b[i, 1] = max(b[i, 1], JAW_CHEEK * iod)
    return b


def lip_spread(f: Face) -> np.ndarray:
    b = f.zeros()
    for i in f.lip_points:
        b[i, 0] = SPREAD_LIPS * f.iod * np.clip(f.across[i], -1, 1)
    for i in lm.RIGHT_CHEEK + lm.LEFT_CHEEK:
        b[i, 0] = SPREAD_CHEEKS * f.iod * np.sign(f.c[i, 0] - f.mouth_c[0])
    return b


def lip_round(f: Face) -> np.ndarray:
    b, iod = f.zeros(), f.iod
    for i in f.lip_points:
        b[i, 0] = -ROUND_INWARD * (f.c[i, 0] - f.mouth_c[0])
        b[i, 2] = ROUND_FORWARD * iod
    for i in lm.LIPS_UPPER_OUTER[2:-2]:
        b[i, 1] = -ROUND_LIPS_OUT * iod
    for i in lm.LIPS_LOWER_OUTER[2:-2]:
        b[i, 1] = ROUND_LIPS_OUT * iod
    for i in lm.LIPS_LOWER_INNER[2:-2]:
        b[i, 1] = ROUND_LOWER_INNER * iod * f.profile[i]
    return b


def lip_press(f: Face) -> np.ndarray:
    """Lips pressed together and thinned (bilabials, tension)."""
    b, c = f.zeros(), f.c
    for u, l in zip(lm.LIPS_UPPER_OUTER[1:-1], lm.LIPS_UPPER_INNER[1:-1]):
        b[u, 1] = PRESS_THINNING * (c[l, 1] - c[u, 1])
    for u, l in zip(lm.LIPS_LOWER_OUTER[1:-1], lm.LIPS_LOWER_INNER[1:-1]):
        b[u, 1] = PRESS_THINNING * (c[l, 1] - c[u, 1])
    for i in lm.LIPS_LOWER_INNER[1:-1]:
        b[i, 1] = PRESS_LOWER_INNER * f.iod
    return b


def smile(f: Face) -> np.ndarray:
    b, c, iod = f.zeros(), f.c, f.iod
    for i in f.lip_points:
        w = np.clip(np.abs(f.across[i]), 0, 1) ** CORNER_WEIGHT_POWER
        b[i, 0] = SMILE_CORNERS[0] * iod * np.sign(f.across[i]) * w
        b[i, 1] = SMILE_CORNERS[1] * iod * w
    for i in lm.RIGHT_CHEEK + lm.LEFT_CHEEK:
        b[i, 1] = SMILE_CHEEKS[1] * iod
        b[i, 0] = SMILE_CHEEKS[0] * iod * np.sign(c[i, 0] - f.mouth_c[0])
    for ring in (lm.RIGHT_LOWER_RING, lm.LEFT_LOWER_RING):
        for i in ring:
            b[i, 1] = SMILE_LOWER_RINGS * iod
    for lower_lid in (lm.RIGHT_EYE_LOWER[2:-2], lm.LEFT_EYE_LOWER[2:-2]):
        for i in lower_lid:
            b[i, 1] = SMILE_LOWER_LIDS * iod
    return b


def mouth_frown(f: Face) -> np.ndarray:
    """Corners down (sadness)."""
    b = f.zeros()
    for i in f.lip_points:
        w = np.clip(np.abs(f.across[i]), 0, 1) ** CORNER_WEIGHT_POWER
        b[i, 1] = FROWN_CORNERS * f.iod * w
    for i in lm.LIPS_LOWER_OUTER[3:-3]:
        b[i, 1] = FROWN_LOWER_LIP * f.iod
    return b


def brow_raise(f: Face) -> np.ndarray:
    b, c, iod = f.zeros(), f.c, f.iod
    for i in lm.RIGHT_BROW + lm.LEFT_BROW:
        b[i, 1] = -BROW_RAISE * iod
    for ring, k in ((lm.RIGHT_LID_RING2 + lm.LEFT_LID_RING2, BROW_RAISE_LIDS[1]),
                    (lm.RIGHT_LID_RING1 + lm.LEFT_LID_RING1, BROW_RAISE_LIDS[0])):
        for i in ring:
            b[i, 1] = -k * iod
    for i in f.forehead():
        b[i, 1] = -BROW_RAISE * iod * np.exp(-((f.brow_y - c[i, 1]) / (FOREHEAD_FADE * iod)) ** 2)
    return b


def brow_frown(f: Face) -> np.ndarray:
    b, iod = f.zeros(), f.iod
    for inner, sign in ((lm.RIGHT_BROW_INNER, 1.0), (lm.LEFT_BROW_INNER, -1.0)):
        for i in inner:
            b[i, 1] = BROW_FROWN_INNER[1] * iod
            b[i, 0] = sign * BROW_FROWN_INNER[0] * iod
    for i in lm.RIGHT_BROW + lm.LEFT_BROW:
        if i not in lm.RIGHT_BROW_INNER + lm.LEFT_BROW_INNER:
            b[i, 1] = BROW_FROWN_OTHER * iod
    return b


def brow_inner(f: Face) -> np.ndarray:
    """Inner brow raiser: the brows' inner ends go up (outer ends stay), and the middle of the
    forehead above them with them; brow_raise + brow_frown could only fake the oblique brow."""
    b, c, iod = f.zeros(), f.c, f.iod
    reach, fade = BROW_INNER_WIDTH
    inward = smoothstep((reach * iod - np.abs(c[:, 0] - f.mouth_c[0])) / (fade * iod))
    brows, forehead, lids = BROW_INNER
    for i in lm.RIGHT_BROW + lm.LEFT_BROW:
        b[i, 1] = brows * iod * inward[i]
    for i in f.forehead():
        b[i, 1] = forehead * iod * inward[i] * np.exp(-((f.brow_y - c[i, 1]) / (BROW_INNER_FADE * iod)) ** 2)
    for i in lm.RIGHT_LID_RING2 + lm.LEFT_LID_RING2:
        b[i, 1] = lids * iod * inward[i]
    return b


_EYE_SIDES = {  # upper lid, lower lid, lid ring 1, lid ring 2
    "right": (lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER, lm.RIGHT_LID_RING1, lm.RIGHT_LID_RING2),
    "left": (lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER, lm.LEFT_LID_RING1, lm.LEFT_LID_RING2),
}


def _lid_gaps(f: Face, side: str) -> list[tuple[int, int, np.ndarray]]:
    """(upper point, lower point, lower - upper) along one eye's lids, corners excluded."""
    upper_lid, lower_lid = _EYE_SIDES[side][:2]
    return [(u, l, f.c[l] - f.c[u]) for u, l in zip(upper_lid[1:-1], lower_lid[1:-1])]


def blink(f: Face, side: str) -> np.ndarray:
    b = f.zeros()
    gaps = _lid_gaps(f, side)
    for u, l, gap in gaps:
        b[u] = BLINK_SHARES[0] * gap   # the upper lid does most of the closing
        b[l] = BLINK_SHARES[1] * gap
    mean_gap = np.mean([g for _, _, g in gaps], axis=0)
    ring1, ring2 = _EYE_SIDES[side][2:]
    for i in ring1[1:-1]:
        b[i] = BLINK_RINGS[0] * mean_gap
    for i in ring2[1:-1]:
        b[i] = BLINK_RINGS[1] * mean_gap
    return b


def eye_open(f: Face) -> np.ndarray:
    """> 0 widens, < 0 squints."""
    b = f.zeros()
    for side in ("right", "left"):
        gaps = _lid_gaps(f, side)
        for u, l, gap in gaps:
            b[u] = WIDEN_SHARES[0] * gap
            b[l] = WIDEN_SHARES[1] * gap
        mean_gap = np.mean([g for _, _, g in gaps], axis=0)
        for i in _EYE_SIDES[side][2][1:-1]:
            b[i] = WIDEN_SHARES[2] * mean_gap
    return b


def gaze_yaw(f: Face) -> np.ndarray:
    """The irises slide over the eyeball; unit = one radian of eye rotation."""
    b = f.zeros()
    for i in lm.RIGHT_IRIS + lm.LEFT_IRIS:
        b[i, 0] = EYEBALL_RADIUS * f.iod
    return b


def gaze_pitch(f: Face, lid_follow: tuple[float, float]) -> np.ndarray:
    """The irises, and the lids following the eye's pitch (the upper lid rides on the
    cornea): looking up lifts them, looking down lowers them. With still lids an upward look
    of 20 degrees slid the iris under the upper lid. Most in the middle of the lid, none at
    the corners."""
    b = f.zeros()
    eyeball_r = EYEBALL_RADIUS * f.iod
    for i in lm.RIGHT_IRIS + lm.LEFT_IRIS:
        b[i, 1] = -eyeball_r
    for upper_lid, lower_lid, ring1, ring2 in _EYE_SIDES.values():
        for ids, share in ((upper_lid, lid_follow[0]), (lower_lid, lid_follow[1]),
                           (ring1, 0.6 * lid_follow[0]), (ring2, 0.2 * lid_follow[0])):
            along = np.sin(np.pi * np.arange(len(ids)) / (len(ids) - 1))
            for i, w in zip(ids, along):
                b[i, 1] = -share * eyeball_r * w
    return b


INNER_LIP_CLOSURE = (0.45, 0.55)   # shares of the inner-lip gap the upper and lower inner lips close
JAW_RAMP = (0.25, 2.0)        # the skin beside a closing jaw takes the rise over max(IOD share, rise factor)
CLOSING_SPREAD = 0.25         # IOD: the skin below the lips follows their outer contours over this


@dataclass(frozen=True)
class LipLimits:
    """How a photographed open mouth closes (see FaceRig's LIP_THINNING, CLOSED_LIP_MAX,
    PHILTRUM_MAX)."""

    thinning: tuple[float, float]
    closed_max: tuple[float, float]
    philtrum_max: tuple[float, float]


def _closed_lips(f: Face, limits: LipLimits, column: tuple[int, int, int, int]) -> tuple[float, float]:
    """Closed thickness of the upper and lower lip in one column: each regains what opening
    thinned it by, but not past a typical closed lip (a scream's regain made a fat, swollen
    upper lip)."""
    c = f.c
    uo, u, l, lo = column
    up_thin, lo_thin = limits.thinning
    up_cap, lo_cap = (k * f.iod for k in limits.closed_max)
    gap = c[l, 1] - c[u, 1]
    t_up = min(c[u, 1] - c[uo, 1] + up_thin * gap, max(c[u, 1] - c[uo, 1], up_cap))
    t_lo = min(c[lo, 1] - c[l, 1] + lo_thin * gap, max(c[lo, 1] - c[l, 1], lo_cap))
    return t_up, t_lo


def _upper_share(f: Face, limits: LipLimits, columns: list[tuple[int, int, int, int]]) -> float:
    """The share of the closure the upper lip's outer edge takes (the jaw the rest), eased
    where the skin between nose and lip would stretch past PHILTRUM_MAX (a wide-open mouth
    pulls the upper lip up, and its usual share made the lip long and swollen)."""
    c = f.c
    up_thin, lo_thin = limits.thinning
    up_share = (INNER_LIP_CLOSURE[0] - up_thin) / (1.0 - up_thin - lo_thin)
    uo, u, l, lo = column = columns[lm.LIPS_UPPER_OUTER.index(lm.LIP_UPPER_OUTER_MID) - 1]
    mid_closure = c[lo, 1] - c[uo, 1] - sum(_closed_lips(f, limits, column))
    philtrum = c[uo, 1] - c[lm.SUBNASALE, 1]
    factor, typical = limits.philtrum_max
    room = max(0.0, max(factor * philtrum, typical * f.iod) - philtrum)
    if up_share * mid_closure > room:
        up_share = room / mid_closure
    return up_share


def _close_lips(f: Face, limits: LipLimits) -> np.ndarray:
    """The lips' part of the closing. Each lip moves column by column, its outer contour with
    its inner one less the thickness the lip regains as it closes. (Moving the outer lips by
    the mean gap stretched a wide-open lower lip in the middle, where the gap is largest, into
    a fat tongue-like blob; by the full inner move, the closed lips came out too thin.)"""
    c = f.c
    close = f.zeros()
    columns = list(zip(lm.LIPS_UPPER_OUTER[1:-1], lm.LIPS_UPPER_INNER[1:-1],
                       lm.LIPS_LOWER_INNER[1:-1], lm.LIPS_LOWER_OUTER[1:-1]))
    up_share = _upper_share(f, limits, columns)
    for uo, u, l, lo in columns:
        gap = c[l] - c[u]
        close[u] += INNER_LIP_CLOSURE[0] * gap
        close[l] -= INNER_LIP_CLOSURE[1] * gap
        if gap[1] <= 0:
            continue
        t_up, t_lo = _closed_lips(f, limits, (uo, u, l, lo))
        up_move = up_share * (c[lo, 1] - c[uo, 1] - t_up - t_lo)
        meet = c[uo, 1] + up_move + t_up           # where the two inner contours meet
        close[uo, 1] += up_move
        close[u, 1] = meet - c[u, 1]
        close[l, 1] = meet - c[l, 1]
        close[lo, 1] -= (c[lo, 1] - meet) - t_lo
    return close


def closing_field(f: Face, limits: LipLimits) -> np.ndarray:
    """Close the portrait's own mouth: neutral is lips together, whatever the photo shows.
    The jaw rises with the middle of the lower lip's outer edge (any more squeezes the shadow
    under the lip into a dark tick); the skin beside the mouth takes that over a height of at
    least twice the rise (over less it folds into a crease running out from the corners)."""
    c, iod = f.c, f.iod
    close = _close_lips(f, limits)
    lower_shift = close[lm.LIP_LOWER_OUTER_MID, 1]
    below = f.below_mouth
    ramp = max(JAW_RAMP[0] * iod, JAW_RAMP[1] * abs(lower_shift))
    lateral = np.exp(-((c[:, 0] - f.mouth_c[0]) / (JAW_REGION[1] * iod)) ** 2)
    # the skin below and beside the lips goes along with them (beside a wide-open mouth the
    # lips' own move differs from the jaw's: skin pinned there folded into streaks of lip
    # texture); above the mouth it stays, or the nose stretches
    lips = f.upper | f.lower | set(lm.LIPS_UPPER_INNER + lm.LIPS_LOWER_INNER)
    outer_only = close.copy()   # the skin borders the outer contours, not the inner ones
    outer_only[list(lm.LIPS_UPPER_INNER + lm.LIPS_LOWER_INNER)] = 0
    spread = spread_field(c, outer_only, CLOSING_SPREAD * iod, frozen=set(np.flatnonzero(~below)) - lips)
    for i in range(f.n):
        if i not in lips and below[i]:
            jaw = lower_shift * smoothstep((c[i, 1] - f.mouth_c[1]) / ramp) * lateral[i]
            close[i, 1] = min(spread[i, 1], jaw)   # whichever lifts it more
            close[i, 0] = spread[i, 0]
    follow_lip_rings(close)
    return close


def expression_basis(f: Face, closing: np.ndarray, lid_follow: tuple[float, float],
                     names: tuple[str, ...]) -> np.ndarray:
    """(K, 478, 3) one field per name, in the head frame. mouth_rest = 1 undoes the closing:
    the portrait's mouth exactly as photographed, the rest pose for re-enacting the
    portrait's own video (whose first frame it is)."""
    fields = {
        "jaw_open": jaw_open(f), "mouth_rest": -closing, "lip_spread": lip_spread(f), "lip_round": lip_round(f),
        "lip_press": lip_press(f), "smile": smile(f), "mouth_frown": mouth_frown(f), "brow_raise": brow_raise(f),
        "brow_frown": brow_frown(f), "brow_inner": brow_inner(f), "blink_left": blink(f, "left"),
        "blink_right": blink(f, "right"), "eye_open": eye_open(f), "gaze_yaw": gaze_yaw(f),
        "gaze_pitch": gaze_pitch(f, lid_follow),
    }
    # Lip shapes drag the skin around the mouth along (a moved corner with the cheek beside it
    # pinned folds the mesh: the "torn corner" under lip_round)
    eyes = set(lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
               + lm.RIGHT_IRIS + lm.LEFT_IRIS)
    for name in SPREAD_SHAPES:
        fields[name] = spread_field(f.c, fields[name], LIP_SPREAD_SIGMA * f.iod, frozen=eyes)
    # the rings inside the lips move with their lip, between its outer and inner contours
    for field in fields.values():
        follow_lip_rings(field)
    return np.stack([fields[name] for name in names])
