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
event loop only sleeps and hands frames on.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from talkface.analysis.audio import SAMPLE_RATE, resample
from talkface.engine import Animator, FaceModel, GenerateOptions
from talkface.errors import InputError
from talkface.live.framepool import FramePool

__all__ = ["AvatarStream", "StreamFrame", "StreamFull"]


class StreamFull(InputError):
    """More audio queued than the stream accepts (see `max_queue_s`)."""


@dataclass(frozen=True, eq=False)
class StreamFrame:
    index: int              # frame number on the stream's timeline
    pts: float              # seconds: index / fps; the frame's audio starts here
    image: np.ndarray       # (S, S, 3) uint8 RGB
    audio: np.ndarray       # int16 mono PCM at `audio_rate` covering [pts, pts + 1/fps)
    audio_rate: int
    speech: bool            # pushed audio (not idle silence) plays during this frame
    segment_end: bool       # the last audio of an utterance closed by end_of_speech() plays here
    jpeg: bytes | None      # the image as JPEG when the stream was made with jpeg_quality
    interrupted: bool = False  # the first frame after interrupt() dropped speech
    repeated: bool = False  # rendering was skipped to catch up: the previous picture again (same audio timing)
    motion: object = field(repr=False, default=None)
    released: float = 0.0   # time.monotonic() when the iterator handed the frame on


class _SampleQueue:
    """FIFO of float32 samples with O(chunk) push and take."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self._len = 0
        self.pushed = 0   # samples ever pushed
        self.taken = 0    # samples ever taken (or cleared)

    def __len__(self) -> int:
        return self._len

    def push(self, x: np.ndarray) -> None:
        if len(x):
            self._chunks.append(x)
            self._len += len(x)
            self.pushed += len(x)

    def take(self, n: int) -> np.ndarray:
        out, got = [], 0
        while got < n and self._chunks:
            c = self._chunks[0]
            if len(c) <= n - got:
                out.append(self._chunks.popleft())
                got += len(c)
            else:
                out.append(c[: n - got])
                self._chunks[0] = c[n - got:]
                got = n
        self._len -= got
        self.taken += got
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def clear(self) -> None:
        self.taken += self._len
        self._chunks.clear()
        self._len = 0


class _Resampler:
    """Chunked resampling with `talkface.analysis.audio.resample` whose output does not depend on how
    the input was cut: each call keeps the input context the filter needs on both sides, so
    chunk edges leave no clicks (plain per-chunk resampling would taper every edge)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        g = math.gcd(rate_in, rate_out)
        self.rate_in, self.rate_out = rate_in, rate_out
        self.up, self.down = rate_out // g, rate_in // g
        # scipy's resample_poly filter has 10 * max(up, down) taps either side at the up-sampled rate
        self.half = math.ceil(10 * max(self.up, self.down) / self.up) + 1
        self.buf = np.zeros(0, np.float32)
        self.start = 0   # input index of buf[0], always a multiple of `down`
        self.done = 0    # output samples emitted

    def push(self, x: np.ndarray, final: bool = False) -> np.ndarray:
        if self.up == self.down:
            return np.asarray(x, np.float32)
        self.buf = np.concatenate([self.buf, np.asarray(x, np.float32)])
        end = self.start + len(self.buf)
        if final:
            limit = -(-end * self.up // self.down)
        else:
            limit = max(0, (end - self.half) * self.up // self.down)
        if limit <= self.done or len(self.buf) == 0:
            return np.zeros(0, np.float32)
        y = resample(self.buf, self.rate_in, self.rate_out)
        base = self.start * self.up // self.down
        out = y[self.done - base: limit - base]
        self.done = limit
        keep = max(self.start, self.done * self.down // self.up - self.half)
        keep -= keep % self.down
        keep = max(keep, self.start)
        self.buf = self.buf[keep - self.start:]
        self.start = keep
        return out.astype(np.float32)


def _as_float(pcm, channels: int = 1) -> np.ndarray:
    """bytes (int16 little-endian), int16 or float arrays -> float32 mono in [-1, 1]."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        if len(pcm) % (2 * channels):
            raise ValueError("PCM bytes must be whole 16-bit samples")
        a = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    else:
        a = np.asarray(pcm)
        if a.dtype == np.int16:
            a = a.astype(np.float32) / 32768.0
        elif a.dtype.kind == "f":
            a = a.astype(np.float32)
        else:
            raise ValueError(f"PCM must be int16 or float samples, got {a.dtype}")
    if a.ndim == 2:
        a = a.mean(axis=1) if a.shape[1] <= 8 else a.mean(axis=0)
    elif channels > 1:
        a = a.reshape(-1, channels).mean(axis=1)
    a = a.reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError("PCM contains invalid samples")
    return np.clip(a, -1.0, 1.0)


class _Playback:
    """The committed playback audio at `audio_rate`, and where speech and utterance ends lie on
    the 16 kHz timeline (worker thread only)."""

    def __init__(self, audio_rate: int, fps: float) -> None:
        self.audio_rate, self.fps = audio_rate, fps
        self.out = np.zeros(0, np.float32)   # committed playback audio from sample `base` on
        self.base = 0
        self.spans: list[list[int]] = []     # committed speech on the 16 kHz timeline: [start, end)
        self.segment_ends: list[int] = []    # 16 kHz timeline positions where utterances end

    def missing(self, samples_in: int) -> int:
        """Playback samples still to add to cover the timeline up to `samples_in` (16 kHz)."""
        return int(round(samples_in * self.audio_rate / SAMPLE_RATE)) - (self.base + len(self.out))

    def append(self, part: np.ndarray, need: int) -> None:
        if len(part) < need:
            part = np.concatenate([part, np.zeros(need - len(part), np.float32)])
        self.out = np.concatenate([self.out, part])

    def add_speech(self, before: int, after: int) -> None:
        if self.spans and self.spans[-1][1] == before:
            self.spans[-1][1] = after
        else:
            self.spans.append([before, after])

    def speech_after(self, start: int) -> bool:
        return bool(self.spans) and self.spans[-1][1] > start

    def cut(self, pos: int) -> None:
        """After Animator.interrupt: cut the audio and speech spans to the timeline at `pos`."""
        cut = int(round(pos * self.audio_rate / SAMPLE_RATE)) - self.base
        self.out = self.out[: max(0, cut)]
        self.spans = [[a, min(b, pos)] for a, b in self.spans if a < pos]
        self.segment_ends = [p for p in self.segment_ends if p <= pos]

    def frame(self, n: int, start: int, end: int) -> tuple[np.ndarray, bool, bool]:
        """Frame n's audio (int16), whether speech plays in it, whether an utterance ends in it;
        `start`, `end`: the frame's span on the 16 kHz timeline."""
        a0 = int(round(n * self.audio_rate / self.fps)) - self.base
        a1 = int(round((n + 1) * self.audio_rate / self.fps)) - self.base
        chunk = self.out[max(0, a0):a1]
        if len(chunk) < a1 - max(0, a0):
            chunk = np.concatenate([chunk, np.zeros(a1 - max(0, a0) - len(chunk), np.float32)])
        self.out = self.out[max(0, a1):]
        self.base += max(0, a1)
        speech = any(a < end and b > start for a, b in self.spans)
        self.spans = [s for s in self.spans if s[1] > end]
        seg_end = any(p <= end for p in self.segment_ends)
        self.segment_ends = [p for p in self.segment_ends if p > end]
        return (np.clip(chunk, -1.0, 1.0) * 32767.0).astype(np.int16), speech, seg_end


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
        self._lock = threading.Lock()      # the queues and the timeline
        self._in_lock = threading.Lock()   # the input resamplers
        self._q16 = _SampleQueue()         # speech waiting, 16 kHz (analysis)
        self._qout = _SampleQueue()        # the same speech at audio_rate (playback)
        self._rs16: _Resampler | None = None
        self._rsout: _Resampler | None = None
        self._rate_in: int | None = None
        self._eos_at: int | None = None    # q16.pushed when end_of_speech() was called
        self._interrupt = False
        self._dropped_speech = False
        self._controls = None
        self._play = _Playback(self.audio_rate, self.fps)
        # frames are made in a pool shared with other streams (earliest deadline first), or
        # without one in a worker thread of this stream's own
        self._pool = pool
        self._executor = None if pool else ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkface-stream")
        self._pending = None                # this stream's frame waiting in or being made by the pool
        self._closed = False
        self._produce_s = 0.015            # running estimate of one frame's render + encode time
        self._turnaround_s = 0.015         # the same from asking for a frame to having it (pool wait included)
        self._last_image = self._last_jpeg = None
        self.skip_late = skip_late
        self.stats = {"frames": 0, "speech_frames": 0, "late_frames": 0, "dropped_frames": 0,
                      "skipped_frames": 0, "max_late_ms": 0.0, "underruns": 0,
                      "cpu_s": 0.0, "skipped_cpu_s": 0.0}   # CPU time (thread) of rendered / skipped frames

    # ------------------------------------------------------------------ input (any thread)
    def push_audio(self, pcm, sample_rate: int, channels: int = 1) -> None:
        """Queue speech: int16 bytes/array or float array, any chunk size, any rate."""
        if not 8000 <= int(sample_rate) <= 192000:
            raise ValueError(f"sample_rate must be between 8000 and 192000, got {sample_rate}")
        x = _as_float(pcm, channels)
        # resampling happens under the input lock only, so a long push never delays a frame
        with self._in_lock:
            if len(self._q16) + len(x) * SAMPLE_RATE / sample_rate > self.max_queue:
                raise StreamFull(f"more than {self.max_queue / SAMPLE_RATE:.0f} s of audio queued")
            flushed = self._flush_resamplers() if self._rate_in != sample_rate else None
            if self._rate_in != sample_rate:
                self._rate_in = int(sample_rate)
                self._rs16 = _Resampler(self._rate_in, SAMPLE_RATE)
                self._rsout = _Resampler(self._rate_in, self.audio_rate)
            a, b = self._rs16.push(x), self._rsout.push(x)
            with self._lock:
                if flushed is not None:
                    self._q16.push(flushed[0])
                    self._qout.push(flushed[1])
                self._q16.push(a)
                self._qout.push(b)

    def end_of_speech(self) -> None:
        """The audio pushed so far is a complete utterance: show it to its end without waiting
        for more, then idle."""
        with self._in_lock:
            flushed = self._flush_resamplers()
            with self._lock:
                if flushed is not None:
                    self._q16.push(flushed[0])
                    self._qout.push(flushed[1])
                self._eos_at = self._q16.pushed

    def interrupt(self) -> None:
        """Drop all queued and not-yet-shown audio; the face is idle from the next frame."""
        with self._in_lock, self._lock:
            self._dropped_speech = self._dropped_speech or len(self._q16) > 0
            self._q16.clear()
            self._qout.clear()
            self._rs16 = self._rsout = None
            self._rate_in = None
            self._eos_at = None
            self._interrupt = True

    clear_buffer = interrupt   # LiveKit's name

    def set_controls(self, controls) -> None:
        """Controls (or a ControlTrack) in force from the next frame; the motion eases to them."""
        from talkface.motion.controls import ControlTrack

        if not isinstance(controls, ControlTrack):
            controls = controls.validated()
        with self._lock:
            self._controls = controls

    @property
    def queued_seconds(self) -> float:
        return len(self._q16) / SAMPLE_RATE

    def _flush_resamplers(self):
        """The resamplers' held-back tails (call with _in_lock held), and start afresh."""
        out = None
        if self._rs16 is not None:
            out = (self._rs16.push(np.zeros(0, np.float32), final=True),
                   self._rsout.push(np.zeros(0, np.float32), final=True))
        self._rs16 = self._rsout = None
        self._rate_in = None
        return out

    # ------------------------------------------------------------------ the timeline (worker thread)
    def _commit(self, x: np.ndarray, speech: bool, render: bool = True) -> list:
        """Append samples to the animator's timeline (worker thread only) and the matching
        playback audio: the queued speech at audio_rate, or silence."""
        anim = self.animator
        before = anim.samples_in
        frames = anim.push_audio(x, render) if len(x) else []
        after = anim.samples_in
        need = self._play.missing(after)
        if need > 0:
            part = np.zeros(0, np.float32)
            if speech:
                with self._lock:
                    part = self._qout.take(need)
            self._play.append(part, need)
        if speech and after > before:
            self._play.add_speech(before, after)
        return frames

    def _produce(self, render: bool = True) -> StreamFrame:
        """The next frame (worker thread). The lock guards only the queues and flags, never the
        rendering, so push_audio on the event loop never waits for a frame."""
        t_start, cpu_start = time.perf_counter(), time.thread_time()
        interrupted = self._apply_requests()
        n = self.animator.next_frame
        frame = self._advance(render)
        pcm, speech, seg_end = self._play.frame(n, self.animator.sample_at(n), self.animator.sample_at(n + 1))
        image, jpeg, repeated = self._picture(frame.image)
        if not repeated:
            self._produce_s += (time.perf_counter() - t_start - self._produce_s) * 0.1
        self.stats["skipped_cpu_s" if repeated else "cpu_s"] += time.thread_time() - cpu_start
        return StreamFrame(index=frame.index, pts=frame.index / self.fps, image=image, audio=pcm,
                           audio_rate=self.audio_rate, speech=speech, segment_end=seg_end, jpeg=jpeg,
                           interrupted=interrupted, repeated=repeated, motion=frame.motion)

    def _apply_requests(self) -> bool:
        """Apply a pending interrupt and new controls; True when the interrupt cut speech."""
        anim = self.animator
        with self._lock:
            do_interrupt, self._interrupt = self._interrupt, False
            dropped, self._dropped_speech = self._dropped_speech, False
            controls, self._controls = self._controls, None
        interrupted = False
        if do_interrupt:
            interrupted = dropped or anim.samples_in > anim.sample_at(anim.next_frame)
            anim.interrupt()
            self._play.cut(anim.samples_in)
        if controls is not None:
            anim.set_controls(controls)
        return interrupted

    def _advance(self, render: bool):
        """Commit the queued speech (or silence) the next frame needs, and make it."""
        anim = self.animator
        n = anim.next_frame
        start = anim.sample_at(n)
        need = anim.samples_needed(n) - anim.samples_in
        pending = anim.samples_in > start
        with self._lock:
            queued = len(self._q16)
            eos_queued = self._eos_at is not None and self._eos_at > self._q16.taken
            take = None
            if queued and (pending or queued >= need + self.jitter or eos_queued):
                take = self._q16.take(max(0, need))
                utterance_done = eos_queued and self._q16.taken >= self._eos_at
                if utterance_done:
                    self._eos_at = None
                queue_empty = len(self._q16) == 0
        if take is not None:
            frames = self._commit_speech(take, need, utterance_done, queue_empty, render)
        elif pending and self._play.speech_after(start) and need > 0:
            # the tail of an utterance: its look-ahead is silence (otherwise only the tail's
            # look-ahead silence is pending; the next frames use it up, the lip-sync model keeps
            # its running state, unlike after an interrupt)
            frames = self._commit(np.zeros(need, np.float32), speech=False, render=render)
        else:
            frames = []
        if frames:
            return frames[0]
        if anim.samples_in > start:
            return anim.force_frame(render=render)
        frame = anim.idle_frame(render=render)
        self._commit(np.zeros(0, np.float32), speech=False)  # pads playback audio for the silence
        return frame

    def _commit_speech(self, take: np.ndarray, need: int, utterance_done: bool, queue_empty: bool,
                       render: bool) -> list:
        anim = self.animator
        frames = self._commit(take, speech=True, render=render)
        if utterance_done:
            self._play.segment_ends.append(anim.samples_in)
            with self._lock:
                if self._eos_at is None and len(self._q16) == 0:
                    self._qout.clear()     # rounding leftovers of the finished utterance
        short = need - len(take)
        if frames or short <= 0:
            return frames
        end = anim.sample_at(anim.next_frame + 1)
        ends = self._play.segment_ends
        if queue_empty and ends and ends[-1] == anim.samples_in:
            return self._commit(np.zeros(short, np.float32), speech=False, render=render)  # utterance tail
        if anim.samples_in < end:
            self.stats["underruns"] += 1
            return self._commit(np.zeros(end - anim.samples_in, np.float32), speech=False, render=render)
        return frames

    def _picture(self, image: np.ndarray | None) -> tuple[np.ndarray, bytes | None, bool]:
        """(image, JPEG, repeated): a skipped render shows the previous picture again."""
        if image is None:
            image, jpeg = self._last_image, self._last_jpeg
            return (image if image is not None else self.face.portrait.image), jpeg, True
        jpeg = None
        if self.jpeg_quality is not None:
            import cv2

            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, int(self.jpeg_quality)])
            jpeg = buf.tobytes() if ok else None
        self._last_image, self._last_jpeg = image, jpeg
        return image, jpeg, False

    @property
    def produce_seconds(self) -> float:
        """Running average wall time to make one rendered frame (render, watermark, JPEG, timeline)."""
        return self._produce_s

    def next_frame_now(self) -> StreamFrame:
        """Make the next frame immediately, unpaced, in the caller's thread (tests, offline use)."""
        return self._produce()

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
                elif self.skip_late and loop.time() > due + 0.5 * period and self._last_image is not None:
                    render = False   # decided when asking: a frame once asked for is made, so every stream progresses
            asked = loop.time()
            frame = await self._make(due, render)
            if not frame.repeated:
                self._turnaround_s += (loop.time() - asked - self._turnaround_s) * 0.1
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
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._produce, render)
        self._pending = self._pool.submit(deadline, self._produce, render)
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
