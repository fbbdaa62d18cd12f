"""Controls: parsing and validation, keyframed tracks, JSON control files."""
import json

import numpy as np
import pytest

from talkface.motion.controls import ControlError, Controls, ControlTrack, Keyframe, parse_floats, parse_gaze


# ----------------------------------------------------------------------------- parsing, validation
def test_parse_gaze_camera_and_direction():
    assert parse_gaze("camera") == (None, True)
    assert parse_gaze(" Camera ") == (None, True)
    assert parse_gaze("10,-5") == ((10.0, -5.0), False)


@pytest.mark.parametrize("text", ["10", "1,2,3", "left", "10,abc", "", "nan,1", "inf,0"])
def test_parse_gaze_rejects_malformed(text):
    with pytest.raises(ControlError, match="YAW,PITCH"):
        parse_gaze(text)


def test_parse_floats_counts():
    assert parse_floats("1, 2 ,3", 3, "--head-pose") == (1.0, 2.0, 3.0)
    with pytest.raises(ControlError, match="--head-pose takes 3 comma-separated numbers"):
        parse_floats("1,2", 3, "--head-pose")


@pytest.mark.parametrize("kwargs, message", [
    (dict(head_distance=0.5), "head-distance must be between 0.6 and 1.5, got 0.5"),
    (dict(head_distance=1.6), "head-distance must be between 0.6 and 1.5"),
    (dict(head_distance=float("nan")), "head-distance must be between"),
    (dict(emotion_strength=1.2), "emotion-strength must be between 0 and 1"),
    (dict(emotion_strength=-0.1), "emotion-strength must be between 0 and 1"),
    (dict(motion_scale=2.5), "motion-scale must be between 0 and 2"),
    (dict(gaze=(31.0, 0.0)), "gaze yaw must be between -30 and 30"),
    (dict(gaze=(0.0, -25.0)), "gaze pitch must be between -20 and 20"),
    (dict(head_pose=(0.0, 0.0, 45.0)), "head-pose roll must be between -20 and 20"),
    (dict(emotion="bored"), "unknown emotion 'bored' .*neutral, happy, sad, angry, surprised"),
    (dict(motion_scale=True), "motion-scale must be between"),
])
def test_out_of_range_controls_raise_clear_errors(kwargs, message):
    with pytest.raises(ControlError, match=message):
        Controls(**kwargs).validated()


@pytest.mark.parametrize("kwargs", [
    dict(), dict(head_distance=0.6), dict(head_distance=1.5), dict(motion_scale=0), dict(motion_scale=2),
    dict(emotion="surprised", emotion_strength=1.0), dict(gaze=(-30.0, 20.0)), dict(head_pose=(30.0, -20.0, 20.0)),
])
def test_edge_values_are_accepted(kwargs):
    assert Controls(**kwargs).validated() == Controls(**kwargs)


def test_cli_rejects_out_of_range_control(tmp_path, capsys):
    from conftest import write_wav

    from talkface.cli import main

    wav = write_wav(tmp_path / "a.wav", np.zeros(8000, np.float32))
    out = tmp_path / "o.mp4"
    assert main(["generate", "--audio", str(wav), "-o", str(out), "--head-distance", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "head-distance must be between 0.6 and 1.5" in err[0]
    assert main(["generate", "--audio", str(wav), "-o", str(out), "--gaze", "sideways"]) == 2
    assert "YAW,PITCH" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------- keyframes
def _track(*frames, base=Controls()):
    return ControlTrack(base=base, keyframes=tuple(Keyframe(t, v) for t, v in frames))


def test_no_keyframes_is_the_base():
    base = Controls(emotion="happy", head_distance=1.2)
    assert ControlTrack(base=base).at(0.0) == base and ControlTrack(base=base).at(99.0) == base


def test_keyframes_hold_outside_and_hit_values_at_their_times():
    t = _track((1.0, {"head_pose": (10.0, 0.0, 0.0)}), (3.0, {"head_pose": (-10.0, 5.0, 0.0)}))
    assert t.at(0.0).head_pose == (10.0, 0.0, 0.0)
    assert t.at(1.0).head_pose == (10.0, 0.0, 0.0)
    assert t.at(3.0).head_pose == (-10.0, 5.0, 0.0)
    assert t.at(10.0).head_pose == (-10.0, 5.0, 0.0)
    assert t.at(2.0).head_pose == pytest.approx((0.0, 2.5, 0.0))


def test_interpolation_is_smooth():
    t = _track((0.0, {"head_distance": 0.6, "motion_scale": 0.0, "gaze": (-20.0, 0.0)}),
               (2.0, {"head_distance": 1.5, "motion_scale": 2.0, "gaze": (20.0, 10.0)}),
               (2.5, {"head_distance": 1.0}))
    times = np.arange(0, 3.0, 0.01)
    d = np.array([t.at(x).head_distance for x in times])
    g = np.array([t.at(x).gaze[0] for x in times])
    for series, span in ((d, 0.9), (g, 40.0)):
        step = np.abs(np.diff(series))
        assert step.max() < span * 0.02          # no jumps (1.5x the linear slope at most)
        # eased: it starts and ends slowly
        assert step[0] < step[len(step) // 3]
    assert d[np.searchsorted(times, 2.0)] == pytest.approx(1.5)
    assert all(t.at(x).validated() for x in times)


def test_emotion_cross_fades_through_zero_strength():
    t = _track((0.0, {"emotion": "happy", "emotion_strength": 1.0}), (2.0, {"emotion": "angry", "emotion_strength": 0.8}))
    times = np.arange(0, 2.001, 0.01)
    cs = [t.at(x) for x in times]
    strength = np.array([c.emotion_strength for c in cs])
    kinds = [c.emotion for c in cs]
    assert kinds[0] == "happy" and kinds[-1] == "angry"
    switch = kinds.index("angry")
    assert abs(times[switch] - 1.0) < 0.011
    assert strength[switch] < 1e-3 and strength[switch - 1] < 1e-3   # switches only where the face is neutral
    assert strength[0] == pytest.approx(1.0) and strength[-1] == pytest.approx(0.8)
    assert np.abs(np.diff(strength)).max() < 0.02


def test_camera_gaze_blends_with_a_direction():
    t = _track((0.0, {"gaze": None, "gaze_camera": True}), (1.0, {"gaze": (20.0, 0.0), "gaze_camera": False}))
    mid = t.at(0.5)
    assert not mid.gaze_camera and mid.gaze == pytest.approx((10.0, 0.0))


def test_emotion_change_is_smooth_in_the_face():
    """Through the motion generator, a keyframed emotion change never jumps."""
    from talkface.motion.generator import MotionGenerator, MouthShape, Prosody

    t = _track((1.0, {"emotion": "happy", "emotion_strength": 1.0}), (2.0, {"emotion": "sad", "emotion_strength": 1.0}))
    gen = MotionGenerator(25.0, seed=3)
    frames = [gen.step(MouthShape(), Prosody(0.0, False, 0.0), t.at(i / 25)) for i in range(100)]
    for name in ("smile", "mouth_frown", "brow_raise"):
        v = np.array([getattr(f.expression, name) for f in frames])
        assert np.abs(np.diff(v)).max() < 0.1, name
    assert frames[25].expression.smile > 0.5 and frames[-1].expression.mouth_frown > 0.5
    assert frames[-1].expression.smile < 0.05


# ----------------------------------------------------------------------------- JSON files
def _write(tmp_path, data, name="k.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_json_track_loads_and_sorts(tmp_path):
    p = _write(tmp_path, {"keyframes": [
        {"time": 2, "emotion": "sad", "gaze": "camera"},
        {"time": 0, "emotion": "happy", "emotion-strength": 0.9, "head_pose": [5, 0, 0], "gaze": [10, 2]},
    ]})
    t = ControlTrack.from_json(p, Controls(head_distance=1.2))
    assert [k.time for k in t.keyframes] == [0.0, 2.0]
    assert t.at(0.0).emotion == "happy" and t.at(0.0).gaze == (10.0, 2.0) and t.at(0.0).head_distance == 1.2
    assert t.at(5.0).emotion == "sad" and t.at(5.0).gaze_camera
    assert t.at(5.0).head_pose == (5.0, 0.0, 0.0)   # carried from the earlier keyframe
    # a bare list works too
    assert ControlTrack.from_json(_write(tmp_path, [{"time": 0, "motion_scale": 2}], "l.json"), Controls()).at(1).motion_scale == 2


@pytest.mark.parametrize("data, message", [
    ("{not json", "cannot read controls file"),
    ([], "expected a list of keyframes"),
    ({"keyframes": "x"}, "expected a list of keyframes"),
    ([{"emotion": "happy"}], "keyframe 1: every keyframe needs a 'time'"),
    ([{"time": -1}], "time must be a number of seconds >= 0"),
    ([{"time": "soon"}], "time must be a number of seconds >= 0"),
    ([{"time": 0, "smile": 1}], "unknown control 'smile'"),
    ([{"time": 0}, {"time": 1, "head_distance": 2.0}], r"keyframe 2 \(time 1\): head-distance must be between 0.6 and 1.5"),
    ([{"time": 0, "emotion": "bored"}], "unknown emotion 'bored'"),
    ([{"time": 0, "emotion": 3}], "emotion must be one of"),
    ([{"time": 0, "emotion_strength": "high"}], "emotion_strength must be a number"),
    ([{"time": 0, "motion_scale": True}], "motion_scale must be a number"),
    ([{"time": 0, "gaze": [1, 2, 3]}], "gaze .*YAW,PITCH"),
    ([{"time": 0, "gaze": [40, 0]}], "gaze yaw must be between -30 and 30"),
    ([{"time": 0, "head_pose": [1, "a", 2]}], "head_pose must be a list of numbers"),
    ([{"time": 0, "head_pose": "1,2"}], "head_pose .*takes 3 comma-separated numbers"),
])
def test_json_errors_are_one_clear_line(tmp_path, data, message):
    p = _write(tmp_path, data)
    with pytest.raises(ControlError, match=message) as info:
        ControlTrack.from_json(p, Controls())
    assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_json_missing_file(tmp_path):
    with pytest.raises(ControlError, match="controls file not found"):
        ControlTrack.from_json(tmp_path / "nope.json", Controls())


def test_cli_controls_file_error_exit_code(tmp_path, capsys):
    from conftest import write_wav

    from talkface.cli import main

    wav = write_wav(tmp_path / "a.wav", np.zeros(8000, np.float32))
    p = _write(tmp_path, [{"time": 0, "emotion": "furious"}])
    assert main(["generate", "--audio", str(wav), "-o", str(tmp_path / "o.mp4"), "--controls", str(p)]) == 2
    err = capsys.readouterr().err
    assert "unknown emotion 'furious'" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- on the output
def test_controls_are_obeyed_on_rendered_output(face):
    """Head pose, gaze and distance as the tracker reads them on talkface's output. Fails when
    the rig's response changes and motion.py's calibration tables need re-measuring
    (`talkface eval controls --calibrate`)."""
    from talkface.analysis.audio import Audio
    from talkface.evaluation.controls_eval import FPS, MEASURE_FRAMES, SETTLE_FRAMES, _frames, _track, settled

    silence = Audio.silence((SETTLE_FRAMES + MEASURE_FRAMES + 1) / FPS)
    ref = settled(_track(_frames(face, Controls(motion_scale=0.0), silence)))
    pose = settled(_track(_frames(face, Controls(motion_scale=0.0, head_pose=(15.0, -10.0, 0.0)), silence)))
    assert np.allclose(pose["pose"][:2] - ref["pose"][:2], (15.0, -10.0), atol=3.5)
    look = settled(_track(_frames(face, Controls(motion_scale=0.0, gaze=(15.0, 0.0)), silence)))
    moved = (look["pose"][0] - ref["pose"][0]) + (look["gaze"][0] - ref["gaze"][0])
    assert 9.0 < moved < 21.0
    far = settled(_track(_frames(face, Controls(motion_scale=0.0, head_distance=1.25), silence)))
    assert far["iod"] / ref["iod"] == pytest.approx(0.8, rel=0.05)
