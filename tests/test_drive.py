"""`talkface drive` and `talkface eval reenact`, on a clip made with talkface itself (so the
motion that drove it is known) and, where available, on a real shared clip."""
import json

import numpy as np
import pytest

from talkface.motion.generator import Expression, MotionFrame

FPS = 25
N = 50


def script(i: int) -> MotionFrame:
    t = i / FPS
    return MotionFrame(yaw=12 * np.sin(2 * np.pi * 0.5 * t), pitch=4 * np.sin(2 * np.pi * 0.7 * t),
                       expression=Expression(jaw_open=float(0.7 * max(0.0, np.sin(2 * np.pi * 1.5 * t))),
                                             blink_left=float(20 <= i < 24), blink_right=float(20 <= i < 24)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory, face):
    """2 s of the built-in portrait following `script`, with a tone as its audio."""
    from talkface.analysis.audio import Audio
    from talkface.output.video import write_video

    frames = [face.renderer.render(face.rig.targets(script(i))) for i in range(N)]
    t = np.arange(int(N / FPS * 48000)) / 48000
    audio = Audio((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    folder = tmp_path_factory.mktemp("clip")
    return write_video(folder / "synthetic.mp4", frames, audio, fps=FPS)


def test_motion_is_recovered_from_the_driver(clip):
    from talkface.motion.drive import motions_from_points
    from talkface.analysis.tracking import track_video

    track = track_video(clip)
    assert track.found.mean() > 0.95
    motions = motions_from_points(track.points)
    truth = [script(i) for i in range(len(motions))]
    yaw = np.array([m.yaw for m in motions])
    jaw = np.array([m.expression.jaw_open for m in motions])
    blink = np.array([m.expression.blink_left + m.expression.blink_right for m in motions]) / 2
    assert np.corrcoef(yaw, [m.yaw for m in truth])[0, 1] > 0.9
    assert np.corrcoef(jaw, [m.expression.jaw_open for m in truth])[0, 1] > 0.8
    assert blink[20:24].mean() > blink[:15].mean() + 0.3


def test_drive_cli_writes_video_with_audio(tmp_path, clip):
    import av
    from skimage import data
    from PIL import Image

    from talkface.cli import main

    image = tmp_path / "portrait.png"
    Image.fromarray(data.astronaut()).save(image)
    out = tmp_path / "driven.mp4"
    assert main(["drive", "--image", str(image), "--video", str(clip), "-o", str(out), "--size", "256"]) == 0
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (256, 256)
        assert any(s.type == "audio" for s in c.streams)
        n = sum(1 for _ in c.decode(v))
    assert abs(n - N) <= 1


def test_drive_bad_input_is_a_usage_error(tmp_path, capsys):
    from talkface.cli import main

    assert main(["drive", "--image", "nope.png", "--video", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_drive_without_a_face_is_a_usage_error(tmp_path, capsys):
    from skimage import data
    from PIL import Image

    from talkface.cli import main
    from talkface.output.video import write_video

    grey = [np.full((128, 128, 3), 120, np.uint8)] * 5
    video = write_video(tmp_path / "grey.mp4", grey, None, fps=FPS)
    image = tmp_path / "portrait.png"
    Image.fromarray(data.astronaut()).save(image)
    assert main(["drive", "--image", str(image), "--video", str(video), "-o", str(tmp_path / "o.mp4")]) == 2
    assert "no face" in capsys.readouterr().err


def test_eval_reenact_beats_the_static_baseline(tmp_path, clip):
    from talkface.cli import main

    out = tmp_path / "reenact.json"
    sheets = tmp_path / "sheets"
    assert main(["eval", "reenact", "--videos", str(clip.parent), "--json", str(out), "--sheet", str(sheets),
                 "--max-seconds", "1.2", "--no-identity"]) == 0
    report = json.loads(out.read_text())
    (video,) = report["videos"]
    for key in ("psnr_face", "ssim_face", "psnr", "ssim", "landmark_nme", "id_distance",
                "static_psnr_face", "static_ssim_face", "static_landmark_nme"):
        assert key in video and key in report["mean"]
    assert video["landmark_nme"] < 0.5 * video["static_landmark_nme"]
    assert video["psnr_face"] > video["static_psnr_face"]
    assert (sheets / "synthetic.png").is_file()


def test_real_clip_drives(tmp_path):
    from conftest import shared_path

    from talkface.motion.drive import motions_from_points
    from talkface.analysis.tracking import track_video

    video = shared_path("videos", "video_woman_hdtf_06.mp4")
    track = track_video(video, max_seconds=1.0)
    motions = motions_from_points(track.points, eye_reference="typical")   # driving another face
    assert len(motions) == len(track.times) > 20
    jaw = np.array([m.expression.jaw_open for m in motions])
    assert jaw.max() > 0.15, "a speaking driver opens the mouth"
    assert all(abs(m.yaw) < 30 and abs(m.roll) < 30 for m in motions)
    # re-enacting its own first frame (open-mouthed here): that mouth is the rest, reproduced
    # exactly at frame 0 and closed part of the way as the speaker's lips come together
    own = motions_from_points(track.points)
    rest = np.array([m.expression.mouth_rest for m in own])
    assert rest[0] > 0.95 and abs(own[0].expression.jaw_open) < 0.02
    assert rest.min() < 0.5
