"""Bad input: one line on stderr, exit code 2, no traceback, no output file left behind."""
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_wav


def run_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "talkface.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory, speech_audio):
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", speech_audio.samples[:16000 * 2])


def assert_clean_failure(code, err, out_path, expect):
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert expect in lines[0], lines[0]
    assert not out_path.exists()
    assert not list(out_path.parent.glob(f".{out_path.stem}.*")), "a temporary file was left behind"


def test_missing_image(tmp_path, speech_wav):
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--image", str(tmp_path / "nope.jpg"), "--audio", str(speech_wav), "-o", str(out))
    assert_clean_failure(code, err, out, "image file not found")


def test_unreadable_image(tmp_path, speech_wav):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--image", str(bad), "--audio", str(speech_wav), "-o", str(out))
    assert_clean_failure(code, err, out, "cannot read image")


def test_image_without_face(tmp_path, speech_wav):
    from PIL import Image

    img = tmp_path / "wall.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((300, 400, 3)) * 60 + 100).astype(np.uint8)).save(img)
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--image", str(img), "--audio", str(speech_wav), "-o", str(out))
    assert_clean_failure(code, err, out, "no face found in wall.png")


def test_missing_audio(tmp_path):
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--audio", str(tmp_path / "nope.wav"), "-o", str(out))
    assert_clean_failure(code, err, out, "audio file not found")


def test_unreadable_audio(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunkjunkjunk")
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--audio", str(bad), "-o", str(out))
    assert_clean_failure(code, err, out, "audio")


def test_zero_length_audio(tmp_path):
    empty = write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32))
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--audio", str(empty), "-o", str(out))
    assert_clean_failure(code, err, out, "empty")


def test_unwritable_output(tmp_path, speech_wav):
    out = tmp_path / "no" / "such" / "folder" / "out.mp4"
    code, _, err = run_cli("generate", "--audio", str(speech_wav), "-o", str(out))
    assert code == 2 and "does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize("args,expect", [
    (["--fps", "0"], "fps"),
    (["--size", "10"], "--size"),
    (["--emotion", "bored"], "unknown emotion"),
    (["--emotion-strength", "3"], "emotion-strength"),
    (["--head-distance", "9"], "head-distance"),
    (["--gaze", "left"], "--gaze"),
    (["--head-pose", "1,2"], "--head-pose"),
    (["--motion-scale", "-1"], "motion-scale"),
    (["--watermark-id", "70000"], "watermark id"),
    (["--fps", "abc"], "expected a number"),
])
def test_bad_option_values(tmp_path, speech_wav, args, expect):
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--audio", str(speech_wav), "-o", str(out), *args)
    assert code == 2, err
    assert expect in err and "Traceback" not in err
    assert not out.exists()


def test_output_must_be_mp4(tmp_path, speech_wav):
    out = tmp_path / "out.avi"
    code, _, err = run_cli("generate", "--audio", str(speech_wav), "-o", str(out))
    assert_clean_failure(code, err, out, ".mp4")


def test_verify_exit_codes(tmp_path, speech_wav):
    """0 when the mark is found, 1 when not, 2 on unreadable input."""
    marked = tmp_path / "marked.mp4"
    code, _, err = run_cli("generate", "--audio", str(speech_wav), "-o", str(marked), "--size", "256", "--watermark-id", "4242")
    assert code == 0, err
    code, out, _ = run_cli("verify", str(marked))
    assert code == 0 and "FOUND" in out and "id 4242" in out

    from PIL import Image

    plain = tmp_path / "plain.png"
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((256, 256, 3)) * 255).astype(np.uint8)).save(plain)
    code, out, _ = run_cli("verify", str(plain))
    assert code == 1 and "no talkface watermark" in out

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    code, _, err = run_cli("verify", str(junk))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_user_errors_are_one_family():
    """Every stage's user error is a TalkfaceError (one line, exit 2), and still a ValueError."""
    from talkface.analysis.audio import AudioError
    from talkface.analysis.portrait import PortraitError
    from talkface.analysis.speech import SpeechError
    from talkface.errors import TalkfaceError
    from talkface.marking.provenance import ProvenanceError
    from talkface.marking.watermark import WatermarkReadError
    from talkface.motion.controls import ControlError
    from talkface.output.video import OutputError, VideoReadError

    for cls in (AudioError, PortraitError, SpeechError, ProvenanceError, WatermarkReadError, ControlError,
                OutputError, VideoReadError):
        assert issubclass(cls, TalkfaceError) and issubclass(cls, ValueError), cls


def test_a_bug_is_not_a_user_error(monkeypatch):
    """An exception that is not a TalkfaceError is a bug: it propagates (traceback, exit 1)."""
    import talkface.analysis.speech as speech
    from talkface.cli import main

    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(speech, "list_voices", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["voices"])


def test_a_bug_exits_1_with_a_traceback(tmp_path):
    """Run as a program, a bug prints its traceback and exits 1 (here: a ValueError from
    inside a library that is not a user error must not be reported as one)."""
    script = tmp_path / "bug.py"
    script.write_text("import sys\nimport talkface.analysis.speech as s\n"
                      "def broken():\n    raise ValueError('internal')\n"
                      "s.list_voices = broken\nfrom talkface.cli import main\nsys.exit(main(['voices']))\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: internal" in proc.stderr


def png_header_only(path, width: int, height: int):
    """A PNG whose header claims width x height (a decompression bomb's header): readers
    that decode before checking the size would allocate width * height * 3 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_negative_angles_written_naturally(tmp_path, speech_wav):
    """`--head-pose -30,0,0` and `--gaze -10,5` are values, not options (issue 15)."""
    out = tmp_path / "turned.mp4"
    code, _, err = run_cli("generate", "--audio", str(speech_wav), "-o", str(out), "--size", "128",
                           "--head-pose", "-30,0,0", "--gaze", "-10,5", "--motion-scale", "0")
    assert code == 0, err
    assert out.exists()


def test_negative_values_are_joined_only_after_options():
    from talkface.cli import join_negative_values

    assert join_negative_values(["generate", "--head-pose", "-30,0,0", "--gaze", "-10,5", "--seed", "-1"]) == \
        ["generate", "--head-pose=-30,0,0", "--gaze=-10,5", "--seed=-1"]
    assert join_negative_values(["generate", "--head-pose=-3,0,0", "-o", "x.mp4"]) == \
        ["generate", "--head-pose=-3,0,0", "-o", "x.mp4"]


def test_folder_as_image_or_verify_says_so(tmp_path, speech_wav):
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--image", str(tmp_path), "--audio", str(speech_wav), "-o", str(out))
    assert_clean_failure(code, err, out, "is a folder")
    code, _, err = run_cli("verify", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a folder" in err


@pytest.mark.parametrize("args,expect", [
    (["--size", "abc"], "--size"),
    (["--size", "10"], "--size"),
    (["--seed", "-1"], "--seed"),
    (["--no-such-option"], "unrecognized arguments"),
    (["--framing", "wide"], "--framing"),
])
def test_bad_options_are_one_line(tmp_path, speech_wav, args, expect):
    """argparse's errors too: one line naming the option, exit 2, no usage block; checked
    before any heavy work (the parser runs first)."""
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--audio", str(speech_wav), "-o", str(out), *args)
    assert_clean_failure(code, err, out, expect)
    assert "usage:" not in err


def test_text_has_a_length_limit(tmp_path):
    """--text is capped like --audio (15 minutes of speech), before speaking it (issue 18)."""
    out = tmp_path / "out.mp4"
    code, _, err = run_cli("generate", "--text", "word " * 4000, "-o", str(out))
    assert_clean_failure(code, err, out, "the limit is")


def test_huge_image_is_refused_from_its_header(tmp_path, speech_wav):
    """A decompression bomb (14000x14000 header) and an image just over the limit are one line."""
    out = tmp_path / "out.mp4"
    for w, h in ((14000, 14000), (11000, 10000)):
        bomb = png_header_only(tmp_path / f"bomb{w}.png", w, h)
        code, _, err = run_cli("generate", "--image", str(bomb), "--audio", str(speech_wav), "-o", str(out))
        assert_clean_failure(code, err, out, "image is too large")


def test_large_image_is_scaled_down_early(tmp_path):
    from PIL import Image

    from talkface.analysis.portrait import MAX_WORKING_SIDE, load_image

    path = tmp_path / "big.jpg"
    Image.new("RGB", (6000, 4500), (120, 100, 90)).save(path, quality=60)
    image = load_image(path)
    assert max(image.shape[:2]) == MAX_WORKING_SIDE and image.shape[1] * 4500 == pytest.approx(image.shape[0] * 6000, rel=0.01)


def test_sigterm_mid_render_removes_the_partial_file(tmp_path):
    """A real process, a real SIGTERM while it writes: no .part.mp4 left, one line, exit 143."""
    import os
    import signal
    import time

    t = np.arange(16000 * 60) / 16000
    wav = write_wav(tmp_path / "long.wav", (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32))
    out = tmp_path / "long.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "talkface.cli", "generate", "--audio", str(wav), "-o", str(out),
                             "--size", "128"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".long.*.part.mp4")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        parts = list(tmp_path.glob(".long.*.part.mp4"))
        assert parts and proc.poll() is None, "the render never started writing"
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert [line for line in err.splitlines() if line.strip()] == ["talkface: terminated"]
    assert not out.exists() and not list(tmp_path.glob(".long.*")), "a temporary file was left behind"


def test_no_stray_stderr_on_success(tmp_path, speech_wav):
    """MediaPipe's W0000 lines and libpng's iCCP warnings do not reach the user."""
    from conftest import SHARED

    image = SHARED / "images" / "photo_woman_astronaut_frontal_01.png"   # has an sRGB profile libpng warns about
    args = ["--image", str(image)] if image.exists() else []
    out = tmp_path / "quiet.mp4"
    code, _, err = run_cli("generate", *args, "--audio", str(speech_wav), "-o", str(out), "--size", "128")
    assert code == 0 and err.strip() == "", err
    code, _, err = run_cli("verify", str(image if image.exists() else out))
    assert code in (0, 1) and err.strip() == "", err
