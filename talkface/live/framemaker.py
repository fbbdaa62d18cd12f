"""A live stream's frames, one at a time, in whichever thread makes them (a pool worker or the
stream's own): the queued speech (or silence) the next frame needs is committed to the
animator's timeline with its playback audio, the frame is rendered (or skipped when the stream
is behind) and JPEG-encoded. Only the speech queues are locked, never the rendering."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from talkface.engine import Animator
from talkface.live.playback import Playback
from talkface.live.speech_input import SpeechInput, Taken

PRODUCE_S_START = 0.015   # first guess of one frame's render + encode time (s), refined as frames are made
PRODUCE_S_EASE = 0.1      # weight of each new frame in that running average


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


class FrameMaker:
    """The timeline side of one stream (one thread at a time). `stats` is the stream's dict:
    this adds `cpu_s` / `skipped_cpu_s` (thread CPU of rendered / skipped frames) and
    `underruns`."""

    def __init__(self, animator: Animator, speech: SpeechInput, audio_rate: int, jpeg_quality: int | None,
                 jitter: int, stats: dict) -> None:
        self.animator, self.speech = animator, speech
        self.fps = animator.options.fps
        self.audio_rate, self.jpeg_quality, self.jitter = audio_rate, jpeg_quality, jitter
        self.stats = stats
        self.play = Playback(audio_rate, self.fps)
        self.produce_s = PRODUCE_S_START   # running average wall time of one rendered frame
        self.last_image = self.last_jpeg = None

    def produce(self, render: bool = True) -> StreamFrame:
        """The next frame (render=False: its picture skipped, the previous one shown again)."""
        t_start, cpu_start = time.perf_counter(), time.thread_time()
        interrupted = self._apply_requests()
        n = self.animator.next_frame
        frame = self._advance(render)
        pcm, speech, seg_end = self.play.frame(n, self.animator.sample_at(n), self.animator.sample_at(n + 1))
        image, jpeg, repeated = self._picture(frame.image)
        if not repeated:
            self.produce_s += (time.perf_counter() - t_start - self.produce_s) * PRODUCE_S_EASE
        self.stats["skipped_cpu_s" if repeated else "cpu_s"] += time.thread_time() - cpu_start
        return StreamFrame(index=frame.index, pts=frame.index / self.fps, image=image, audio=pcm,
                           audio_rate=self.audio_rate, speech=speech, segment_end=seg_end, jpeg=jpeg,
                           interrupted=interrupted, repeated=repeated, motion=frame.motion)

    def _commit(self, x: np.ndarray, speech: bool, render: bool = True) -> list:
        """Append samples to the animator's timeline and the matching playback audio: the
        queued speech at audio_rate, or silence."""
        anim = self.animator
        before = anim.samples_in
        frames = anim.push_audio(x, render) if len(x) else []
        after = anim.samples_in
        need = self.play.missing(after)
        if need > 0:
            part = self.speech.take_playback(need) if speech else np.zeros(0, np.float32)
            self.play.append(part, need)
        if speech and after > before:
            self.play.add_speech(before, after)
        return frames

    def _apply_requests(self) -> bool:
        """Apply a pending interrupt and new controls; True when the interrupt cut speech."""
        anim = self.animator
        req = self.speech.requests()
        interrupted = False
        if req.interrupt:
            interrupted = req.dropped_speech or anim.samples_in > anim.sample_at(anim.next_frame)
            anim.interrupt()
            self.play.cut(anim.samples_in)
        if req.controls is not None:
            anim.set_controls(req.controls)
        return interrupted

    def _advance(self, render: bool):
        """Commit the queued speech (or silence) the next frame needs, and make it."""
        anim = self.animator
        n = anim.next_frame
        start = anim.sample_at(n)
        need = anim.samples_needed(n) - anim.samples_in
        pending = anim.samples_in > start
        taken = self.speech.take(need, pending, self.jitter)
        if taken is not None:
            frames = self._commit_speech(taken, need, render)
        elif pending and self.play.speech_after(start) and need > 0:
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

    def _commit_speech(self, taken: Taken, need: int, render: bool) -> list:
        anim = self.animator
        frames = self._commit(taken.samples, speech=True, render=render)
        if taken.utterance_done:
            self.play.segment_ends.append(anim.samples_in)
            self.speech.utterance_finished()
        short = need - len(taken.samples)
        if frames or short <= 0:
            return frames
        end = anim.sample_at(anim.next_frame + 1)
        ends = self.play.segment_ends
        if taken.queue_empty and ends and ends[-1] == anim.samples_in:
            return self._commit(np.zeros(short, np.float32), speech=False, render=render)  # utterance tail
        if anim.samples_in < end:
            self.stats["underruns"] += 1
            return self._commit(np.zeros(end - anim.samples_in, np.float32), speech=False, render=render)
        return frames

    def _picture(self, image: np.ndarray | None) -> tuple[np.ndarray, bytes | None, bool]:
        """(image, JPEG, repeated): a skipped render shows the previous picture again."""
        if image is None:
            image, jpeg = self.last_image, self.last_jpeg
            return (image if image is not None else self.animator.face.portrait.image), jpeg, True
        jpeg = None
        if self.jpeg_quality is not None:
            import cv2

            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, int(self.jpeg_quality)])
            jpeg = buf.tobytes() if ok else None
        self.last_image, self.last_jpeg = image, jpeg
        return image, jpeg, False
