"""Face and head dynamics: generated vs real, measured by the same extractor.

    talkface eval dynamics --videos ../shared/data/videos --audio ../shared/data/audio --json dyn.json

Real: every video in --videos is tracked with `tracking.track_video` (its own timestamps).
Generated: talkface renders (no watermark) each clip in --audio on the built-in portrait,
and each video's own audio on that video's first frame; the rendered frames are tracked
with `tracking.track_frames`. Both tracks are resampled to 25 fps and measured alike:

- delta_pose_deg: mean absolute per-frame change of yaw, pitch, roll (averaged over axes)
- pose_std_deg: standard deviation of each pose angle over a clip (averaged over axes)
- blinks_per_min: dips of the eye aperture (landmarks.eye_aperture) below 65% of its
  running baseline, at least 0.25 s apart
- gaze_camera_share: share of frames whose gaze (head pose + eye-in-head angle from the
  iris) lies within 6 degrees of the clip's median gaze, i.e. the direction held most
  (the camera, in talking-head footage)
- motion_speech_corr: Pearson correlation of head-motion energy (per-frame pose change,
  0.5 s smoothing) with speech energy (audio RMS in dB above the clip's floor, same
  smoothing)

Landmark jitter adds to every per-frame figure, on real and generated video alike.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from talkface.errors import InputError

FPS = 25.0
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
AUDIO_EXT = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".aac", ".opus"}
METRICS = ("delta_pose_deg", "pose_std_deg", "blinks_per_min", "gaze_camera_share", "motion_speech_corr")
BLINK_DROP = 0.65          # a blink: aperture below this share of the running baseline
BLINK_MIN_GAP_S = 0.25
GAZE_HOLD_DEG = 6.0
SMOOTH_S = 0.5


# ----------------------------------------------------------------------------- measurements
def resample(times, values, fps: float = FPS):
    """(T, ...) values at arbitrary timestamps -> a uniform grid; gaps (NaN) interpolated."""
    import numpy as np

    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    flat = values.reshape(len(values), -1)
    ok = np.all(np.isfinite(flat), axis=1)
    if ok.sum() < 2:
        return np.full((0,) + values.shape[1:], np.nan)
    grid = np.arange(times[ok][0], times[ok][-1] + 1e-9, 1.0 / fps)
    out = np.stack([np.interp(grid, times[ok], flat[ok, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape((len(grid),) + values.shape[1:])


def face_series(track):
    """Per tracked frame: yaw, pitch, roll, eye aperture (mean of both eyes), gaze yaw, gaze pitch."""
    import numpy as np

    from talkface.analysis import landmarks as lm

    rows = []
    for p in track.points:
        if not np.isfinite(p[0, 0]):
            rows.append([np.nan] * 6)
            continue
        y, pi, r = lm.head_pose_deg(p)
        ap = 0.5 * (lm.eye_aperture(p, "right") + lm.eye_aperture(p, "left"))
        gy, gp = lm.gaze_deg(p)
        rows.append([y, pi, r, ap, gy, gp])
    return np.array(rows, np.float64).reshape(-1, 6)


def _smooth(x, seconds: float = SMOOTH_S, fps: float = FPS):
    import numpy as np

    n = max(1, int(round(seconds * fps)))
    k = np.hanning(n + 2)[1:-1]
    k /= k.sum()
    return np.convolve(np.pad(x, (n // 2, n - 1 - n // 2), mode="edge"), k, mode="valid")


def count_blinks(aperture, fps: float = FPS) -> int:
    """Dips of the eye aperture below BLINK_DROP x its running baseline (the 80th percentile
    over 2 s), one blink per dip, dips at least BLINK_MIN_GAP_S apart."""
    import numpy as np
    from scipy.ndimage import percentile_filter

    a = np.asarray(aperture, np.float64)
    if len(a) < 3:
        return 0
    base = percentile_filter(a, 80, size=max(3, int(2.0 * fps)), mode="nearest")
    closed = a < BLINK_DROP * base
    blinks, last = 0, -10**9
    i = 0
    while i < len(a):
        if closed[i]:
            j = i
            while j + 1 < len(a) and closed[j + 1]:
                j += 1
            centre = i + int(np.argmin(a[i:j + 1]))
            if centre - last >= BLINK_MIN_GAP_S * fps:
                blinks += 1
                last = centre
            i = j + 1
        else:
            i += 1
    return blinks


def speech_energy(samples, rate: int, n_frames: int, fps: float = FPS):
    """Audio RMS per video frame, dB above the clip's 10th percentile, floored at 0."""
    import numpy as np

    hop = rate / fps
    out = np.zeros(n_frames)
    for i in range(n_frames):
        seg = samples[int(i * hop): int((i + 1) * hop)]
        out[i] = 10 * np.log10(np.mean(seg.astype(np.float64) ** 2) + 1e-10) if len(seg) else -100.0
    floor = np.percentile(out, 10)
    return np.maximum(out - floor, 0.0)


def clip_stats(series, fps: float = FPS, energy=None) -> dict:
    """The dynamics figures of one clip from its face_series already resampled to `fps`."""
    import numpy as np

    pose, ap, gaze = series[:, :3], series[:, 3], series[:, 4:6]
    d = np.abs(np.diff(pose, axis=0))
    out = {
        "seconds": round(len(series) / fps, 2),
        "delta_pose_deg": float(d.mean()),
        "delta_pose_axes_deg": [round(float(v), 3) for v in d.mean(axis=0)],
        "pose_std_deg": float(pose.std(axis=0).mean()),
        "pose_std_axes_deg": [round(float(v), 3) for v in pose.std(axis=0)],
        "blinks": count_blinks(ap, fps),
    }
    out["blinks_per_min"] = out["blinks"] / max(len(series) / fps, 1e-6) * 60.0
    direction = gaze + pose[:, :2]        # eye-in-head + head: where the eyes point in the camera frame
    off = np.linalg.norm(direction - np.median(direction, axis=0), axis=1)
    out["gaze_camera_share"] = float(np.mean(off < GAZE_HOLD_DEG))
    if energy is not None and len(energy) >= len(series):
        motion = _smooth(np.concatenate([[0.0], np.linalg.norm(np.diff(pose, axis=0), axis=1)]), fps=fps)
        speech = _smooth(np.asarray(energy[:len(series)], np.float64), fps=fps)
        if motion.std() > 1e-9 and speech.std() > 1e-9:
            out["motion_speech_corr"] = float(np.corrcoef(motion, speech)[0, 1])
    return out


def summarise(clips: dict) -> dict:
    """Means over clips (blinks: total blinks over total minutes)."""
    import numpy as np

    vals = list(clips.values())
    if not vals:
        return {}
    out = {}
    for m in ("delta_pose_deg", "pose_std_deg", "gaze_camera_share", "motion_speech_corr"):
        xs = [v[m] for v in vals if m in v]
        if xs:
            out[m] = round(float(np.mean(xs)), 4)
    minutes = sum(v["seconds"] for v in vals) / 60.0
    out["blinks_per_min"] = round(sum(v["blinks"] for v in vals) / max(minutes, 1e-6), 2)
    out["clips"] = len(vals)
    out["seconds"] = round(minutes * 60, 1)
    return out


def measure_track(track, samples=None, rate: int = 16000) -> dict | None:
    """The clip's figures, or None when the face was found on too little of it (< 2 s)."""
    series = resample(track.times, face_series(track))
    if len(series) < 2 * FPS:
        return None
    energy = speech_energy(samples, rate, len(series)) if samples is not None else None
    return clip_stats(series, FPS, energy)


# ----------------------------------------------------------------------------- real and generated
def _files(folder: Path, exts: set) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in exts)


def first_frame(path: Path):
    import av

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise InputError(f"no video frames in {path}")


def render_and_track(face, audio, seed: int, controls=None, name: str = "generated"):
    """Render talkface output (no watermark) for `audio` and track the frames."""
    import numpy as np

    from talkface.analysis.tracking import track_frames
    from talkface.engine import GenerateOptions, generate

    opts = GenerateOptions(fps=FPS, seed=seed, watermark_id=None, **({"controls": controls} if controls else {}))
    frames = [f.image for f in generate(face, audio, opts)]
    return track_frames(frames, times=np.arange(len(frames)) / FPS, name=name)


def run_real(videos: list[Path], max_seconds: float | None, log) -> dict:
    from talkface.analysis.audio import load_audio
    from talkface.analysis.tracking import track_video

    out = {}
    for v in videos:
        track = track_video(v, max_seconds=max_seconds)
        audio = load_audio(v)
        stats = measure_track(track, audio.samples, audio.sample_rate)
        if stats is None:
            log(f"real {v.stem}: face tracked on too few frames; skipped")
            continue
        out[v.stem] = stats
        log(f"real {v.stem}: " + _fmt(stats))
    return out


def run_generated(videos: list[Path], audios: list[Path], max_seconds: float | None, seed: int, log) -> dict:
    from talkface.analysis.audio import SAMPLE_RATE, checked_audio, load_audio
    from talkface.analysis.portrait import Portrait, PortraitError
    from talkface.engine import FaceModel

    out = {}
    builtin = FaceModel(Portrait.builtin())
    jobs = [(a.stem, a, None) for a in audios] + [(f"{v.stem}_own_audio", v, v) for v in videos]
    for i, (name, src, video) in enumerate(jobs):
        audio = load_audio(src)
        if max_seconds is not None and audio.duration > max_seconds:
            audio = checked_audio(audio.samples[: int(max_seconds * SAMPLE_RATE)], SAMPLE_RATE)
        face = builtin
        if video is not None:
            try:
                face = FaceModel(Portrait.from_image(first_frame(video), name=video.stem))
            except PortraitError as exc:
                log(f"{video.name}: first frame unusable ({exc}); using the built-in portrait")
        track = render_and_track(face, audio, seed + i, name=name)
        stats = measure_track(track, audio.samples, SAMPLE_RATE)
        if stats is None:
            log(f"generated {name}: face tracked on too few frames; skipped")
            continue
        out[name] = stats
        log(f"generated {name}: " + _fmt(stats))
    return out


def _fmt(stats: dict) -> str:
    return ", ".join(f"{k}={stats[k]:.3g}" for k in METRICS if k in stats)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, help="folder of real talking-face videos with their own audio")
    p.add_argument("--audio", required=True, help="folder of speech/singing clips to animate the built-in portrait with")
    p.add_argument("--json", help="write {'real': ..., 'generated': ...} to this file")
    p.add_argument("--max-seconds", type=float, default=20.0, help="use at most this much of each clip; default 20")
    p.add_argument("--seed", type=int, default=0, help="motion seed of the first generated clip; default 0")
    p.add_argument("--no-own-audio", action="store_true", help="skip re-animating the videos' first frames with their audio")


def run(args: argparse.Namespace) -> int:
    videos_dir, audio_dir = Path(args.videos), Path(args.audio)
    for d, what in ((videos_dir, "--videos"), (audio_dir, "--audio")):
        if not d.is_dir():
            raise InputError(f"{what} folder not found: {d}")
    videos, audios = _files(videos_dir, VIDEO_EXT), _files(audio_dir, AUDIO_EXT)
    if not videos:
        raise InputError(f"no videos in {videos_dir}")
    if not audios:
        raise InputError(f"no audio clips in {audio_dir}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    real = run_real(videos, args.max_seconds, log)
    gen = run_generated([] if args.no_own_audio else videos, audios, args.max_seconds, args.seed, log)
    result = {"real": summarise(real), "generated": summarise(gen),
              "real_clips": real, "generated_clips": gen, "fps": FPS,
              "targets": {"within_rel_of_real": 0.30, "blinks_per_min": [8, 30], "motion_speech_corr": "> 0"}}
    result["checks"] = checks(result["real"], result["generated"])
    print(table(result["real"], result["generated"], result["checks"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def checks(real: dict, gen: dict) -> dict:
    out = {}
    for m in ("delta_pose_deg", "pose_std_deg", "gaze_camera_share", "blinks_per_min"):
        if m in real and m in gen and real[m]:
            out[f"{m}_within_30pct"] = bool(abs(gen[m] - real[m]) <= 0.3 * abs(real[m]))
    if "blinks_per_min" in gen:
        out["blinks_8_30_per_min"] = bool(8 <= gen["blinks_per_min"] <= 30)
    if "motion_speech_corr" in gen:
        out["motion_speech_corr_positive"] = bool(gen["motion_speech_corr"] > 0)
    return out


def table(real: dict, gen: dict, check: dict) -> str:
    lines = [f"{'metric':<22}{'real':>10}{'generated':>12}"]
    for m in METRICS:
        r, g = real.get(m, float("nan")), gen.get(m, float("nan"))
        lines.append(f"{m:<22}{r:>10.3f}{g:>12.3f}")
    lines.append("checks: " + ", ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in check.items()))
    return "\n".join(lines)

