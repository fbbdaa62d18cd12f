"""The real-data pipeline (`talkface data prepare`): fields, offsets, rejections with
reasons, speaker ids, resume; on a clip talkface renders itself, and on a real one."""
import json

import numpy as np
import pytest

from talkface.data.cache import PreparedCache
from talkface.data.prepare import prepare
from talkface.data.quality import REASONS, frame_reasons


@pytest.fixture(scope="module")
def clips(tmp_path_factory, face):
    """A talking clip rendered by talkface (built-in portrait, espeak speech) and a clip without a face."""
    import av

    import talkface
    from talkface.analysis.audio import SAMPLE_RATE, checked_audio
    from talkface.analysis.speech import speak

    folder = tmp_path_factory.mktemp("clips")
    spoken = speak("Bob and Mama bought a map. Peter met me.")
    voice = checked_audio(spoken.samples, spoken.sample_rate).samples
    pause = np.zeros(SAMPLE_RATE // 2, np.float32)
    audio = checked_audio(np.concatenate([pause, voice, pause]), SAMPLE_RATE)
    talkface.write_video(folder / "rendered_speaker.mp4", talkface.generate(face, audio), audio)
    with av.open(str(folder / "blank.mp4"), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 128, 128, "yuv420p"
        for i in range(50):
            img = np.full((128, 128, 3), 90 + i, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    speakers = folder / "speakers.tsv"
    speakers.write_text("rendered_speaker.mp4\tastronaut\n")
    return folder, speakers


@pytest.fixture(scope="module")
def prepared(clips, tmp_path_factory):
    folder, speakers = clips
    out = tmp_path_factory.mktemp("cache")
    index = prepare([str(folder)], out, workers=1, speakers=str(speakers), log=lambda s: None)
    return out, index


def test_rendered_clip_is_cached_with_every_field(prepared):
    out, index = prepared
    meta = index["clips"]["rendered_speaker"]
    assert meta["speaker"] == "astronaut" and meta["use_lipsync"] and meta["rejected"] is None
    clip = PreparedCache(out).load("rendered_speaker")
    t = len(clip.times)
    assert t > 50 and np.all(np.diff(clip.times) > 0)
    assert clip.usable.all()
    for name, width in (("mouth", 4), ("pose", 3), ("eyes", 2), ("gaze", 2), ("brows", 2), ("face", 3)):
        arr = getattr(clip, name)
        assert arr.shape == (t, width) and np.isfinite(arr).all(), name
    assert clip.points().shape == (t, 478, 3)
    assert clip.features is not None and clip.features.log_mel.shape[1] == 40
    assert abs(len(clip.features) / 100.0 - clip.times[-1]) < 0.2
    # the mouth opens while talkface speaks and the loudness follows it: a positive correlation
    # at a lag inside the window; a 2.5 s clip is too short to correct, so it is taken as recorded
    assert meta["av_r"] > 0.2 and abs(meta["av_lag_s"]) <= 0.4
    assert meta["av_offset_s"] == 0.0 and np.allclose(clip.aligned_times, clip.times)
    assert clip.mouth[:, 0].max() > clip.mouth[:, 0].min() + 0.05


def test_clip_without_a_face_is_rejected_with_the_reason(prepared):
    out, index = prepared
    meta = index["clips"]["blank"]
    assert meta["rejected"].startswith("no face") and not meta["use_motion"] and not meta["use_lipsync"]
    assert meta["rejected_stretches"][0]["reason"] == "no face"
    assert PreparedCache(out).names(use="motion") == ["rendered_speaker"]


def test_resume_skips_complete_clips_and_redoes_broken_ones(prepared, clips):
    out, _ = prepared
    folder, speakers = clips
    good, blank = out / "rendered_speaker.npz", out / "blank.npz"
    stamp = good.stat().st_mtime_ns
    blank.write_bytes(b"interrupted")               # a broken file is not complete
    logs = []
    index = prepare([str(folder)], out, workers=1, speakers=str(speakers), log=logs.append)
    assert "1 already cached, 1 to track" in logs[0]
    assert good.stat().st_mtime_ns == stamp
    assert index["clips"]["blank"]["rejected"].startswith("no face")
    assert json.loads((out / "index.json").read_text())["clips"].keys() == {"rendered_speaker", "blank"}


def test_frame_checks_name_jumps_small_faces_and_several_faces():
    times = np.arange(100) / 25.0
    face = np.tile([100.0, 100.0, 40.0], (100, 1))
    face[50:, 0] += 30.0             # the face jumps 0.75 IOD in one frame
    face[80:, 2] = 10.0              # and then is tiny
    faces = np.ones(100, int)
    faces[:20] = 2
    reason = frame_reasons(times, face, faces)
    assert REASONS[reason[10]] == "several faces"
    assert REASONS[reason[50]] == "tracking jump" and reason[30] == -1
    assert REASONS[reason[90]] == "face too small"


@pytest.mark.shared
def test_real_grid_clip(tmp_path):
    from conftest import shared_path

    clip = shared_path("train_videos", "video_m_grid-swwp2s_21.mpg")
    index = prepare([str(clip)], tmp_path, workers=1, log=lambda s: None)
    meta = index["clips"]["video_m_grid-swwp2s_21"]
    assert meta["speaker"] == "grid-id2"                   # the same GRID speaker as _27
    assert meta["use_lipsync"] and meta["usable_s"] > 2.5
    assert meta["av_r"] > 0.2
    c = PreparedCache(tmp_path).load("video_m_grid-swwp2s_21")
    assert np.isfinite(c.pose).all() and np.abs(c.pose[:, 0]).max() < 30


def test_eval_lipsync_render_skips_clips_without_usable_frames_to_render(prepared, tmp_path):
    """A clip whose rendered span (its first seconds) was all rejected is scored without the
    render and says why; a clip with no usable frame at all is skipped with a reason."""
    import shutil

    from talkface.evaluation.lipsync_eval import evaluate_cache

    out, _ = prepared
    cache = tmp_path / "cache"
    shutil.copytree(out, cache)
    index = json.loads((cache / "index.json").read_text())
    with np.load(cache / "rendered_speaker.npz") as z:
        arrays = {k: z[k] for k in z.files}
    late = arrays["usable"] & (arrays["times"] > 2.0)
    np.savez(cache / "late_start.npz", **{**arrays, "usable": late})
    np.savez(cache / "all_rejected.npz", **{**arrays, "usable": np.zeros_like(arrays["usable"])})
    meta = index["clips"].pop("rendered_speaker")
    index["clips"] = {name: {**meta, "clip": name, "file": f"{name}.npz"} for name in ("late_start", "all_rejected")}
    (cache / "index.json").write_text(json.dumps(index))
    logs = []
    result = evaluate_cache(str(cache), render=True, render_seconds=1.5, log=logs.append)
    assert [r["name"] for r in result["clips"]] == ["late_start"]
    row = result["clips"][0]
    assert np.isfinite(row["r_open"]) and np.isnan(row["rendered_r_open"])
    assert any(s.startswith("late_start: not rendered (only 0 usable frames in its first 1.5 s") for s in logs)
    assert any(s.startswith("all_rejected: skipped") for s in logs)
