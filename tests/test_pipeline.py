"""The one job pipeline: `render_file(Job)` for generate, drive, the server and batch. Marks
(watermark, then label) are applied last, on the final picture, also with --framing full."""
import threading

import numpy as np
import pytest
from conftest import write_wav


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory, speech_audio):
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_audio.samples[16000:16000 * 3])


def label_change(labelled: np.ndarray, plain: np.ndarray) -> tuple[float, float]:
    """(mean change in the bottom-right label corner, mean change elsewhere) in grey levels."""
    h, w = plain.shape[:2]
    corner = (slice(int(h * 0.9), h), slice(int(w * 0.7), w))
    diff = np.abs(plain.astype(np.float32) - labelled.astype(np.float32))
    rest = np.ones((h, w), bool)
    rest[corner] = False
    return float(diff[corner].mean()), float(diff[rest].mean())


def assert_marked(path, user_id: int) -> None:
    from talkface.marking.watermark import verify_file

    result = verify_file(path)
    assert result.found and result.payload.user_id == user_id, result


def test_framing_full_carries_watermark_and_label(tmp_path, speech_wav):
    from talkface.analysis.portrait import Portrait
    from talkface.analysis.video import read_video_frames
    from talkface.cli import main

    common = ["generate", "--audio", str(speech_wav), "--size", "256", "--framing", "full", "--watermark-id", "321"]
    labelled, plain = tmp_path / "labelled.mp4", tmp_path / "plain.mp4"
    assert main([*common, "-o", str(labelled), "--label", "AI-generated"]) == 0
    assert main([*common, "-o", str(plain)]) == 0
    assert_marked(labelled, 321)
    a, b = read_video_frames(labelled, max_frames=5)[0], read_video_frames(plain, max_frames=5)[0]
    source = Portrait.builtin(256).source
    assert a[0].shape == source.shape          # the whole picture, not the head crop
    corner, rest = label_change(a[2], b[2])
    assert corner > 8 and rest < 1.0, (corner, rest)


def test_marks_are_applied_after_framing(face):
    """With framing full, the watermark is embedded in the final (whole-picture) frame: the
    frame equals the unmarked whole-picture frame plus exactly what the Watermarker adds."""
    from talkface.engine import Animator, GenerateOptions
    from talkface.marking.watermark import Payload, Watermarker
    from talkface.motion.generator import MotionFrame

    motion = MotionFrame(yaw=5.0)
    marked = Animator(face, GenerateOptions(framing="full", watermark_id=9)).frame_of(motion, 0, 0.0).image
    bare = Animator(face, GenerateOptions(framing="full", watermark_id=None)).frame_of(motion, 0, 0.0).image
    assert marked.shape == face.portrait.source.shape
    assert np.array_equal(marked, Watermarker(Payload.written(9)).embed(bare))


def test_render_file_cancel_leaves_nothing(tmp_path, speech_wav, face):
    from talkface.errors import Cancelled
    from talkface.pipeline import Job, render_file

    out = tmp_path / "cancelled.mp4"
    stop = threading.Event()
    seen = []

    class Bar:
        total = None

        def update(self, n=1):
            seen.append(n)
            if len(seen) == 3:
                stop.set()

    with pytest.raises(Cancelled):
        render_file(Job(output=out, audio=speech_wav), face=face, progress=Bar(), cancel=stop)
    assert not out.exists() and not list(tmp_path.glob(".cancelled.*"))
    assert len(seen) == 3


def test_render_file_result(tmp_path, speech_wav, face):
    from talkface.pipeline import Job, render_file

    result = render_file(Job(output=tmp_path / "ok.mp4", audio=speech_wav), face=face)
    assert result.output.exists() and result.frames == 50 and result.seconds == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs,expect", [
    (dict(), "give one of"),
    (dict(audio="a.wav", text="hi"), "give one of"),
    (dict(text="x" * 20000), "limit is"),
    (dict(text="hi", size=32), "size must be"),
    (dict(text="hi", face_index=-1), "face index"),
])
def test_job_checks_itself(tmp_path, kwargs, expect):
    from talkface.errors import InputError
    from talkface.pipeline import Job

    with pytest.raises(InputError, match=expect):
        Job(output=tmp_path / "o.mp4", **kwargs)


def test_options_and_controls_check_themselves():
    from talkface.engine import GenerateOptions
    from talkface.errors import ControlError, InputError
    from talkface.motion.controls import Controls

    with pytest.raises(ControlError, match="head-pose yaw"):
        Controls(head_pose=(45.0, 0.0, 0.0))
    with pytest.raises(InputError, match="seed"):
        GenerateOptions(seed=-1)
    with pytest.raises(InputError, match="watermark id"):
        GenerateOptions(watermark_id=70000)
    with pytest.raises(InputError, match="framing"):
        GenerateOptions(framing="wide")
