"""The renderer, measured on what it draws: mouth, eyes, head turns, border, holes."""
import numpy as np
import pytest

from talkface.analysis import landmarks as lm
from talkface.motion.generator import Expression, MotionFrame
from talkface.analysis.portrait import mesh_points
from talkface.render.warp import KIND_MOUTH, KIND_SKIN, affine_from_triangles, triangle_areas

INNER_MOUTH = lm.LIPS_UPPER_INNER + tuple(reversed(lm.LIPS_LOWER_INNER[1:-1]))


def render(face, motion):
    return face.renderer.render(face.rig.targets(motion))


def lum(img):
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


@pytest.fixture(scope="module")
def skin_lum(face):
    mask = lm.face_oval_mask(face.portrait.points, face.portrait.size) > 0.5
    return float(np.median(lum(face.portrait.image)[mask]))


def test_closed_mouth_has_no_mouth_pixels(face, skin_lum):
    targets = face.rig.targets(MotionFrame())
    mesh = face.renderer.mesh
    mouth = mesh.kinds == KIND_MOUTH
    area = np.abs(triangle_areas(targets.xy.astype(np.float64)[mesh.triangles[mouth]])).sum()
    assert area < 0.002 * face.rig.iod ** 2, "neutral is lips together"
    img = render(face, MotionFrame())
    poly = targets.xy[list(INNER_MOUTH)]
    x0, x1 = poly[:, 0].min(), poly[:, 0].max()
    x0, x1 = int(x0 + 0.2 * (x1 - x0)), int(x1 - 0.2 * (x1 - x0))   # the middle: a smile's corners are dark
    y0, y1 = int(poly[:, 1].min()) - 3, int(np.ceil(poly[:, 1].max())) + 3
    dark = lum(img[y0:y1, x0:x1]) < 0.35 * skin_lum
    assert dark.sum() < 3, "no dark seam between closed lips"


def test_open_jaw_shows_dark_cavity_and_teeth(face, skin_lum):
    motion = MotionFrame(expression=Expression(jaw_open=0.8))
    img = render(face, motion)
    targets = face.rig.targets(motion)
    inside = lm.polygon_mask(targets.xy[list(INNER_MOUTH)], face.portrait.size) > 0.99
    assert inside.sum() > 0.05 * face.rig.iod ** 2
    l = lum(img)[inside]
    sat = np.ptp(img[inside].astype(np.float32), axis=1)
    assert (l < 0.45 * skin_lum).mean() > 0.25, "a dark opening"
    assert ((l > 0.8 * skin_lum) & (sat < 90)).sum() > 15, "teeth-bright pixels"


def _aperture(img):
    pts = mesh_points(img)
    assert pts is not None
    return (lm.eye_aperture(pts, "right") + lm.eye_aperture(pts, "left")) / 2, pts


def test_blink_closes_the_eyes(face):
    open_ap, _ = _aperture(render(face, MotionFrame()))
    closed_ap, _ = _aperture(render(face, MotionFrame(expression=Expression(blink_left=1.0, blink_right=1.0))))
    assert closed_ap < 0.5 * open_ap, (open_ap, closed_ap)


def test_gaze_moves_the_iris(face):
    _, rest = _aperture(render(face, MotionFrame()))
    _, right = _aperture(render(face, MotionFrame(expression=Expression(gaze_yaw=20.0))))
    _, left = _aperture(render(face, MotionFrame(expression=Expression(gaze_yaw=-20.0))))
    iod = lm.interocular(rest)

    def iris_x(p):
        return (p[468, 0] + p[473, 0]) / 2

    assert iris_x(right) - iris_x(rest) > 0.03 * iod
    assert iris_x(rest) - iris_x(left) > 0.03 * iod


def test_eyes_at_rest_redraw_as_the_photo(face):
    """With the gaze and lids at rest, the redrawn eyeball and iris land on the photo's own
    eye (no extra lid shadow, no ring where the iris layer meets the filled sclera)."""
    import cv2

    out = render(face, MotionFrame())
    p = face.portrait
    diff = np.abs(out.astype(np.float32) - p.image.astype(np.float32)).mean(axis=2)
    for ids in (lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER, lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER):
        hull = np.zeros((p.size, p.size), np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(p.points[list(ids), :2]).astype(np.int32)), 1)
        # (7.8 and 8.1 grey levels before the eyeball's shadow was kept off the photo's own pixels)
        assert diff[hull.astype(bool)].mean() < 6.0


def test_yaw_moves_the_nose(face):
    _, rest = _aperture(render(face, MotionFrame()))
    _, turned = _aperture(render(face, MotionFrame(yaw=20.0)))
    assert turned[lm.NOSE_TIP, 0] - rest[lm.NOSE_TIP, 0] > 0.1 * lm.interocular(rest)


@pytest.mark.parametrize("motion", [MotionFrame(yaw=25, pitch=15, roll=15, expression=Expression(jaw_open=1.0)),
                                    MotionFrame(yaw=-25, pitch=-15, roll=-15, tx=0.03, scale=1.05)])
def test_border_pixels_unchanged(face, motion):
    img = render(face, motion).astype(int)
    src = face.portrait.image.astype(int)
    for a, b in ((img[:2], src[:2]), (img[-2:], src[-2:]), (img[:, :2], src[:, :2]), (img[:, -2:], src[:, -2:])):
        assert np.abs(a - b).max() <= 2


def test_the_matte_is_exact_at_rest(face):
    """Person over plate reproduces the photo wherever the face's own layers do not draw."""
    p = face.portrait
    out = render(face, MotionFrame(expression=Expression(mouth_rest=1.0))).astype(int)
    outside = lm.face_oval_mask(p.points, p.size) == 0
    assert np.abs(out - p.image.astype(int))[outside].max() == 0


@pytest.mark.parametrize("motion", [MotionFrame(yaw=20, roll=10), MotionFrame(yaw=-20, pitch=10, roll=-10)])
def test_background_beside_the_head_stays_put(face, motion):
    """Background pixels clear of the person are the photo's own on a turned head: the person
    moves over a still plate instead of dragging the background with it."""
    import cv2

    p = face.portrait
    person = ((p.person_mask >= 0.02) | (lm.face_oval_mask(p.points, p.size) > 0)).astype(np.uint8)
    clear = cv2.distanceTransform(1 - person, cv2.DIST_L2, 3) > 0.1 * p.size
    assert clear.mean() > 0.1       # the built-in portrait has plenty of background
    out = render(face, motion)
    assert np.array_equal(out[clear], p.image[clear])


def test_extreme_pose_has_no_holes(face):
    """Every pixel is warped through some triangle: folds and closed openings leave only
    slivers no triangle reaches, and those take a neighbour's warp; the map stays inside
    the picture."""
    mesh = face.renderer.mesh
    n, size = len(mesh.triangles), face.portrait.size
    for motion in (MotionFrame(yaw=25, roll=15, expression=Expression(lip_round=1.0, jaw_open=0.4)),
                   MotionFrame(yaw=-25, pitch=15, expression=Expression(smile=1.0, blink_left=1.0))):
        targets = face.rig.targets(motion)
        raw = mesh.triangle_ids(targets, fill_holes=False)
        assert (raw == n).sum() < 0.01 * size * size, "folds and closed openings leave slivers only"
        warp = mesh.warp(targets)
        assert warp.ids.max() < n, "no pixel left without a triangle"
        skin = mesh.kind_of_id[warp.ids] == KIND_SKIN   # (the mouth and eye layers draw over the rest)
        for m in (warp.map_x[skin], warp.map_y[skin]):
            assert np.isfinite(m).all() and m.min() > -1.0 and m.max() < size, "samples inside the picture"


def test_render_is_deterministic(face):
    motion = MotionFrame(yaw=6, pitch=-3, roll=2, expression=Expression(jaw_open=0.5, smile=0.3, blink_left=0.4))
    first = render(face, motion)
    assert np.array_equal(first, render(face, motion))
    assert np.array_equal(first, render(face, motion))


def test_full_framing_pastes_the_head_back_seamlessly(face):
    """--framing full: the source picture's size, untouched away from the head, no seam at the
    crop's edge (the rest pose pasted back is the source except where the lips close)."""
    from dataclasses import replace

    from talkface.engine import Frame
    from talkface.render.framing import full_frame

    portrait = face.portrait
    # a wider picture than the crop: the astronaut with a margin of mirrored picture around it
    import cv2

    source = cv2.copyMakeBorder(portrait.source, 60, 60, 90, 90, cv2.BORDER_REFLECT)
    x0, y0, side = portrait.crop_box
    wide = replace(portrait, source=source, crop_box=(x0 + 90, y0 + 60, side))
    frames = [Frame(i, i / 25, render(face, m), m) for i, m in enumerate([MotionFrame(), MotionFrame(yaw=10, pitch=5)])]
    out = [f.image for f in full_frame(wide, frames)]
    assert out[0].shape == source.shape and out[0].dtype == np.uint8
    diff = np.abs(out[0].astype(int) - source.astype(int)).max(axis=-1)
    assert diff[:50].max() == 0 and diff[:, :80].max() == 0, "outside the crop the picture is untouched"
    # away from the face (whose rest pose closes the portrait's lips and moves the jaw) and
    # across the crop's edge, the pasted frame is the picture itself
    face_area = np.zeros(diff.shape, np.uint8)
    oval = portrait.points[list(lm.FACE_OVAL), :2] + [90, 60]
    cv2.fillPoly(face_area, [np.round(oval).astype(np.int32)], 1)
    face_area = cv2.dilate(face_area, np.ones((41, 41), np.uint8)).astype(bool)
    assert np.percentile(diff[~face_area], 99.5) <= 6
    moved = np.abs(out[1].astype(int) - out[0].astype(int)).max(axis=-1)
    assert moved.max() > 30


def test_triangle_affines_map_vertices_exactly():
    rng = np.random.default_rng(0)
    dst, src = rng.random((200, 3, 2)) * 500, rng.random((200, 3, 2)) * 500
    coef = affine_from_triangles(dst, src).reshape(-1, 2, 3)
    mapped = np.einsum("nij,nvj->nvi", coef, np.concatenate([dst, np.ones((200, 3, 1))], axis=2))
    np.testing.assert_allclose(mapped, src, atol=0.02)
    flat = np.zeros((1, 3, 2))  # a degenerate triangle falls back to identity
    assert np.allclose(affine_from_triangles(flat, flat), [1, 0, 0, 0, 1, 0])


def test_closing_a_screaming_mouth_keeps_lips_and_philtrum_natural():
    """A wide-open mouth closes mostly with the jaw: the upper lip stays a typical closed
    lip, and the skin between nose and lip stretches only to a typical length."""
    from conftest import shared_path
    from talkface.analysis.portrait import Portrait
    from talkface.face.rig import FaceRig

    rig = FaceRig(Portrait.from_file(shared_path("images", "hard_open_mouth_scream_01.jpg")))
    closed = rig.canonical + rig.closing
    iod = rig.iod
    upper = closed[lm.LIP_UPPER_MID, 1] - closed[lm.LIP_UPPER_OUTER_MID, 1]
    lower = closed[lm.LIP_LOWER_OUTER_MID, 1] - closed[lm.LIP_LOWER_MID, 1]
    philtrum = closed[lm.LIP_UPPER_OUTER_MID, 1] - closed[lm.SUBNASALE, 1]
    gap = closed[lm.LIP_LOWER_MID, 1] - closed[lm.LIP_UPPER_MID, 1]
    assert abs(gap) < 0.01 * iod
    assert 0.04 * iod < upper <= rig.CLOSED_LIP_MAX[0] * iod + 1e-6
    assert 0.06 * iod < lower <= rig.CLOSED_LIP_MAX[1] * iod + 1e-6
    assert philtrum <= rig.PHILTRUM_MAX[1] * iod + 1e-6


def test_turning_a_portrait_past_the_limit_never_turns_it_back():
    """A portrait already past the turn limit gets a small further turn, never a jump back
    (a sign error there turned a 59 degree profile 16 degrees back for a 3 degree command)."""
    from talkface.face.rig import FaceRig

    for rest in (40.0, 59.0, -59.0):
        for delta in (1.0, 3.0, 20.0):
            d = delta if rest > 0 else -delta
            eased = FaceRig._limited(d, rest, 18.0, 34.0)
            assert 0.0 <= eased / d <= 1.0
            assert abs(eased) <= 2.0 + 1e-9
        assert FaceRig._limited(-5.0 if rest > 0 else 5.0, rest, 18.0, 34.0) == (-5.0 if rest > 0 else 5.0)


def test_near_profile_portrait_turns_without_tearing():
    """Small head motions of a near-profile portrait (59 degrees) change little of the frame:
    its hidden side must not be stretched into view."""
    from conftest import shared_path
    from talkface.analysis.portrait import Portrait
    from talkface.render.renderer import Renderer, render_motion
    from talkface.face.rig import FaceRig

    p = Portrait.from_file(shared_path("images", "hard_small_face_grayscale_01.png"))
    rig = FaceRig(p)
    assert rig.turn_share < 0.5
    renderer = Renderer(p, rig)
    rest = render_motion(renderer, MotionFrame()).astype(np.int16)
    for motion in (MotionFrame(yaw=3.0), MotionFrame(yaw=-8.0), MotionFrame(pitch=8.0)):
        diff = np.abs(render_motion(renderer, motion).astype(np.int16) - rest).sum(axis=2)
        assert diff.mean() < 15.0, motion
