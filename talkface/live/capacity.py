"""The live capacity of this machine, measured the way the server runs sessions: several live
streams at once, fed speech, their frames made by one shared FramePool (earliest deadline
first), each frame JPEG-encoded and kept by a session recorder on the event loop. What counts is
the wall time the saturated pool takes per frame, charged at all its cores: that includes what
one frame alone does not show (the GIL, caches and memory bandwidth shared by the workers, the
event loop's own work). A single frame's CPU time read 14 ms where four sessions in one pool
needed 16-18 ms, so admitting from it let in one session too many. Admission divides the cores
by the measured cost (config.py)."""
from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkface.analysis.audio import SAMPLE_RATE
from talkface.engine import FaceModel, GenerateOptions
from talkface.live import protocol as proto
from talkface.live.framepool import FramePool
from talkface.live.recorder import Recorder
from talkface.live.stream import AvatarStream

STREAMS_PER_WORKER = 2     # streams kept busy per pool worker: the pool never waits for work
WARM_S = 0.4               # first frames, not counted (first-call costs, every stream under way)
MEASURE_S = 1.6            # wall time measured (about 150 frames on two cores)
SPEECH_AHEAD_S = 0.3       # speech queued before the first frame: the look-ahead is there
VOICE_HZ = 140.0           # pitch of the calibration voice
SYLLABLE_HZ = 4.0          # its loudness rises and falls at this rate, so the mouth moves


@dataclass(frozen=True)
class Calibration:
    frame_ms: float      # core-ms per frame with the pool saturated: workers x wall / frames
    cpu_ms: float        # process CPU per frame in the same interval (the part the cores did work)
    frames: int          # frames counted
    streams: int         # live streams run at once
    workers: int         # pool threads (one per core)
    seconds: float       # wall time counted
    min_stream_frames: int   # frames of the stream that made fewest (EDF shares the pool fairly)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds


def calibration_voice(seconds: float) -> np.ndarray:
    """A voiced buzz with syllable-rate loudness and short pauses (16 kHz float32): it drives
    the lip-sync model and the prosody as speech does, without a speech synthesiser."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buzz = sum(np.sin(2 * np.pi * VOICE_HZ * h * t) / h for h in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * SYLLABLE_HZ * t), 0.0, None) ** 0.5
    return (0.2 * buzz * envelope).astype(np.float32)


async def _run_stream(stream: AvatarStream, recorder: Recorder, voice: np.ndarray, counts: list, k: int) -> None:
    """Frames as fast as the pool makes them, one frame of speech pushed per frame made."""
    step = int(round(SAMPLE_RATE / stream.fps))
    ahead = int(SPEECH_AHEAD_S * SAMPLE_RATE)
    stream.push_audio(voice[:ahead], SAMPLE_RATE)
    pos = ahead
    async for frame in stream.frames():
        recorder.add(frame)
        counts[k] += 1
        if pos + step > len(voice):
            pos = 0
        stream.push_audio(voice[pos:pos + step], SAMPLE_RATE)
        pos += step


async def _measure(face: FaceModel, fps: float, workers: int | None, warm_s: float, measure_s: float,
                   folder: Path) -> Calibration:
    pool = FramePool(workers)
    n = STREAMS_PER_WORKER * pool.workers
    streams = [AvatarStream(face, GenerateOptions(fps=fps), audio_rate=proto.LIVE_AUDIO_RATE, jpeg_quality=80,
                            paced=False, pool=pool) for _ in range(n)]
    limit = int((warm_s + measure_s) * fps * 4) + 100
    recorders = [Recorder(folder, face.portrait.size, fps, proto.LIVE_AUDIO_RATE, limit) for _ in range(n)]
    voice = calibration_voice(4.0)
    counts = [0] * n
    tasks = [asyncio.ensure_future(_run_stream(s, r, voice, counts, k))
             for k, (s, r) in enumerate(zip(streams, recorders))]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(warm_s)
        start, t0, cpu0 = list(counts), loop.time(), time.process_time()
        await asyncio.sleep(measure_s)
        made, t1, cpu1 = [c - s for c, s in zip(counts, start)], loop.time(), time.process_time()
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        if failed:   # a stream that broke would make the machine look faster than it is
            raise failed[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in streams:
            await s.aclose()
        pool.close(wait=True)
        for r in recorders:
            r.discard()
    frames = max(1, sum(made))
    return Calibration(frame_ms=1000.0 * pool.workers * (t1 - t0) / frames, cpu_ms=1000.0 * (cpu1 - cpu0) / frames,
                       frames=sum(made), streams=n, workers=pool.workers, seconds=t1 - t0,
                       min_stream_frames=min(made))


def calibrate(face: FaceModel, fps: float, *, workers: int | None = None, warm_s: float = WARM_S,
              measure_s: float = MEASURE_S) -> Calibration:
    """Run STREAMS_PER_WORKER live streams per pool worker flat out for `warm_s + measure_s`
    seconds (in an event loop of its own) and measure what a frame costs. On a busy machine
    the wall time reads long, so the capacity errs on the safe side."""
    folder = Path(tempfile.mkdtemp(prefix="talkface-capacity-"))
    try:
        return asyncio.run(_measure(face, fps, workers, warm_s, measure_s, folder))
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()
