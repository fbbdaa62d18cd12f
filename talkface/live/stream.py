"""Live streaming: audio chunks in, timestamped video frames with their audio out, paced at
the frame rate.

    stream = AvatarStream(FaceModel(Portrait.builtin()))
    stream.push_audio(pcm, 24000)          # chunks of any size, any rate, as fast as they come
    stream.end_of_speech()                  # the utterance is complete: flush its tail
    stream.interrupt()                      # barge-in: drop what is queued, idle from the next frame
    async for f in stream:                  # f.image (RGB), f.audio (int16 for exactly this frame), f.pts
        ...

The stream is one continuous timeline: frame n shows the audio samples
[n / fps, (n + 1) / fps), speech where there is speech and silence between, so a player that
plays each frame's audio with it stays in sync by construction. With no speech the face idles
(breathing, blinks, small head motion). Every frame is made by the same `engine.Animator` as
files are: a frame whose look-ahead audio has arrived is identical to the file pipeline's.

Rendering and JPEG encoding run in one worker thread per stream, or, given a `FramePool`, in
threads shared by all streams, earliest deadline first (numpy and OpenCV release the GIL); the
event loop only sleeps and hands frames on. The parts: speech_input (audio in, thread-safe),
framemaker with playback (the timeline, one frame at a time), and here the frame clock.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from talkface.analysis.audio import SAMPLE_RATE
from talkface.engine import Animator, FaceModel, GenerateOptions
from talkface.live.framemaker import FrameMaker, StreamFrame
from talkface.live.framepool import FramePool
from talkface.live.speech_input import Resampler as _Resampler  # noqa: F401  (tests reach it here)
from talkface.live.speech_input import SpeechInput, StreamFull

__all__ = ["AvatarStream", "StreamFrame", "StreamFull"]

TURNAROUND_S_START = 0.015   # first guess from asking for a frame to having it (s), pool wait included
TURNAROUND_S_EASE = 0.1      # weight of each new frame in that running average


class AvatarStream:
    """One live talking face. Thread-safe: push_audio / end_of_speech / interrupt /
    set_controls may be called from any thread or the event loop; iterate the frames in one
    asyncio task."""

    def __init__(self, face: FaceModel, options: GenerateOptions = GenerateOptions(), *,
                 audio_rate: int = SAMPLE_RATE, jpeg_quality: int | None = None, paced: bool = True,
                 jitter_ms: float = 10.0, max_queue_s: float = 600.0, skip_late: bool = True,
                 mouth_model=None, pool: FramePool | None = None) -> None:
        if not 8000 <= audio_rate <= 96000:
            raise ValueError(f"audio_rate must be between 8000 and 96000, got {audio_rate}")
        if jpeg_quality is not None and not 10 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be between 10 and 100, got {jpeg_quality}")
        self.face = face
        self.animator = Animator(face, options, mouth_model)
        self.fps = options.fps
        self.audio_rate = int(audio_rate)
        self.jpeg_quality = jpeg_quality
        self.paced = paced
        self.jitter = int(jitter_ms * SAMPLE_RATE / 1000)
        self.max_queue = int(max_queue_s * SAMPLE_RATE)
        self.skip_late = skip_late
        self.stats = {"frames": 0, "speech_frames": 0, "late_frames": 0, "dropped_frames": 0,
                      "skipped_frames": 0, "max_late_ms": 0.0, "underruns": 0,
                      "cpu_s": 0.0, "skipped_cpu_s": 0.0}   # CPU time (thread) of rendered / skipped frames
        self._speech = SpeechInput(self.audio_rate, self.max_queue)
        self._maker = FrameMaker(self.animator, self._speech, self.audio_rate, jpeg_quality, self.jitter, self.stats)
        # frames are made in a pool shared with other streams (earliest deadline first), or
        # without one in a worker thread of this stream's own
        self._pool = pool
        self._executor = None if pool else ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkface-stream")
        self._pending = None                # this stream's frame waiting in or being made by the pool
        self._closed = False
        self._turnaround_s = TURNAROUND_S_START
        self.last_drop: float | None = None   # time.monotonic() of the last dropped frame

    # ------------------------------------------------------------------ input (any thread)
    def push_audio(self, pcm, sample_rate: int, channels: int = 1) -> None:
        """Queue speech: int16 bytes/array or float array, any chunk size, any rate."""
        self._speech.push(pcm, sample_rate, channels)

    def end_of_speech(self) -> None:
        """The audio pushed so far is a complete utterance: show it to its end without waiting
        for more, then idle."""
        self._speech.end_of_speech()

    def interrupt(self) -> None:
        """Drop all queued and not-yet-shown audio; the face is idle from the next frame."""
        self._speech.interrupt()

    clear_buffer = interrupt   # LiveKit's name

    def set_controls(self, controls) -> None:
        """Controls (or a ControlTrack) in force from the next frame; the motion eases to them."""
        from talkface.motion.controls import ControlTrack

        if not isinstance(controls, ControlTrack):
            controls = controls.validated()
        self._speech.set_controls(controls)

    @property
    def queued_seconds(self) -> float:
        return self._speech.queued_seconds

    @property
    def produce_seconds(self) -> float:
        """Running average wall time to make one rendered frame (render, watermark, JPEG, timeline)."""
        return self._maker.produce_s

    def next_frame_now(self) -> StreamFrame:
        """Make the next frame immediately, unpaced, in the caller's thread (tests, offline use)."""
        return self._maker.produce()

    # ------------------------------------------------------------------ output (event loop)
    def __aiter__(self):
        return self.frames()

    async def frames(self):
        """Frames, each released at its time on the frame clock (or as soon as made when the
        stream is not paced). When the machine cannot keep up, a frame whose time has already
        passed is not rendered (`repeated`: the previous picture with its own audio), so sound
        and timeline stay real-time; such frames and frames released more than one period late
        count as dropped. Further behind than skipping can recover (1 s, or three periods
        without skipping), the clock is re-anchored."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        t0 = None
        n = 0
        while not self._closed:
            due, render = loop.time(), True
            if self.paced and t0 is not None:
                due = t0 + n * period
                lead = min(0.9 * period, max(0.008, 1.5 * self._turnaround_s + 0.004))
                wait = due - lead - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif self.skip_late and loop.time() > due + 0.5 * period and self._maker.last_image is not None:
                    render = False   # decided when asking: a frame once asked for is made, so every stream progresses
            asked = loop.time()
            frame = await self._make(due, render)
            if not frame.repeated:
                self._turnaround_s += (loop.time() - asked - self._turnaround_s) * TURNAROUND_S_EASE
            if self._closed:
                break
            if self.paced:
                now = loop.time()
                if t0 is None:
                    t0 = now
                due = t0 + n * period
                if now < due:
                    await asyncio.sleep(due - now)
                late = loop.time() - due
                if late > 0.5 * period:
                    self.stats["late_frames"] += 1
                    self.stats["max_late_ms"] = max(self.stats["max_late_ms"], late * 1000)
                if late > period or frame.repeated:
                    self.stats["dropped_frames"] += 1
                    self.last_drop = time.monotonic()
                self.stats["skipped_frames"] += int(frame.repeated)
                if late > (max(1.0, 10 * period) if self.skip_late else 3 * period):
                    t0 += late   # too far behind to catch up: start the clock again from here
            self.stats["frames"] += 1
            self.stats["speech_frames"] += int(frame.speech)
            n += 1
            frame = replace(frame, released=time.monotonic())
            yield frame

    async def _make(self, deadline: float, render: bool) -> StreamFrame:
        """The next frame from this stream's worker thread or from the pool, by `deadline`."""
        if self._pool is None:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._maker.produce, render)
        self._pending = self._pool.submit(deadline, self._maker.produce, render)
        try:
            return await asyncio.wrap_future(self._pending)
        finally:
            self._pending = None

    def close(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        elif self._pending is not None:
            self._pending.cancel()

    async def aclose(self) -> None:
        self._closed = True
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)
        elif self._pending is not None and not self._pending.cancel():
            await asyncio.wait({asyncio.wrap_future(self._pending)})
