"""`talkface bench`: per-stage timings and end-to-end frames per second, printed and
optionally written as JSON. A command, not a test: it reports what this machine does."""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _bench_audio(seconds: float, path: str | None):
    from talkface.analysis.audio import SAMPLE_RATE, checked_audio, load_audio
    from talkface.analysis.speech import speak

    if path:
        audio = load_audio(path)
    else:
        spoken = speak("This is talkface, a portrait that talks. It runs on an ordinary processor, "
                       "with no graphics card, and it starts speaking at once.")
        audio = checked_audio(spoken.samples, spoken.sample_rate)
        pause = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
        audio = checked_audio(np.concatenate([audio.samples, pause]), SAMPLE_RATE)
    reps = int(np.ceil(seconds * SAMPLE_RATE / len(audio.samples)))
    samples = np.tile(audio.samples, reps)[: int(seconds * SAMPLE_RATE)]
    return checked_audio(samples, SAMPLE_RATE)


def run_file_bench(seconds: float = 30.0, size: int = 512, fps: float = 25.0, image: str | None = None,
                   audio_path: str | None = None, workers: int | None = None) -> dict:
    from talkface.analysis.audio import extract_features
    from talkface.analysis.portrait import Portrait
    from talkface.engine import RENDER_WORKERS, Animator, FaceModel, GenerateOptions, generate, in_background
    from talkface.output.video import Mp4Writer

    audio = _bench_audio(seconds, audio_path)
    Portrait.builtin(64) if image is None else None  # warm the face models so their one-off load is not counted

    workers = RENDER_WORKERS if workers is None else workers
    # the whole clip's features at once, timed for the table but outside the end-to-end window:
    # the pipeline computes them only as it streams (in `generate`), which the window counts
    t0 = time.perf_counter()
    extract_features(audio)
    t_audio_once = time.perf_counter() - t0

    t_start, cpu_start = time.perf_counter(), time.process_time()
    t0 = time.perf_counter()
    portrait = Portrait.from_file(image, size=size) if image else Portrait.builtin(size)
    face = FaceModel(portrait)
    t_portrait = time.perf_counter() - t0

    options = GenerateOptions(fps=fps, seed=0)
    anim = Animator(face, options)
    encode = 0.0
    out = Path(tempfile.mkdtemp(prefix="talkface-bench-")) / "bench.mp4"
    writer = Mp4Writer(out, size, fps, audio)
    n = 0
    with writer:
        for frame in in_background(generate(face, audio, options, animator=anim, workers=workers)):
            t0 = time.perf_counter()
            writer.write(frame.image)
            encode += time.perf_counter() - t0  # overlaps rendering of the next frames
            n += 1
        t0 = time.perf_counter()
    encode += time.perf_counter() - t0  # flushing the encoder and muxing audio
    total, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    out.unlink(missing_ok=True)
    out.parent.rmdir()
    times = anim.times
    per = lambda s: 1000.0 * s / max(n, 1)  # noqa: E731
    return {
        "fps": n / total,
        "frames": n,
        "seconds_of_audio": audio.duration,
        "size": size,
        "wall_seconds": total,
        "cpu_ms_per_frame": per(cpu),   # all threads, analysis and encoding included
        "render_workers": workers,
        "stages_ms": {
            "portrait_analysis_once": 1000.0 * t_portrait,
            "audio_analysis_once": 1000.0 * t_audio_once,
            "audio": per(times.audio),
            "motion": per(times.motion),
            "render": per(times.render),
            "watermark": per(times.watermark),
            "encode": per(encode),
        },
        "cpu_count": os.cpu_count(),
    }


FLOOR_FRAMES = 250   # frames the floor is measured over


def run_floor_bench(size: int = 512, fps: float = 25.0, frames: int = FLOOR_FRAMES) -> dict:
    """The physical floor on this machine: what a renderer that did nothing but one bare
    `cv2.remap` of the frame (bilinear, float maps, a moving shift) would cost, plus encoding
    that frame with the same writer. Wall clock and CPU time for each (CPU time counts all
    threads; the machine may be shared)."""
    import cv2

    from talkface.analysis.portrait import Portrait
    from talkface.output.video import Mp4Writer

    image = cv2.resize(Portrait.builtin(size).image, (size, size))
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    images = []
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(frames):
        shift = 2.0 * np.sin(i / 5.0)
        images.append(cv2.remap(image, grid_x + shift, grid_y + 0.5 * shift, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE))
    remap_wall, remap_cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = Path(tempfile.mkdtemp(prefix="talkface-floor-")) / "floor.mp4"
    wall, cpu = time.perf_counter(), time.process_time()
    with Mp4Writer(out, size, fps) as writer:
        for im in images:
            writer.write(im)
    encode_wall, encode_cpu = time.perf_counter() - wall, time.process_time() - cpu
    out.unlink(missing_ok=True)
    out.parent.rmdir()
    per = lambda s: 1000.0 * s / frames  # noqa: E731
    return {"remap_ms": per(remap_wall), "remap_cpu_ms": per(remap_cpu), "encode_ms": per(encode_wall),
            "encode_cpu_ms": per(encode_cpu), "fps": frames / (remap_wall + encode_wall)}


def run_bench(args) -> int:
    if getattr(args, "soak", False):
        from talkface.evaluation.soak import run_soak_command

        return run_soak_command(args)
    if args.stream:
        result = _run_stream(args)
    else:
        result = run_file_bench(args.seconds or 30.0, args.size, args.fps or 25.0, args.image, args.audio)
        print(f"{result['frames']} frames of {result['size']}x{result['size']} from {result['seconds_of_audio']:.1f} s of audio "
              f"in {result['wall_seconds']:.1f} s")
        for stage, ms in result["stages_ms"].items():
            unit = "ms" if stage.endswith("_once") else "ms/frame"
            print(f"  {stage:24s} {ms:8.2f} {unit}")
        print(f"  end-to-end               {result['fps']:8.1f} fps (analysis and encoding included)")
        floor = result["floor"] = run_floor_bench(args.size, args.fps or 25.0)
        print(f"  floor: bare remap {floor['remap_ms']:.2f} ms + encode {floor['encode_ms']:.2f} ms per frame "
              f"(CPU {floor['remap_cpu_ms']:.2f} + {floor['encode_cpu_ms']:.2f}) = {floor['fps']:.1f} fps; "
              f"end-to-end is {result['fps'] / floor['fps']:.2f} of it")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _run_stream(args) -> dict:
    from talkface.evaluation.bench_stream import run_stream_bench

    sessions = getattr(args, "sessions", None) or 1
    trials = getattr(args, "trials", None)
    result = run_stream_bench(seconds=args.seconds or 300.0, sessions=sessions, size=args.size,
                              fps=args.fps or 40.0, trials=20 if trials is None else trials)
    print(f"streaming, {sessions} session(s), {args.size}x{args.size} at {args.fps or 40.0:g} fps")
    for key, value in result.items():
        if key != "per_session":
            print(f"  {key:26s} {value:10.1f}" if isinstance(value, float) else f"  {key:26s} {value}")
    for i, s in enumerate(result["per_session"]):
        print(f"  session {i}: {s['fps']:.1f} fps, {s['dropped_frames']} dropped, {s['late_frames']} late, "
              f"first frame {s['first_frame_ms'] or float('nan'):.0f} ms, CPU {s['cpu_ms_per_frame']:.1f} ms per frame")
    return result
