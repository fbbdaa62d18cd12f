"""The speech side of a live stream: audio chunks of any size and rate in, queued at 16 kHz for
the analysis and at the playback rate for the listener, with end-of-speech, interrupt and new
controls handed to the frame maker. Thread-safe: any thread or the event loop pushes; the frame
maker takes."""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

# imported with the module, not on a session's first resampled chunk: scipy.signal takes 0.5-0.9 s to
# import, which stalled the first speech of a fresh server by that much
from scipy.signal import firwin, resample_poly

from talkface.analysis.audio import SAMPLE_RATE
from talkface.errors import InputError

RESAMPLE_HALF_TAPS = 10             # scipy resample_poly's filter: 10 * max(up, down) taps either side
RESAMPLE_WINDOW = ("kaiser", 5.0)   # and its window (what talkface.analysis.audio.resample uses)


class StreamFull(InputError):
    """More audio queued than the stream accepts (see `max_queue_s`)."""


class SampleQueue:
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


class Resampler:
    """Chunked resampling as `talkface.analysis.audio.resample` does it, whose output does not depend on how
    the input was cut: each call keeps the input context the filter needs on both sides, so
    chunk edges leave no clicks (plain per-chunk resampling would taper every edge)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        g = math.gcd(rate_in, rate_out)
        self.rate_in, self.rate_out = rate_in, rate_out
        self.up, self.down = rate_out // g, rate_in // g
        # scipy's resample_poly filter has 10 * max(up, down) taps either side at the up-sampled rate
        self.half = math.ceil(RESAMPLE_HALF_TAPS * max(self.up, self.down) / self.up) + 1
        # that filter, designed once: resample_poly designs it again on every call otherwise
        # (a third of the cost of a 20 ms chunk); the same taps, so the same samples
        top = max(self.up, self.down)
        self.taps = (firwin(2 * RESAMPLE_HALF_TAPS * top + 1, 1.0 / top, window=RESAMPLE_WINDOW).astype(np.float32)
                     if top > 1 else None)
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
        y = resample_poly(self.buf, self.up, self.down, window=self.taps).astype(np.float32)
        base = self.start * self.up // self.down
        out = y[self.done - base: limit - base]
        self.done = limit
        keep = max(self.start, self.done * self.down // self.up - self.half)
        keep -= keep % self.down
        keep = max(keep, self.start)
        self.buf = self.buf[keep - self.start:]
        self.start = keep
        return out.astype(np.float32)


def as_float(pcm, channels: int = 1) -> np.ndarray:
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




@dataclass(frozen=True)
class Requests:
    """What the frame maker applies before its next frame."""
    interrupt: bool        # interrupt() was called
    dropped_speech: bool   # ... and it dropped queued speech
    controls: object       # new controls (or a ControlTrack), or None


@dataclass(frozen=True)
class Taken:
    """Queued speech taken for the next frame."""
    samples: np.ndarray    # 16 kHz
    utterance_done: bool   # the last of an utterance closed by end_of_speech()
    queue_empty: bool      # nothing queued after it


class SpeechInput:
    """The queued speech of one stream, at 16 kHz and at the playback rate, and the requests
    (interrupt, controls) waiting for the next frame. Two locks: `_in_lock` for the resamplers
    (a long push resamples outside the queue lock, so it never delays a frame), `_lock` for the
    queues and flags."""

    def __init__(self, audio_rate: int, max_queue: int) -> None:
        self.audio_rate, self.max_queue = audio_rate, max_queue
        self._lock = threading.Lock()      # the queues and flags
        self._in_lock = threading.Lock()   # the input resamplers
        self._q16 = SampleQueue()          # speech waiting, 16 kHz (analysis)
        self._qout = SampleQueue()         # the same speech at audio_rate (playback)
        self._rs16: Resampler | None = None
        self._rsout: Resampler | None = None
        self._rate_in: int | None = None
        self._eos_at: int | None = None    # q16.pushed when end_of_speech() was called
        self._interrupt = False
        self._dropped_speech = False
        self._controls = None

    # ------------------------------------------------------------------ any thread
    def push(self, pcm, sample_rate: int, channels: int = 1) -> None:
        if not 8000 <= int(sample_rate) <= 192000:
            raise ValueError(f"sample_rate must be between 8000 and 192000, got {sample_rate}")
        x = as_float(pcm, channels)
        with self._in_lock:
            if len(self._q16) + len(x) * SAMPLE_RATE / sample_rate > self.max_queue:
                raise StreamFull(f"more than {self.max_queue / SAMPLE_RATE:.0f} s of audio queued")
            flushed = self._flush_resamplers() if self._rate_in != sample_rate else None
            if self._rate_in != sample_rate:
                self._rate_in = int(sample_rate)
                self._rs16 = Resampler(self._rate_in, SAMPLE_RATE)
                self._rsout = Resampler(self._rate_in, self.audio_rate)
            a, b = self._rs16.push(x), self._rsout.push(x)
            with self._lock:
                self._push_flushed(flushed)
                self._q16.push(a)
                self._qout.push(b)

    def end_of_speech(self) -> None:
        with self._in_lock:
            flushed = self._flush_resamplers()
            with self._lock:
                self._push_flushed(flushed)
                self._eos_at = self._q16.pushed

    def interrupt(self) -> None:
        with self._in_lock, self._lock:
            self._dropped_speech = self._dropped_speech or len(self._q16) > 0
            self._q16.clear()
            self._qout.clear()
            self._rs16 = self._rsout = None
            self._rate_in = None
            self._eos_at = None
            self._interrupt = True

    def set_controls(self, controls) -> None:
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

    def _push_flushed(self, flushed) -> None:
        if flushed is not None:
            self._q16.push(flushed[0])
            self._qout.push(flushed[1])

    # ------------------------------------------------------------------ the frame maker
    def requests(self) -> Requests:
        """The pending interrupt and controls, now cleared."""
        with self._lock:
            out = Requests(self._interrupt, self._dropped_speech, self._controls)
            self._interrupt = self._dropped_speech = False
            self._controls = None
        return out

    def take(self, need: int, pending: bool, jitter: int) -> Taken | None:
        """Up to `need` samples of queued speech when the next frame should show it: its
        timeline already holds speech (`pending`), enough is queued to ride out `jitter`, or the
        utterance is closed; None otherwise."""
        with self._lock:
            queued = len(self._q16)
            eos_queued = self._eos_at is not None and self._eos_at > self._q16.taken
            if not (queued and (pending or queued >= need + jitter or eos_queued)):
                return None
            samples = self._q16.take(max(0, need))
            utterance_done = eos_queued and self._q16.taken >= self._eos_at
            if utterance_done:
                self._eos_at = None
            return Taken(samples, utterance_done, len(self._q16) == 0)

    def take_playback(self, n: int) -> np.ndarray:
        with self._lock:
            return self._qout.take(n)

    def utterance_finished(self) -> None:
        """Drop the playback queue's rounding leftovers when the utterance ended and nothing follows."""
        with self._lock:
            if self._eos_at is None and len(self._q16) == 0:
                self._qout.clear()
