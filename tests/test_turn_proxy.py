"""The head-turn pieces: head shell, visible outline, fold softening, textured plate fill, mirror layer."""
import numpy as np

from talkface.analysis import landmarks as lm
from talkface.face.outline import Outline
from talkface.face.shell import HeadShell
from talkface.render.completion import reflected, textured_fill
from talkface.render.silhouette import fold_mask, soften_folds
from talkface.render.warp import Warp


def test_shell_is_at_the_pivot_on_its_silhouette_and_in_front_inside():
    mask = np.zeros((200, 200), np.float32)
    mask[:, 40:160] = 1.0                       # a head 120 px wide round x = 100
    shell = HeadShell.fit(np.array([100.0, 100.0, 500.0]), 50.0, 440.0, mask)
    assert np.isclose(shell.axes[0], 59.5)   # pixel centres 40 ... 159
    z = shell.front_depth(np.array([[100.0, 100.0], [160.0, 100.0], [190.0, 100.0]]))
    assert np.isclose(z[0], 440.0) and np.isclose(z[1], 500.0) and np.isclose(z[2], 500.0)


def test_outline_keeps_the_rest_pose_and_pulls_a_hidden_oval_point_out(face):
    rest = face.rig.source_xy[:lm.N_MESH].astype(np.float64)
    outline = Outline.build(rest, lm.FACE_OVAL)
    assert np.allclose(outline.visible(rest), rest)
    i = lm.FACE_OVAL[9]                         # a point on the jaw's side, moved inside the face
    centre = rest[list(lm.FACE_OVAL)].mean(axis=0)
    hidden = rest.copy()
    hidden[i] = centre + 0.7 * (rest[i] - centre)
    moved = outline.visible(hidden)
    assert np.linalg.norm(moved[i] - centre) > 0.9 * np.linalg.norm(rest[i] - centre)


def _warp(map_x):
    h, w = map_x.shape
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return Warp(np.zeros((h, w), np.int32), map_x, map_y)


def test_folds_are_softened_and_nothing_else():
    x = np.tile(np.arange(64, dtype=np.float32), (64, 1))
    x[:, 32:] += 20                              # the source jumps 20 px between columns 31 and 32
    warp = _warp(x)
    mask = fold_mask(warp, (0, 0, 64, 64))
    assert mask[:, 31].all() and mask[:, 32].all() and not mask[:, :30].any() and not mask[:, 34:].any()
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, 32:] = 200
    soften_folds(frame, warp, (0, 0, 64, 64), (0, 0, 0, 0))
    assert 0 < frame[10, 31, 0] < 200 and 0 < frame[10, 32, 0] < 200
    assert frame[10, 20, 0] == 0 and frame[10, 40, 0] == 200


def test_the_plate_fill_carries_the_background_texture():
    rng = np.random.default_rng(0)
    image = np.full((64, 64, 3), 120, np.float32) + rng.normal(0, 15, (64, 64, 1)).astype(np.float32)
    known = np.zeros((64, 64), bool)
    known[:, :40] = True
    mirror = reflected(known, image)
    assert np.array_equal(mirror[:, 45], image[:, 33])   # 6 px past the last known column (39) <- 6 px before it
    smooth = np.full_like(image, 120)
    out = textured_fill(known, image, ~known, smooth)
    assert out[:, 44:].std() > 5 * smooth[:, 44:].std() + 3


def test_mirror_pairs_cross_the_face(face):
    from talkface.render.mirror import mirror_pairs

    pairs = mirror_pairs(face.rig.canonical)
    assert pairs[lm.EYE_OUTER[0]] == lm.EYE_OUTER[1] and pairs[lm.EYE_OUTER[1]] == lm.EYE_OUTER[0]
    x = face.rig.canonical[:lm.N_MESH, 0] - face.rig.canonical[:lm.N_MESH, 0].mean()
    side = np.abs(x) > 20                         # off the middle, each point's mirror is across it
    assert (np.sign(x[pairs[side]]) == -np.sign(x[side])).all()


def test_mirror_completion_leaves_rest_alone_and_textures_a_turn(face):
    from talkface.motion.generator import MotionFrame

    r = face.renderer
    rest = r.rig.targets(MotionFrame())
    w, _ = r.mirror._weights(rest, r.mesh)
    assert w.max(initial=0.0) < 0.02                  # nothing at rest: rest frames are the photo
    turned = r.rig.targets(MotionFrame(yaw=30.0))
    warp = r.mesh.warp(turned)
    frame = r.plate.draw(warp)
    before = frame.copy()
    r.mirror.draw(frame, r.mesh, warp, turned)
    w, _ = r.mirror._weights(turned, r.mesh)
    assert (w > 0.02).any() == (frame != before).any()
