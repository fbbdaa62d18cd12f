"""Motion generator: determinism, blink statistics, long runs, controls and emotion
behaviour (the procedural source unless a test says learned). Motion only, no rendering: fast."""
import numpy as np
import pytest

from talkface.motion.controls import Controls
from talkface.motion.generator import EMOTION_STYLES, MotionGenerator, MouthShape, Prosody, eye_from_rig, eye_to_rig, head_to_rig

FPS = 25.0


def speech_like(seconds: float, seed: int = 0):
    """Synthetic prosody + mouth: phrases of syllables (~4/s) with pitch accents, and pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    loud = np.zeros(n)
    pitch = np.zeros(n)
    speaking = np.zeros(n, bool)
    i = int(rng.uniform(0.5, 1.0) * FPS)
    while i < n:
        length = int(rng.uniform(1.5, 4.0) * FPS)
        j = i
        while j < min(i + length, n):
            syl = int(rng.uniform(0.18, 0.3) * FPS)
            amp = rng.uniform(0.4, 1.0)
            seg = np.sin(np.linspace(0, np.pi, syl)) * amp
            loud[j:j + syl] = seg[: len(loud[j:j + syl])]
            pitch[j:j + syl] = rng.normal(0, 1)
            j += syl
        speaking[i:min(i + length + 6, n)] = True
        i += length + int(rng.uniform(0.3, 1.5) * FPS)
    return [(MouthShape(jaw_open=float(0.6 * l)), Prosody(float(l), bool(s), float(p)))
            for l, s, p in zip(loud, speaking, pitch)]


SILENCE = (MouthShape(), Prosody(0.0, False, 0.0))


def run(inputs, controls=Controls(), seed=0, gen=None):
    gen = gen or MotionGenerator(FPS, seed=seed, rest_gaze=(-3.0, 3.4), source="procedural")
    return [gen.step(m, p, controls) for m, p in inputs]


def poses(frames):
    return np.array([(f.yaw, f.pitch, f.roll) for f in frames])


def blink_count(frames):
    b = np.array([f.expression.blink_left for f in frames]) > 0.5
    return int(np.sum(b[1:] & ~b[:-1]))


def test_same_seed_same_motion_other_seed_differs():
    inputs = speech_like(20, seed=1)
    a, b, c = run(inputs, seed=7), run(inputs, seed=7), run(inputs, seed=8)
    assert a == b
    assert not np.allclose(poses(a), poses(c))


def test_blink_rate_natural_over_a_long_idle_run():
    frames = run([SILENCE] * int(600 * FPS), seed=2)
    rate = blink_count(frames) / 10.0
    assert 8 <= rate <= 30, rate
    b = np.array([f.expression.blink_left for f in frames])
    starts = np.flatnonzero((b[1:] > 0.5) & (b[:-1] <= 0.5))
    gaps = np.diff(starts) / FPS
    assert gaps.min() >= 0.25                        # never a flutter
    assert 0.02 < np.mean(gaps < 0.6) < 0.2          # an occasional double blink, not many


def test_blinks_cluster_at_pauses_and_rate_while_talking():
    inputs = speech_like(600, seed=3)
    frames = run(inputs, seed=3)
    rate = blink_count(frames) / 10.0
    assert 8 <= rate <= 30, rate
    speaking = np.array([p.speaking for _, p in inputs])
    b = np.array([f.expression.blink_left for f in frames]) > 0.5
    starts = np.flatnonzero(b[1:] & ~b[:-1]) + 1
    ends = np.flatnonzero(speaking[:-1] & ~speaking[1:]) + 1
    near = np.zeros(len(b), bool)
    for e in ends:
        near[e:e + int(0.5 * FPS)] = True
    share_blinks = near[starts].mean()
    share_time = near.mean()
    assert share_blinks > 2 * share_time             # blinks cluster where phrases end


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_ten_minutes_flat_memory_and_no_drift():
    """10.5 minutes of talk and pauses: the generator's state does not grow, the process
    memory stays flat, and the head does not wander off."""
    import pickle

    inputs = speech_like(60, seed=4) + [SILENCE] * int(30 * FPS)
    gen = MotionGenerator(FPS, seed=4, source="procedural")
    controls = Controls()
    means, stds, peak = [], [], 0.0
    for rep in range(7):
        p = np.array([(f.yaw, f.pitch, f.roll) for f in (gen.step(m, pr, controls) for m, pr in inputs)])
        means.append(p.mean(axis=0))
        stds.append(p.std(axis=0))
        peak = max(peak, float(np.abs(p).max()))
        if rep == 1:
            state, rss = len(pickle.dumps(gen)), _rss_bytes()
    assert abs(len(pickle.dumps(gen)) - state) < 64                 # no growing buffers
    assert _rss_bytes() - rss < 2_000_000
    means, stds = np.array(means), np.array(stds)
    assert np.all(np.abs(means) < 4.0)                              # no drift: every 1.5 min centred
    assert np.all(stds[-1] < 2.5 * stds[0] + 1.0)
    assert peak < 40 and np.isfinite(means).all()


def test_head_moves_more_while_speaking_and_settles_in_silence():
    inputs = speech_like(30, seed=5) + [SILENCE] * int(10 * FPS)
    frames = run(inputs, seed=5)
    p = poses(frames)
    speak_move = np.abs(np.diff(p[: int(30 * FPS)], axis=0)).mean()
    quiet_move = np.abs(np.diff(p[-int(6 * FPS):], axis=0)).mean()
    assert quiet_move < 0.5 * speak_move
    assert np.abs(p[-int(3 * FPS):]).mean() < np.abs(p[: int(30 * FPS)]).mean()


def test_motion_scale_zero_still_two_lively():
    inputs = speech_like(30, seed=6)
    still = poses(run(inputs, Controls(motion_scale=0.0), seed=6))
    one = poses(run(inputs, Controls(motion_scale=1.0), seed=6))
    two = poses(run(inputs, Controls(motion_scale=2.0), seed=6))
    assert np.abs(still).max() < 1e-6
    assert 1.5 * one.std() < two.std() < 2.6 * one.std()


def test_head_pose_offset_and_distance_are_reached_smoothly():
    c = Controls(motion_scale=0.0, head_pose=(12.0, -6.0, 4.0), head_distance=1.25)
    frames = run([SILENCE] * int(3 * FPS), c)
    p = poses(frames)
    assert np.allclose(p[-1], head_to_rig((12.0, -6.0, 4.0)), atol=1e-3)
    assert frames[-1].scale == pytest.approx(0.8, abs=1e-4)
    assert np.abs(np.diff(p, axis=0)).max() < 3.0    # eased in, no jump


def test_gaze_holds_the_camera_while_the_head_moves():
    """With --gaze camera the eyes counter-rotate against head motion (in measured degrees)."""
    inputs = speech_like(20, seed=9)
    frames = run(inputs, Controls(gaze=None, gaze_camera=True), seed=9, gen=MotionGenerator(FPS, 9, rest_gaze=(0.0, 0.0), source="procedural"))
    head = poses(frames)
    eyes = np.array([(f.expression.gaze_yaw, f.expression.gaze_pitch) for f in frames])
    assert np.corrcoef(head[:, 0], eyes[:, 0])[0, 1] < -0.5
    assert eye_from_rig(eye_to_rig((5.0, 3.0))) == pytest.approx((5.0, 3.0), abs=0.05)


@pytest.mark.parametrize("emotion", sorted(EMOTION_STYLES))
def test_emotion_keeps_speech_in_sync(emotion):
    inputs = speech_like(15, seed=10)
    frames = run(inputs, Controls(emotion=emotion, emotion_strength=1.0), seed=10)
    jaw_in = np.array([m.jaw_open for m, _ in inputs])
    jaw_out = np.array([f.expression.jaw_open for f in frames])
    assert np.all(jaw_out >= jaw_in - 1e-9)          # emotion never closes the mouth
    assert np.corrcoef(jaw_in, jaw_out)[0, 1] > 0.97
    assert np.ptp(jaw_out) > 0.9 * np.ptp(jaw_in)
    speaking = np.array([p.speaking for _, p in inputs])
    run_len = np.zeros(len(speaking), int)
    for i, sp in enumerate(speaking):
        run_len[i] = run_len[i - 1] + 1 if sp and i else int(sp)
    settled = run_len >= 10                                              # talking for 0.4 s
    closed = settled & (jaw_in < 0.02)
    assert closed.any() and np.all(jaw_out[closed] < 0.05)               # lips still close for p, b, m


def test_emotions_change_the_face_and_the_motion():
    inputs = speech_like(40, seed=11)
    out = {e: run(inputs, Controls(emotion=e, emotion_strength=1.0), seed=11) for e in EMOTION_STYLES}
    last = {e: f[-1].expression for e, f in out.items()}
    assert last["happy"].smile > 0.6
    assert last["sad"].mouth_frown > 0.6 and last["sad"].eye_open < 0
    assert last["angry"].brow_frown > 0.8
    assert last["surprised"].brow_raise > 0.8 and last["surprised"].eye_open > 0.5
    move = {e: np.abs(np.diff(poses(f), axis=0)).mean() for e, f in out.items()}
    assert move["sad"] < move["neutral"] < move["angry"]
    assert np.mean(poses(out["sad"])[:, 1]) < np.mean(poses(out["neutral"])[:, 1])   # sadness lowers the head


def test_dynamics_measures_on_known_signals():
    """The figures `talkface eval dynamics` reports, on series with known answers."""
    from talkface.motion.metrics import FPS as EFPS
    from talkface.motion.metrics import clip_stats, count_blinks, resample

    t = np.arange(0, 60, 1 / EFPS)
    aperture = np.full(len(t), 0.3)
    for s in np.arange(2.0, 58.0, 3.0):                 # 19 blinks of ~0.2 s, one every 3 s
        k = int(s * EFPS)
        aperture[k:k + 5] = [0.2, 0.08, 0.05, 0.1, 0.22]
    assert count_blinks(aperture) == 19
    series = np.zeros((len(t), 6))
    series[:, 0] = 5 * np.sin(2 * np.pi * 0.5 * t)       # yaw: std 5/sqrt(2)
    series[:, 3] = aperture
    speech = np.abs(np.cos(2 * np.pi * 0.5 * t)) * 10     # loudest where the head moves fastest
    stats = clip_stats(series, EFPS, energy=speech)
    assert stats["blinks_per_min"] == pytest.approx(19.0)
    assert stats["pose_std_axes_deg"][0] == pytest.approx(5 / np.sqrt(2), rel=0.01)
    assert stats["delta_pose_axes_deg"][0] == pytest.approx(4 * 5 * 0.5 / EFPS, rel=0.02)  # mean |d/dt| of A sin
    assert stats["motion_speech_corr"] > 0.8
    assert stats["gaze_camera_share"] == 1.0            # head + eyes within 6 degrees of the median throughout
    # resampling: variable frame times onto the 25 fps grid
    times = np.cumsum(np.r_[0, np.full(99, 1 / 30)])
    r = resample(times, np.stack([times, times], 1))
    assert np.allclose(np.diff(r[:, 0]), 1 / EFPS) and np.allclose(r[:, 0], r[:, 1])


# ----------------------------------------------------------------------------- learned motion
def run_learned(inputs, controls=Controls(), seed=0):
    return run(inputs, controls, gen=MotionGenerator(FPS, seed=seed, rest_gaze=(-3.0, 3.4), source="learned"))


def test_learned_weights_small_stable_and_seeded():
    from talkface.motion.learned import WEIGHTS, MotionModel

    model = MotionModel.load()
    assert WEIGHTS.stat().st_size < 100_000
    p, d = model.order, model.lags.shape[1]
    comp = np.zeros((p * d, p * d))
    comp[:d] = np.concatenate(list(model.lags), axis=1)
    comp[d:, :-d] = np.eye((p - 1) * d)
    assert np.abs(np.linalg.eigvals(comp)).max() < 1.0           # a stationary process: no drift
    inputs = speech_like(20, seed=1)
    a, b, c = run_learned(inputs, seed=7), run_learned(inputs, seed=7), run_learned(inputs, seed=8)
    assert a == b
    assert not np.allclose(poses(a), poses(c))


def test_learned_motion_is_natural_over_minutes():
    """Pose spread and blink rate in the range of real people, speech moves the head more
    than silence, and the head stays centred."""
    inputs = (speech_like(60, seed=3) + [SILENCE] * int(15 * FPS)) * 3
    stds, rates = [], []
    for seed in range(2):
        frames = run_learned(inputs, seed=seed)
        p = poses(frames)
        stds.append(p.std(axis=0).mean())
        rates.append(blink_count(frames) / (len(frames) / FPS / 60))
        assert np.abs(p.mean(axis=0)).max() < 4.0 and np.abs(p).max() < 45
    assert 0.8 < np.mean(stds) < 6.0, stds
    assert 8 <= np.mean(rates) <= 45, rates


def test_learned_motion_follows_the_controls():
    inputs = speech_like(20, seed=4)
    still = poses(run_learned(inputs, Controls(motion_scale=0.0)))
    assert np.abs(still).max() < 1e-6
    c = Controls(motion_scale=0.0, head_pose=(12.0, -6.0, 4.0))
    frames = run_learned([SILENCE] * int(3 * FPS), c)
    assert np.allclose(poses(frames)[-1], head_to_rig((12.0, -6.0, 4.0)), atol=1e-3)
    sad = poses(run_learned(inputs, Controls(emotion="sad", emotion_strength=1.0), seed=2))
    angry = poses(run_learned(inputs, Controls(emotion="angry", emotion_strength=1.0), seed=2))
    assert np.abs(np.diff(sad, axis=0)).mean() < np.abs(np.diff(angry, axis=0)).mean()


def test_learned_emotion_factors_come_from_the_labelled_clips():
    """The shipped emotion factors are the record's (measured on MEAD clips, shrunk to the
    rig's style); at full strength surprise blinks less than neutral, and strength 0 is neutral."""
    import json

    from talkface.motion.controls import EMOTIONS
    from talkface.motion.learned import WEIGHTS, MotionModel

    model, record = MotionModel.load(), json.loads(WEIGHTS.with_suffix(".json").read_text())["emotion"]
    assert np.all(model.emotion[EMOTIONS.index("neutral")] == 0)
    for name in ("happy", "sad", "angry", "surprised"):
        assert record["emotions"][name]["figures"]["clips"] >= 1
        assert np.allclose(np.exp(model.emotion[EMOTIONS.index(name)]), record["emotions"][name]["shipped_factors"], atol=1e-3)
    inputs = speech_like(60, seed=6)
    rate = {e: sum(blink_count(run_learned(inputs, Controls(emotion=e, emotion_strength=1.0), seed=s)) for s in range(3))
            for e in ("neutral", "surprised")}
    assert rate["surprised"] < rate["neutral"], rate
    weak = run_learned(inputs[:250], Controls(emotion="surprised", emotion_strength=0.0), seed=3)
    assert np.allclose(poses(weak), poses(run_learned(inputs[:250], Controls(emotion_strength=0.0), seed=3)))


def test_learned_motion_at_other_frame_rates():
    """The live stream runs at 40 fps: the model interpolates between its 25 fps frames."""
    gen = MotionGenerator(40.0, seed=1, source="learned")
    frames = [gen.step(m, p, Controls()) for m, p in speech_like(10, seed=5) for _ in (0, 1)][:400]
    p = poses(frames)
    assert np.isfinite(p).all() and np.abs(np.diff(p, axis=0)).max() < 3.0
