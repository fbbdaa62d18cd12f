"""A live stream's playback side: the audio committed to the timeline at the playback rate, cut
into exactly one frame's worth per frame, and which frames carry speech or end an utterance."""
from __future__ import annotations

import numpy as np

from talkface.analysis.audio import SAMPLE_RATE


class Playback:
    """The committed playback audio at `audio_rate`, and where speech and utterance ends lie on
    the 16 kHz timeline (the frame maker's thread only)."""

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
