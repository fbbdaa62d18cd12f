"""The whole pipeline: image + audio -> MP4, measured on what comes out."""
import numpy as np
import pytest

from talkface.analysis.tracking import track_frames
from talkface.engine import GenerateOptions, generate
from talkface.output.video import read_video_frames, write_video


@pytest.fixture(scope="module")
def rendered(face, speech_audio):
    return list(generate(face, speech_audio, GenerateOptions(seed=1)))


def test_frame_count_matches_duration(rendered, speech_audio):
    expected = round(speech_audio.duration * 25)
    assert abs(len(rendered) - expected) <= 1
    assert [f.index for f in rendered] == list(range(len(rendered)))
    assert rendered[0].image.shape == (512, 512, 3) and rendered[0].image.dtype == np.uint8


def test_mp4_has_h264_aac_and_duration(tmp_path, rendered, speech_audio):
    import av

    out = write_video(tmp_path / "out.mp4", rendered, speech_audio, fps=25)
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac"
        assert (v.width, v.height) == (512, 512)
        assert "AI-generated" in c.metadata.get("comment", "")
        audio_s = float(a.duration * a.time_base)
    frames, times = read_video_frames(out)
    assert abs(len(frames) - round(speech_audio.duration * 25)) <= 1
    assert abs(audio_s - speech_audio.duration) < 0.1
    assert abs(len(frames) / 25 - speech_audio.duration) <= 0.04 + 1e-6


def test_same_seed_same_frames_other_seed_differs(face, speech_audio):
    from talkface.analysis.audio import checked_audio

    clip = checked_audio(speech_audio.samples[: 16000 * 2], 16000)
    a = [f.image for f in generate(face, clip, GenerateOptions(seed=7))]
    b = [f.image for f in generate(face, clip, GenerateOptions(seed=7))]
    c = [f.image for f in generate(face, clip, GenerateOptions(seed=8))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_mouth_opens_for_speech_and_closes_in_silence(rendered, speech_audio):
    """Run the face mesh on the output: the mouth is more open while speaking than in the
    leading and trailing second of silence."""
    track = track_frames([f.image for f in rendered], [f.time for f in rendered])
    opening = track.mouth_opening()
    times = track.times
    silent = (times < 0.8) | (times > speech_audio.duration - 0.8)
    speech = (times > 1.1) & (times < speech_audio.duration - 1.1)
    assert np.isfinite(opening).mean() > 0.95
    assert np.nanmean(opening[silent]) < 0.05, "mouth should be closed in silence"
    assert np.nanpercentile(opening[speech], 90) > np.nanmean(opening[silent]) + 0.1
    assert np.nanmean(opening[speech]) > 2 * np.nanmean(opening[silent]) + 0.02


def test_background_stays_still(rendered, portrait):
    """Pixels well outside the person hardly change from frame to frame."""
    import cv2

    person = cv2.dilate((portrait.person_mask > 0.1).astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    background = ~person
    assert background.mean() > 0.1
    stack = np.stack([f.image for f in rendered[::5]]).astype(np.float32)
    change = np.abs(stack - stack[0:1]).mean(axis=-1)[:, background]
    assert np.percentile(change, 99) < 6.0


def test_text_input_speaks_and_animates(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "hello.mp4"
    proc = subprocess.run([sys.executable, "-m", "talkface.cli", "generate", "--text", "Good morning.", "--voice", "de",
                           "-o", str(out), "--size", "256"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    frames, _ = read_video_frames(out)
    assert frames[0].shape == (256, 256, 3) and len(frames) > 10
