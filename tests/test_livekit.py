"""The LiveKit avatar generator through livekit-agents' own avatar stack and a real `talkface serve`.

No livekit-server can run here (docs/livekit.md says why), so no room: tests/livekit_probe.py
runs in the agent venv (.venv-livekit, `make livekit-env`) and drives the real QueueAudioOutput,
AvatarRunner, rtc.AVSynchronizer, rtc.AudioSource/VideoSource and local tracks read back with
rtc.VideoStream/AudioStream. It records what came out; this file checks it in talkface's own
environment (face landmarks need mediapipe, which the agent venv cannot have).
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

AGENT_PYTHON = REPO / ".venv-livekit" / "bin" / "python"
PROBE = Path(__file__).with_name("livekit_probe.py")
PROBE_TIMEOUT_S = 90
SPEECH_RMS, SILENCE_RMS = 300.0, 30.0   # int16 levels: espeak speech is ~3000, idle frames are 0
MOUTH_OPEN, MOUTH_REST = 0.03, 0.015    # inner-lip gap over the inter-ocular distance
MAX_STALL_S = 0.2    # a longer pause in the generator's or the tracks' output: the machine lost real time
ATTEMPTS = 2


def run_probe(ws: str, out: Path) -> dict:
    done = subprocess.run([str(AGENT_PYTHON), str(PROBE), ws, str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=PROBE_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "record.json").read_text())
    record["dir"] = out
    record["stall_s"] = longest_stall(record)
    return record


def longest_stall(record: dict) -> float:
    """The longest pause, after the first utterance starts, between frames the generator yielded
    or between audio chunks the track delivered. Timing checks need it short: on a machine so
    loaded that this process or the server stalls, no real-time stack keeps A/V sync."""
    start = record["events"]["say1"][0]
    stalls = [np.diff([t for t in times if t > start]).max() for times in
              ([f[0] for f in record["frames"]], [a[0] for a in record["audio"]])]
    return float(max(stalls))


@pytest.fixture(scope="module")
def probe(request, tmp_path_factory):
    if not AGENT_PYTHON.exists():
        pytest.skip(f"the LiveKit agent venv is missing ({AGENT_PYTHON}): run `make livekit-env`")
    ws = request.getfixturevalue("serve_url").replace("http://", "ws://") + "/v1/live"
    for _ in range(ATTEMPTS):   # a second run if the machine stalled the first one
        record = run_probe(ws, tmp_path_factory.mktemp("livekit"))
        if record["stall_s"] <= MAX_STALL_S:
            break
    return record


def need_real_time(probe) -> None:
    if probe["stall_s"] > MAX_STALL_S:
        pytest.skip(f"the machine is too loaded for a timing check: output stalled {probe['stall_s']:.2f} s")


def mouth_openings(folder: Path) -> np.ndarray:
    from PIL import Image

    from talkface.analysis.landmarks import mouth_opening
    from talkface.analysis.portrait import mesh_points

    values = []
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as picture:
            points = mesh_points(np.asarray(picture.convert("RGB")))
        values.append(np.nan if points is None else mouth_opening(points))
    return np.array(values)


@pytest.fixture(scope="module")
def mouths(probe):
    """Mouth opening of every frame the generator yielded and of every frame the VideoStream delivered."""
    out = mouth_openings(probe["dir"] / "video")[:len(probe["video"])]   # the last picture may be unrecorded
    return {"gen": mouth_openings(probe["dir"] / "gen"), "out": out}


def test_generator_yields_one_audio_frame_per_video_frame(probe):
    kinds = [kind for _, kind, _ in probe["gen"] if kind != "end"]
    assert kinds[0::2] == ["video"] * (len(kinds) // 2 + len(kinds) % 2) and set(kinds[1::2]) == {"audio"}
    samples = np.load(probe["dir"] / "gen_pcm.npy")
    per_frame = probe["audio_rate"] / probe["fps"]
    assert len(samples) == per_frame * len(kinds[1::2]), "every frame carries exactly its own slot of audio"
    pts = np.array([f[2] for f in probe["frames"]])
    index = np.array([f[1] for f in probe["frames"]])
    np.testing.assert_allclose(pts, index / probe["fps"], atol=1e-6)
    assert [kind for _, kind, _ in probe["gen"]].count("end") == 1, "the finished utterance ends its segment once"


def test_frames_arrive_at_the_frame_rate(probe):
    need_real_time(probe)
    period = 1.0 / probe["fps"]
    arrivals = np.array([t for t, _ in probe["video"]])
    stamps = np.array([ts for _, ts in probe["video"]]) / 1e6
    assert abs(np.median(np.diff(stamps)) - period) < 0.25 * period
    assert abs(np.median(np.diff(arrivals)) - period) < 0.25 * period


def test_mouth_moves_during_speech_and_rests_in_silence(probe, mouths):
    """The frames the generator handed to the runner, by the server's speech flag; then the
    frames the video track delivered show the same mouth (the same pictures, none lost)."""
    speech = np.array([f[3] for f in probe["frames"]])
    pts, repeated = np.array([f[2] for f in probe["frames"]]), np.array([f[5] for f in probe["frames"]])
    speech_pts = pts[speech]
    # silence: no speech in the 160 ms before (the lips close over ~3 frames), and a picture of its
    # own (a picture the loaded server skipped repeats the previous one, maybe a speech picture)
    rest = np.array([not np.any((speech_pts <= p) & (speech_pts > p - 0.16)) for p in pts]) & ~repeated
    gen = mouths["gen"]
    assert np.isfinite(gen).all() and speech.sum() > 20 and rest.sum() > 10
    assert np.percentile(gen[speech], 90) > 2 * MOUTH_OPEN, "the mouth opens while speech plays"
    assert np.std(gen[speech]) > 0.02, "and it moves"
    assert gen[rest].max() < MOUTH_REST, "the mouth rests in silence"
    out = mouths["out"]
    assert np.isfinite(out).mean() > 0.95, "the face is found in the published frames"
    assert len(out) >= 0.9 * len(gen)
    for q in (10, 50, 90):
        assert abs(np.nanpercentile(out, q) - np.percentile(gen, q)) < 0.02, f"percentile {q} of the mouth opening"


def onset(times: np.ndarray, values: np.ndarray, after: float, threshold: float) -> float:
    """The first time after `after` at which `values` exceeds `threshold`."""
    hits = np.flatnonzero((times > after) & (values > threshold))
    assert len(hits), "no onset found"
    return float(times[hits[0]])


def generated_audio_chunks(probe) -> np.ndarray:
    """[time, RMS] per 10 ms of generated audio (the output's chunk size). The time of a chunk
    is when the generator yielded its frame plus the chunk's place in that frame: when it is due
    to play if the frame's picture shows as it is yielded."""
    pcm = np.load(probe["dir"] / "gen_pcm.npy").astype(np.float64)
    chunk = probe["audio_rate"] // 100
    levels = np.sqrt((pcm[:len(pcm) // chunk * chunk].reshape(-1, chunk) ** 2).mean(axis=1))
    per_frame = len(levels) // len(probe["frames"])
    yielded = np.repeat([t for t, kind, _ in probe["gen"] if kind == "audio"], per_frame)
    return np.column_stack([yielded + np.tile(np.arange(per_frame) * 0.01, len(probe["frames"])), levels])


def test_audio_and_video_stay_within_one_frame(probe, mouths):
    """The LiveKit stack (runner, synchronizer, sources, tracks) delays the face's video and its
    audio alike: the speech onset in the audio and the mouth's opening in the video move from
    the generator's output to the tracks' output by the same delay, within one frame."""
    need_real_time(probe)
    period = 1.0 / probe["fps"]
    gen_audio = generated_audio_chunks(probe)
    gen_video = np.array([f[0] for f in probe["frames"]])
    out_audio = np.array(probe["audio"])
    out_video = np.array([t for t, _ in probe["video"]])
    for start in probe["events"]["say1"] + probe["events"]["say2"]:
        audio_delay = (onset(out_audio[:, 0], out_audio[:, 2], start, SPEECH_RMS)
                       - onset(gen_audio[:, 0], gen_audio[:, 1], start, SPEECH_RMS))
        video_delay = (onset(out_video[:len(mouths["out"])], mouths["out"], start, MOUTH_OPEN)
                       - onset(gen_video, mouths["gen"], start, MOUTH_OPEN))
        assert 0 <= audio_delay < 0.5 and 0 <= video_delay < 0.5
        assert abs(video_delay - audio_delay) < period, f"video {video_delay * 1000:.0f} ms, audio {audio_delay * 1000:.0f} ms"


def test_clear_buffer_silences_within_100_ms(probe):
    """`clear_buffer` on the agent's audio output (barge-in) reaches the generator through the
    runner; the speech still on its way is dropped and the published audio falls silent."""
    need_real_time(probe)
    cleared = probe["events"]["clear"][0]
    assert probe["events"]["interrupted"], "the runner reported the playback as interrupted"
    out_audio = np.array(probe["audio"])
    before = out_audio[(out_audio[:, 0] < cleared) & (out_audio[:, 0] > cleared - 0.3), 2]
    assert len(before) and before.max() > SPEECH_RMS, "speech was playing when the user barged in"
    loud_after = out_audio[(out_audio[:, 0] >= cleared) & (out_audio[:, 2] > SILENCE_RMS)]
    last_loud = loud_after[-1, 0] - cleared if len(loud_after) else 0.0
    assert last_loud <= 0.1, f"audio still playing {last_loud * 1000:.0f} ms after clear_buffer"
    gen_after = [level for t, kind, level in probe["gen"] if kind == "audio" and t > cleared + 0.1]
    assert gen_after and max(gen_after) < SILENCE_RMS, "the generator yields only silence after the interrupt"


def test_avatar_worker_refuses_bad_launches_and_survives_a_failed_room(probe):
    found = probe["launcher"]
    assert found["bad_launch"][0] == 422 and "livekit_url" in found["bad_launch"][1]
    assert found["launch"] == 200, "a well-formed launch is accepted"
    assert found["healthz"]["status"] == "ok" and found["healthz"]["avatars"] == 0, \
        "the avatar whose room could not be joined ended, and the worker still answers"


def test_avatar_token_lets_the_worker_publish_for_the_agent(probe):
    token = probe["launcher"]["token"]
    assert token["identity"] == "face" and token["kind"] == "agent"
    assert token["room"] == "room1" and token["room_join"]
    assert token["attributes"] == {"lk.publish_on_behalf": "agent-1"}
