"""`talkface bench --stream`: the live stream measured, one session or N at once.

    talkface bench --stream --sessions 4 --fps 25 --seconds 300 --json F

First-frame latency comes from `trials` fresh sessions run one after another on an idle
engine; then `sessions` streams run concurrently in one process (one shared portrait, as the
server runs them, their frames made by one shared FramePool, earliest deadline first), each fed synthesised speech in real time in `chunk_ms` chunks and
JPEG-encoding every frame as the web app does. The JSON keeps the one-session keys, now over
all sessions (`fps`: the slowest session's sustained rate, `dropped_frames`: the sum), and
adds `per_session`; `live_frame_ms` (core-ms per frame with the pool saturated) and
`admitted_sessions` are what `talkface serve` measures at start and admits from it
(talkface.live.capacity), to set beside the drops.
A command, not a test: it reports what this machine does.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from talkface.analysis.audio import SAMPLE_RATE
from talkface.engine import Animator, FaceModel, GenerateOptions
from talkface.live.framepool import FramePool
from talkface.live.stream import AvatarStream

RSS_SAMPLE_S = 10.0       # how often each session samples resident memory
OVERRUN_S = 10.0          # a session stops this long after its speech should have ended
IDLE_BEFORE_S = 0.3       # each session idles this long (plus a random fraction of a frame) first
BENCH_LINES = ("Hello! I am a talking portrait, streaming live from a single photo.",
               "Every frame you see is rendered on the processor, in real time, as the words arrive.",
               "When I stop talking, I keep breathing and blinking, and I wait for you.")
PAUSE_S = 0.4


def rss_mb() -> float:
    """This process's resident memory now (Linux), or its peak elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_speech(seconds: float) -> np.ndarray:
    """Offline-synthesised speech with natural pauses, repeated to `seconds` (16 kHz)."""
    from talkface.analysis.audio import Audio, checked_audio
    from talkface.analysis.speech import speak

    parts = []
    for line in BENCH_LINES:
        s = speak(line)
        parts += [checked_audio(s.samples, s.sample_rate).samples, Audio.silence(PAUSE_S).samples]
    one = np.concatenate(parts)
    reps = int(np.ceil(seconds * SAMPLE_RATE / len(one)))
    return np.tile(one, reps)[: int(seconds * SAMPLE_RATE)]


async def _feed(stream: AvatarStream, speech: np.ndarray, chunk_s: float, realtime: bool, started: list) -> None:
    """Push the speech in chunks (in real time, or all at once), then end the utterance;
    `started` gets the monotonic time of the first push."""
    loop = asyncio.get_running_loop()
    step = int(chunk_s * SAMPLE_RATE)
    t = loop.time()
    for a in range(0, len(speech), step):
        if not started:
            started.append(time.monotonic())
        stream.push_audio(speech[a:a + step], SAMPLE_RATE)
        if realtime:
            t += chunk_s
            await asyncio.sleep(max(0.0, t - loop.time()))
    stream.end_of_speech()


async def _first_frame_once(face, options, speech, chunk_s: float, realtime: bool, idle_s: float,
                            jpeg_quality: int) -> float:
    """ms from the first pushed chunk to the first picture that speech drove leaving the iterator."""
    stream = AvatarStream(face, options, jpeg_quality=jpeg_quality)
    frames = stream.frames()
    loop = asyncio.get_running_loop()
    started: list[float] = []
    pusher = None
    try:
        t_idle_end = loop.time() + idle_s
        async for f in frames:
            if pusher is None and loop.time() >= t_idle_end:
                pusher = asyncio.ensure_future(_feed(stream, speech, chunk_s, realtime, started))
            if started and f.speech and not f.repeated:
                return (f.released - started[0]) * 1000.0
    finally:
        if pusher is not None:
            pusher.cancel()
        await frames.aclose()
        stream.close()
    raise RuntimeError("stream ended before a speech frame")


class _Tally:
    """One sustained session's counts, updated frame by frame."""

    def __init__(self) -> None:
        self.count = self.rendered = 0
        self.t_first = self.t_last = None
        self.first_frame_ms = None
        self.rss: list[float] = []

    def add(self, f, started: list, fps: float) -> None:
        self.count += 1
        self.rendered += int(not f.repeated)
        self.t_last = f.released
        self.t_first = self.t_first or f.released
        if self.first_frame_ms is None and started and f.speech and not f.repeated:
            self.first_frame_ms = (f.released - started[0]) * 1000.0
        if self.count % int(RSS_SAMPLE_S * fps) == 0:
            self.rss.append(rss_mb())


async def _sustained(face, options, speech, chunk_s: float, jpeg_quality: int, idle_s: float,
                     pool: FramePool | None) -> dict:
    """One session streaming `speech` in real time after `idle_s` of idling."""
    stream = AvatarStream(face, options, jpeg_quality=jpeg_quality, pool=pool)
    loop = asyncio.get_running_loop()
    seconds = len(speech) / SAMPLE_RATE
    started: list[float] = []
    tally = _Tally()
    pusher = None
    frames = stream.frames()
    t_idle_end = loop.time() + idle_s
    try:
        async for f in frames:
            if pusher is None and loop.time() >= t_idle_end:
                pusher = asyncio.ensure_future(_feed(stream, speech, chunk_s, True, started))
            tally.add(f, started, options.fps)
            if pusher is not None and pusher.done() and stream.queued_seconds == 0 and not f.speech:
                break
            if tally.t_last - tally.t_first > seconds + idle_s + OVERRUN_S:
                break
    finally:
        if pusher is not None:
            pusher.cancel()
        await frames.aclose()
        stream.close()
    return _session_figures(stream, tally)


def _session_figures(stream: AvatarStream, tally: _Tally) -> dict:
    elapsed = (tally.t_last - tally.t_first) if tally.count > 1 else float("nan")
    times, stats = stream.animator.times, stream.stats
    return {"fps": (tally.rendered - 1) / elapsed, "released_fps": (tally.count - 1) / elapsed,
            "frames": tally.count, "rendered": tally.rendered, "elapsed_s": elapsed,
            "first_frame_ms": tally.first_frame_ms,
            **{k: stats[k] for k in ("skipped_frames", "dropped_frames", "late_frames", "max_late_ms",
                                     "underruns", "speech_frames")},
            "cpu_ms_per_frame": 1000 * stats["cpu_s"] / max(tally.rendered, 1),   # this session's rendered frames
            "skipped_cpu_ms_per_frame": 1000 * stats["skipped_cpu_s"] / max(stats["skipped_frames"], 1),
            "render_ms": 1000 * times.render / max(times.frames, 1),
            "watermark_ms": 1000 * times.watermark / max(times.frames, 1),
            "produce_ms": 1000 * stream.produce_seconds,
            "rss_mb_max": max(tally.rss, default=float("nan"))}


def _summary(per: list[dict], rss_base: float, rss_end: float, cpu_s: float) -> dict:
    """All sessions together, in the one-session keys."""
    rendered = sum(s["rendered"] for s in per)
    rss_max = max([rss_end] + [s["rss_mb_max"] for s in per if s["rss_mb_max"] == s["rss_mb_max"]])
    loaded = [s["first_frame_ms"] for s in per if s["first_frame_ms"] is not None]
    out = {"fps": min(s["fps"] for s in per), "released_fps": min(s["released_fps"] for s in per),
           "fps_mean": float(np.mean([s["fps"] for s in per])),
           "cpu_ms_per_frame": 1000 * cpu_s / max(rendered, 1),
           "rss_mb_start": rss_base, "rss_mb_end": rss_end, "rss_mb_max": rss_max,
           "rss_mb_per_session": (rss_max - rss_base) / len(per),
           "first_frame_loaded_ms_p50": float(np.percentile(loaded, 50)) if loaded else None,
           "first_frame_loaded_ms_p95": float(np.percentile(loaded, 95)) if loaded else None}
    for key in ("frames", "dropped_frames", "skipped_frames", "late_frames", "underruns", "speech_frames"):
        out[key] = sum(s[key] for s in per)
    out["max_late_ms"] = max(s["max_late_ms"] for s in per)
    for key in ("render_ms", "watermark_ms", "produce_ms"):
        out[key] = float(np.mean([s[key] for s in per]))
    out["session_cpu_ms_per_frame"] = float(np.mean([s["cpu_ms_per_frame"] for s in per]))
    return out


def run_stream_bench(seconds: float = 300, sessions: int = 1, size: int = 512, *, fps: float = 40.0,
                     trials: int = 20, chunk_ms: float = 20.0, jpeg_quality: int = 80, portrait=None,
                     shared_pool: bool = True) -> dict:
    """First-frame latency over `trials` fresh sessions, then `sessions` concurrent sessions each
    streaming `seconds` of speech in real time at `size` x `size` and `fps`.

    first_frame_ms: from pushing the first audio chunk to the first frame driven by it leaving
    the iterator, with speech arriving in real time (`first_frame_burst_ms_*`: the whole
    utterance pushed at once, as a fast TTS does; `first_frame_loaded_ms_*`: each concurrent
    session's own first frame, under the others' load). fps: rendered pictures per second of
    the slowest session (`released_fps` also counts frames whose picture was skipped).
    dropped_frames: skipped pictures plus frames released more than one period late, summed.
    """
    from talkface.analysis.portrait import Portrait
    from talkface.live.capacity import calibrate
    from talkface.live.config import measured_live_capacity

    face = FaceModel(portrait if portrait is not None else Portrait.builtin(size))
    options = GenerateOptions(fps=fps)
    cal = calibrate(face, fps)   # what `talkface serve` measures at start, and admits from it
    speech = bench_speech(max(seconds, 5.0))
    clip = speech[: int(2.0 * SAMPLE_RATE)]
    rng = np.random.default_rng(0)
    probe = Animator(face, options)
    lookahead_ms = 1000 * (probe.samples_needed(100) - probe.sample_at(100)) / SAMPLE_RATE
    chunk_s = chunk_ms / 1000

    def idle() -> float:   # a random phase against the frame clock
        return IDLE_BEFORE_S + float(rng.uniform(0, 1.0 / fps))

    async def main() -> dict:
        rt, burst = [], []
        for _ in range(trials):
            rt.append(await _first_frame_once(face, options, clip, chunk_s, True, idle(), jpeg_quality))
            burst.append(await _first_frame_once(face, options, clip, 0.5, False, idle(), jpeg_quality))
        rss_base, cpu0 = rss_mb(), time.process_time()
        pool = FramePool() if shared_pool else None   # as `talkface serve` makes the frames of all sessions
        try:
            per = await asyncio.gather(*[_sustained(face, options, speech[: int(seconds * SAMPLE_RATE)], chunk_s,
                                                    jpeg_quality, idle() + i / (fps * sessions), pool)
                                         for i in range(sessions)])
        finally:
            if pool is not None:
                pool.close()
        summary = _summary(per, rss_base, rss_mb(), time.process_time() - cpu0)
        pct = lambda xs, q: float(np.percentile(xs, q)) if xs else None  # noqa: E731
        return {"sessions": sessions, "fps": summary.pop("fps"), "dropped_frames": summary.pop("dropped_frames"),
                "first_frame_ms_p50": pct(rt, 50), "first_frame_ms_p95": pct(rt, 95),
                "first_frame_burst_ms_p50": pct(burst, 50), "first_frame_burst_ms_p95": pct(burst, 95),
                **summary, "target_fps": fps, "size": size, "seconds": seconds, "trials": trials,
                "chunk_ms": chunk_ms, "lookahead_ms": lookahead_ms, "live_frame_ms": cal.frame_ms,
                "live_frame_cpu_ms": cal.cpu_ms, "calibration_frames_per_s": cal.frames_per_s,
                "admitted_sessions": measured_live_capacity(fps, cal.workers, frame_ms=cal.frame_ms),
                "frame_pool_workers": pool.workers if pool is not None else 0,
                "per_session": list(per)}

    return asyncio.run(main())
