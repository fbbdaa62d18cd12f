"""Face and head dynamics: generated vs real, measured by the same extractor.

    talkface eval dynamics --videos ../shared/data/videos --audio ../shared/data/audio --json dyn.json

Real: every video in --videos is tracked with `tracking.track_video` (its own timestamps).
Generated: talkface renders (no watermark) each clip in --audio on the built-in portrait,
and each video's own audio on that video's first frame; the rendered frames are tracked
with `tracking.track_frames`. Both tracks are resampled to 25 fps and measured alike:

the figures of `evaluation.dynamics_metrics` (head-pose change and spread, blinks per
minute, share of time gazing at the camera, head motion vs speech energy, and the Frechet
distance of 2 s windows).

    talkface eval dynamics --cache CACHE --json cv.json

Speaker-disjoint cross-validation over `talkface data prepare`'s cache: per fold the
learned motion is fitted without the held-out speakers, each held-out clip's own audio
animates the built-in portrait with each motion source (--sources), and the rendered
frames are tracked and measured like the real clip.

Landmark jitter adds to every per-frame figure, on real and generated video alike.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from talkface.motion.metrics import (  # noqa: F401
    FPS,
    METRICS,
    clip_stats,
    count_blinks,
    face_series,
    frechet_distance,
    resample,
    speech_energy,
    summarise,
    window_features,
)

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
AUDIO_EXT = {".wav", ".mp3", ".m4a", ".flac", ".ogg", ".aac", ".opus"}


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
    raise ValueError(f"no video frames in {path}")


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


def run_cache(cache: str, sources: list[str], folds: int, max_seconds: float, seed: int, log) -> dict:
    """Speaker-disjoint cross-validation on the prepared cache, measured on rendered video:
    per fold the learned model is fitted without the held-out speakers; each held-out clip's
    own audio animates the built-in portrait with each motion source, the frames are tracked
    and measured like the real clip (whose figures come from the cache's tracking)."""
    import json as _json

    import numpy as np

    from talkface.analysis.audio import SAMPLE_RATE, checked_audio, load_audio
    from talkface.analysis.portrait import Portrait
    from talkface.engine import Animator, FaceModel, GenerateOptions, generate
    from talkface.motion.generator import MotionGenerator
    from talkface.training.motion import fit, frame_energy, load_cache, prepare, real_series, speaker_folds

    face = FaceModel(Portrait.builtin())
    metas = {m["clip"]: m for m in _json.loads((Path(cache) / "index.json").read_text())["clips"].values()}
    preps = [p for p in (prepare(c) for c in load_cache(cache, max_seconds, log)) if p.valid.sum() >= 2 * FPS]
    tables = {name: {} for name in ["real"] + sources}
    windows = {name: [] for name in tables}
    for f, held in enumerate(speaker_folds(preps, folds, seed)):
        model = fit([p for i, p in enumerate(preps) if i not in held]) if "learned" in sources else None
        for i in held:
            p = preps[i]
            audio = load_audio(metas[p.clip.name]["source"])
            audio = checked_audio(audio.samples[: int(len(p.valid) / FPS * SAMPLE_RATE)], SAMPLE_RATE)
            s = real_series(p)
            tables["real"][p.clip.name] = clip_stats(s, FPS, frame_energy(p.clip.rms_db, len(p.valid))[p.valid])
            windows["real"].append(window_features(s))
            for src in sources:
                opts = GenerateOptions(fps=FPS, seed=seed + i, watermark_id=None, motion=src)
                anim = Animator(face, opts)
                anim.motion = MotionGenerator(FPS, seed + i, rest_gaze=face.rest_gaze, source=src, model=model)
                track = _track_frames([fr.image for fr in generate(face, audio, opts, animator=anim)])
                series = resample(track.times, face_series(track))
                tables[src][p.clip.name] = clip_stats(series, FPS, speech_energy(audio.samples, SAMPLE_RATE, len(series)))
                windows[src].append(window_features(series))
                log(f"fold {f + 1} {p.clip.name} {src}: " + _fmt(tables[src][p.clip.name]))
    out = {name: {"summary": summarise(t), "clips": t} for name, t in tables.items()}
    real_w = np.concatenate(windows["real"])
    for src in sources:
        out[src]["summary"]["frechet"] = round(frechet_distance(real_w, np.concatenate(windows[src])), 3)
    return out


def _track_frames(frames):
    import numpy as np

    from talkface.analysis.tracking import track_frames

    return track_frames(frames, times=np.arange(len(frames)) / FPS)


def _fmt(stats: dict) -> str:
    return ", ".join(f"{k}={stats[k]:.3g}" for k in METRICS if k in stats)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", help="folder of real talking-face videos with their own audio")
    p.add_argument("--audio", help="folder of speech/singing clips to animate the built-in portrait with")
    p.add_argument("--cache", help="instead: speaker-disjoint cross-validation over this prepared cache (rendered)")
    p.add_argument("--sources", default="learned,procedural", help="with --cache: motion sources to render")
    p.add_argument("--folds", type=int, default=5, help="with --cache: folds; default 5")
    p.add_argument("--json", help="write {'real': ..., 'generated': ...} to this file")
    p.add_argument("--max-seconds", type=float, default=20.0, help="use at most this much of each clip; default 20")
    p.add_argument("--seed", type=int, default=0, help="motion seed of the first generated clip; default 0")
    p.add_argument("--no-own-audio", action="store_true", help="skip re-animating the videos' first frames with their audio")


def run(args: argparse.Namespace) -> int:
    if args.cache:
        return run_cross_validation(args)
    if not args.videos or not args.audio:
        raise ValueError("give --videos and --audio, or --cache")
    videos_dir, audio_dir = Path(args.videos), Path(args.audio)
    for d, what in ((videos_dir, "--videos"), (audio_dir, "--audio")):
        if not d.is_dir():
            raise ValueError(f"{what} folder not found: {d}")
    videos, audios = _files(videos_dir, VIDEO_EXT), _files(audio_dir, AUDIO_EXT)
    if not videos:
        raise ValueError(f"no videos in {videos_dir}")
    if not audios:
        raise ValueError(f"no audio clips in {audio_dir}")

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


def run_cross_validation(args: argparse.Namespace) -> int:
    if not (Path(args.cache) / "index.json").is_file():
        raise ValueError(f"no prepared cache in {args.cache}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    result = run_cache(args.cache, sources, args.folds, args.max_seconds, args.seed, log)
    for name in result:
        print(f"{name:<11}" + ", ".join(f"{k}={v}" for k, v in result[name]["summary"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
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

