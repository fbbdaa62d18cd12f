"""The frame-by-frame core shared by the file renderer and the live stream.

`Animator` takes audio in chunks of any size and returns the video frames that the audio
so far determines, each with the motion that made it. Look-ahead is bounded by the
lip-sync model's (at most 80 ms), so the same object drives a live avatar.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator

import numpy as np

from talkface.analysis.audio import HOP, SAMPLE_RATE, WINDOW, Audio, AudioFeatures, FeatureExtractor
from talkface.analysis.portrait import Portrait
from talkface.errors import InputError
from talkface.face.rig import FaceRig
from talkface.lipsync.mouth import MouthModel, default_model, frame_row, frame_span
from talkface.marking.watermark import Payload
from talkface.motion.controls import Controls, ControlTrack
from talkface.motion.generator import DEFAULT_MOTION, MOTION_SOURCES, MotionFrame, MotionGenerator, MouthShape, ProsodyTracker
from talkface.output.marks import Marks
from talkface.render.framing import FullFramer
from talkface.render.renderer import Renderer, render_motion

FRAMINGS = ("crop", "full")   # the head crop; the whole picture with the head animated inside it
FPS_RANGE = (1.0, 120.0)
RENDER_WORKERS = 2    # pictures the file pipeline renders at once: one per core of a 2-core machine


@dataclass(frozen=True)
class GenerateOptions:
    fps: float = 25.0
    seed: int = 0
    controls: ControlTrack = field(default_factory=ControlTrack)
    watermark_id: int | None = 0     # None: no watermark (evaluation only)
    label: str | None = None         # visible corner caption
    framing: str = "crop"            # see FRAMINGS
    motion: str = DEFAULT_MOTION     # head, gaze, blink and brow dynamics: see MOTION_SOURCES

    def __post_init__(self) -> None:
        if not FPS_RANGE[0] <= self.fps <= FPS_RANGE[1]:
            raise InputError(f"fps must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g}, got {self.fps:g}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError(f"seed must be a whole number 0 or more, got {self.seed!r}")
        if self.framing not in FRAMINGS:
            raise InputError(f"framing must be one of {', '.join(FRAMINGS)}, got {self.framing!r}")
        if self.watermark_id is not None:
            Payload.written(user_id=self.watermark_id)   # the one range check of the id
        if self.motion not in MOTION_SOURCES:
            raise InputError(f"motion must be one of {', '.join(MOTION_SOURCES)}, got {self.motion!r}")
        if not isinstance(self.controls, ControlTrack):
            raise InputError(f"controls must be a ControlTrack, got {type(self.controls).__name__}")


@dataclass(frozen=True)
class Frame:
    index: int
    time: float                # seconds from the start of the audio
    image: np.ndarray | None   # (H, W, 3) uint8 RGB; None only when a live stream skips a late frame's picture
    motion: MotionFrame


@dataclass
class StageTimes:
    """Accumulated seconds per stage, for `talkface bench`."""

    audio: float = 0.0
    motion: float = 0.0
    render: float = 0.0      # rendering, and pasting into the whole picture with framing "full"
    watermark: float = 0.0   # the marks: watermark and label
    frames: int = 0


class FaceModel:
    """What is built once per portrait and can be shared by many animators."""

    def __init__(self, portrait: Portrait) -> None:
        self.portrait = portrait
        self.rig = FaceRig(portrait)
        self.renderer = Renderer(portrait, self.rig)
        self.rest_gaze = self.rig.rest_gaze_deg()
        self._framer: FullFramer | None = None

    def render(self, motion: MotionFrame) -> np.ndarray:
        """The head crop showing `motion`, unmarked."""
        return render_motion(self.renderer, motion)

    def framer(self) -> FullFramer:
        """The paste-back into the whole picture (framing "full"), built on first use."""
        if self._framer is None:
            self._framer = FullFramer(self.portrait)
        return self._framer


class Animator:
    def __init__(self, face: FaceModel, options: GenerateOptions = GenerateOptions(),
                 mouth_model: MouthModel | None = None) -> None:
        self.face = face
        self.options = options
        self.mouth_model = mouth_model or default_model()
        self.features = FeatureExtractor()
        self.mouth = self.mouth_model.stream()
        self.motion = MotionGenerator(options.fps, options.seed, rest_gaze=face.rest_gaze, source=options.motion)
        self.prosody = ProsodyTracker()
        self.marks = Marks(options.watermark_id, options.label)
        self.framer = face.framer() if options.framing == "full" else None
        self.rows = np.zeros((0, 4), np.float32)   # mouth rows, one per 10 ms feature frame
        self.feats = AudioFeatures.concatenate([])  # features not yet consumed by prosody
        self.row_offset = 0                         # feature index of self.rows[0]
        self.next_frame = 0
        self.samples_in = 0
        self.times = StageTimes()
        self.deferred = False       # True: frames come without their picture, made later by `frame_of`
        self._times_lock = threading.Lock()   # frame_of may run in several threads at once
        self._prosody_frame = 0
        self._prosody_state = None
        self._rest_row: np.ndarray | None = None

    # ------------------------------------------------------------------ audio in
    def push_audio(self, samples: np.ndarray, render: bool = True) -> list[Frame]:
        """Feed 16 kHz mono float32 samples; returns the frames they completed
        (render=False: their timeline and motion advance, `image` stays None)."""
        t0 = time.perf_counter()
        samples = np.asarray(samples, np.float32).reshape(-1)
        self.samples_in += len(samples)
        feats = self.features.push(samples)
        self._add(feats, self.mouth.push(feats))
        self.times.audio += time.perf_counter() - t0
        return self._emit(final=False, render=render)

    def finish(self) -> list[Frame]:
        """End of audio: flush look-ahead and return the frames up to the audio's end."""
        feats = self.features.flush()
        rows = [self.mouth.push(feats), self.mouth.flush()]
        self._add(feats, np.concatenate(rows) if any(len(r) for r in rows) else np.zeros((0, 4), np.float32))
        return self._emit(final=True)

    def _add(self, feats: AudioFeatures, rows: np.ndarray) -> None:
        self.feats = AudioFeatures.concatenate([self.feats, feats])
        if len(rows):
            self.rows = np.concatenate([self.rows, rows])

    def total_frames(self) -> int:
        return int(round(self.samples_in / SAMPLE_RATE * self.options.fps))

    def _feature_index(self, frame_index: int) -> int:
        t = frame_index / self.options.fps
        return max(0, int(round((t * SAMPLE_RATE - WINDOW / 2) / HOP)))

    def _emit(self, final: bool, render: bool = True) -> list[Frame]:
        out = []
        limit = self.total_frames() if final else None
        while True:
            i = self.next_frame
            if limit is not None and i >= limit:
                break
            k = self._feature_index(i)
            available = self.row_offset + len(self.rows)
            if not final and max(k + 3, frame_span(k, self.options.fps)[1]) > available:
                break
            if final and available == 0:
                mouth_row = np.zeros(4, np.float32)
            else:
                mouth_row = self._frame_mouth(k, available)
            out.append(self._make_frame(i, k, mouth_row, render=render))
            self.next_frame += 1
        self._trim()
        return out

    def _frame_mouth(self, k: int, available: int) -> np.ndarray:
        """The mouth of the frame centred on feature frame k, from the rows of its span that have arrived."""
        lo, hi = frame_span(k, self.options.fps)
        lo = min(max(lo, self.row_offset), available - 1) - self.row_offset
        hi = min(hi, available) - self.row_offset
        return frame_row(self.rows[lo:max(hi, lo + 1)])

    def _trim(self) -> None:
        """Keep only what future frames can still need, so memory stays flat over hours."""
        k = self._feature_index(self.next_frame)
        keep_from = min(k - 4, frame_span(k, self.options.fps)[0])
        drop = keep_from - self.row_offset
        if drop > 0:
            drop = min(drop, len(self.rows))
            self.rows = self.rows[drop:]
            self.row_offset += drop
        drop_f = keep_from - self._prosody_frame
        if drop_f > 0 and drop_f <= len(self.feats):
            self.feats = AudioFeatures(self.feats.log_mel[drop_f:], self.feats.rms_db[drop_f:], self.feats.pitch_hz[drop_f:])
            self._prosody_frame += drop_f

    def _prosody_at(self, k: int):
        j = k - self._prosody_frame
        if 0 <= j < len(self.feats):
            rms, pitch = float(self.feats.rms_db[j]), float(self.feats.pitch_hz[j])
        else:
            rms, pitch = -90.0, 0.0
        return self.prosody.update(rms, pitch, 1.0 / self.options.fps)

    def _make_frame(self, index: int, k: int, mouth_row: np.ndarray, controls: Controls | None = None,
                    render: bool = True) -> Frame:
        t0 = time.perf_counter()
        t = index / self.options.fps
        controls = controls or self.options.controls.at(t)
        mouth = MouthShape(*(float(v) for v in mouth_row))
        motion = self.motion.step(mouth, self._prosody_at(k), controls)
        self.times.motion += time.perf_counter() - t0
        if not render or self.deferred:   # a live stream that is behind keeps its timeline and motion,
            return Frame(index=index, time=t, image=None, motion=motion)   # skips the picture
        return self.frame_of(motion, index, t)

    def frame_of(self, motion: MotionFrame, index: int, t: float) -> Frame:
        """The finished frame for a motion, from any motion source (speech here, a driving video
        in `follow`): rendered, pasted into the whole picture with framing "full", and marked
        last (watermark, then label), so the marks are never resampled. Frames must be
        finished in frame order: the watermark carries state from frame to frame."""
        return self.marked(self.picture_of(motion), motion, index, t)

    def picture_of(self, motion: MotionFrame) -> np.ndarray:
        """The unmarked picture for a motion: a pure function of it, so any thread may make it."""
        t1 = time.perf_counter()
        image = self.face.render(motion)
        if self.framer is not None:
            image = self.framer.paste(image)
        with self._times_lock:
            self.times.render += time.perf_counter() - t1
        return image

    def marked(self, image: np.ndarray, motion: MotionFrame, index: int, t: float) -> Frame:
        """The frame with its marks, in frame order (see `frame_of`)."""
        inputs = self.mark_inputs(image)
        return self.finished(inputs, self.marks.advance(inputs), motion, index, t)

    # `marked` in three steps for `rendered`: mark_inputs and finished in any thread,
    # self.marks.advance (a few hundred numbers) in frame order
    def mark_inputs(self, image: np.ndarray):
        t0 = time.perf_counter()
        inputs = self.marks.inputs(image)
        with self._times_lock:
            self.times.watermark += time.perf_counter() - t0
        return inputs

    def finished(self, inputs, state, motion: MotionFrame, index: int, t: float) -> Frame:
        t0 = time.perf_counter()
        image = self.marks.finish(inputs, state)
        with self._times_lock:
            self.times.watermark += time.perf_counter() - t0
            self.times.frames += 1
        return Frame(index=index, time=t, image=image, motion=motion)

    # ------------------------------------------------------------------ live timeline
    # A live stream is one continuous audio timeline: speech where there is speech, silence
    # between. Frame i shows samples [sample_at(i), sample_at(i + 1)). The methods below let a
    # stream emit a frame on time whether or not its look-ahead audio has arrived, fill gaps
    # with silence, and drop audio that was pushed but not yet shown.

    def sample_at(self, frame_index: int) -> int:
        """First 16 kHz sample (from the start of the timeline) that frame `frame_index` shows."""
        return int(round(frame_index * SAMPLE_RATE / self.options.fps))

    def samples_needed(self, frame_index: int | None = None) -> int:
        """Samples that must have been pushed in all before `frame_index` (default: the next
        frame) has its full look-ahead: the mouth rows its span averages are all final."""
        k = self._feature_index(self.next_frame if frame_index is None else frame_index)
        last = max(k + 1, frame_span(k, self.options.fps)[1] - 1)   # the last row its span averages
        return (last + self.mouth_model.lookahead_frames) * HOP + WINDOW

    def set_controls(self, controls: Controls | ControlTrack) -> None:
        """Change the controls from the next frame on (the motion eases to them, never jumps)."""
        track = controls if isinstance(controls, ControlTrack) else ControlTrack(base=controls.validated())
        self.options = replace(self.options, controls=track)

    def force_frame(self, controls: Controls | None = None, render: bool = True) -> Frame:
        """The next frame now, with the mouth rows that have arrived (the latest ones where its
        look-ahead is still missing). With full look-ahead it equals what `push_audio` gives.
        render=False advances the timeline and the motion but leaves `image` None."""
        i = self.next_frame
        k = self._feature_index(i)
        available = self.row_offset + len(self.rows)
        if len(self.rows) == 0:
            mouth_row = self._silent_row()
        else:
            mouth_row = self._frame_mouth(k, available)
        frame = self._make_frame(i, k, mouth_row, controls, render)
        self.next_frame += 1
        self._trim()
        return frame

    def push_silence(self, n_samples: int) -> list[Frame]:
        return self.push_audio(np.zeros(max(0, int(n_samples)), np.float32))

    def idle_frame(self, controls: Controls | None = None, render: bool = True) -> Frame:
        """One frame with no speech (breathing, blinks, small head motion), for live idle. The
        timeline advances by one frame of silence, so speech pushed next starts at the next frame.
        Audio pushed but not yet shown is dropped first (see `interrupt`)."""
        i = self.next_frame
        if self.samples_in > self.sample_at(i):
            self.interrupt()
        done = self.push_silence(self.sample_at(i + 1) - self.samples_in)
        if done:  # only a model without look-ahead completes frame i from its own samples
            return done[-1]
        return self.force_frame(controls, render)

    def interrupt(self) -> None:
        """Drop audio pushed but not yet shown: the timeline continues at the next frame with
        silence, mouth closed from that frame on."""
        pos = self.sample_at(self.next_frame)
        k0 = pos // HOP                       # first feature frame that will be recomputed
        self.features = FeatureExtractor()
        self.features.frames_emitted = k0
        self.features._buffer = np.zeros(pos - k0 * HOP, np.float32)  # silence before pos
        self.mouth = self.mouth_model.stream()
        keep = max(0, k0 - self.row_offset)
        self.rows = self.rows[:keep]
        short = k0 - (self.row_offset + len(self.rows))
        if short > 0:
            self.rows = np.concatenate([self.rows, np.repeat(self._silent_row()[None], short, axis=0)])
        keep = max(0, k0 - self._prosody_frame)
        f = self.feats
        f = AudioFeatures(f.log_mel[:keep], f.rms_db[:keep], f.pitch_hz[:keep])
        short = k0 - (self._prosody_frame + len(f))
        if short > 0:
            f = AudioFeatures.concatenate([f, _silent_features(short)])
        self.feats = f
        self.samples_in = pos

    def _silent_row(self) -> np.ndarray:
        """The mouth model's row for silence (lips at rest)."""
        if self._rest_row is None:
            s = self.mouth_model.stream()
            feats = _silent_features(self.mouth_model.lookahead_frames + 8)
            rows = [s.push(feats), s.flush()]
            rows = np.concatenate([r for r in rows if len(r)] or [np.zeros((1, 4), np.float32)])
            self._rest_row = rows[-1].astype(np.float32)
        return self._rest_row


def _silent_features(n: int) -> AudioFeatures:
    """What the extractor gives for n frames of digital silence."""
    from talkface.analysis.audio import compute_frames

    one = compute_frames(np.zeros((1, WINDOW), np.float32))
    return AudioFeatures(np.repeat(one.log_mel, n, axis=0), np.repeat(one.rms_db, n), np.repeat(one.pitch_hz, n))


def in_background(frames: Iterator[Frame], depth: int = 8) -> Iterator[Frame]:
    """Produce frames in a worker thread while the caller encodes them: rendering and
    libx264 then use both cores (numpy, OpenCV and FFmpeg release the GIL)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for f in frames:
                if stop.is_set():
                    return
                q.put(f)
            q.put(done)
        except BaseException as exc:  # re-raised in the caller's thread
            q.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def rendered(anim: Animator, frames: Iterable[Frame], workers: int = RENDER_WORKERS) -> Iterator[Frame]:
    """The pictures of frames made without them (`Animator.deferred`), rendered by `workers`
    threads at once and handed on in order. Rendering is a pure function of the motion, so
    these are the very frames rendering one after another makes; numpy and OpenCV release
    the GIL, so the threads share the cores. The marks are applied here, in frame order
    (the watermark carries state from frame to frame)."""
    from concurrent.futures import ThreadPoolExecutor

    if workers <= 1:
        yield from (f if f.image is not None else anim.frame_of(f.motion, f.index, f.time) for f in frames)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="talkface-render")
    made: deque = deque()     # finished frames, or futures of (frame, mark inputs), in frame order
    marking: deque = deque()  # finished frames, or futures of marked frames, in frame order
    depth = 2 * workers       # enough queued to keep every worker busy
    try:
        for f in frames:
            made.append(f if f.image is not None else pool.submit(_picture_and_inputs, anim, f))
            if len(made) > depth:
                marking.append(_advance(anim, pool, made.popleft()))
            if len(marking) > depth:
                yield _result(marking.popleft())
        while made:
            marking.append(_advance(anim, pool, made.popleft()))
        while marking:
            yield _result(marking.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _picture_and_inputs(anim: Animator, frame: Frame):
    return frame, anim.mark_inputs(anim.picture_of(frame.motion))


def _advance(anim: Animator, pool, item):
    """The watermark's state for the next frame, taken here in frame order; the marking itself
    goes back to the pool."""
    if isinstance(item, Frame):
        return item
    frame, inputs = item.result()
    return pool.submit(anim.finished, inputs, anim.marks.advance(inputs), frame.motion, frame.index, frame.time)


def _result(item) -> Frame:
    return item if isinstance(item, Frame) else item.result()


def generate(portrait: Portrait | FaceModel, audio: Audio, options: GenerateOptions = GenerateOptions(),
             chunk_seconds: float = 0.5, animator: Animator | None = None, workers: int = 1) -> Iterator[Frame]:
    """All frames for one audio clip, in order: round(duration x fps) of them; `workers` > 1
    renders that many pictures at once (the same frames)."""
    face = portrait if isinstance(portrait, FaceModel) else FaceModel(portrait)
    anim = animator or Animator(face, options)
    anim.deferred = workers > 1
    step = int(chunk_seconds * SAMPLE_RATE)

    def motions() -> Iterator[Frame]:
        for start in range(0, len(audio.samples), step):
            yield from anim.push_audio(audio.samples[start:start + step])
        yield from anim.finish()

    yield from rendered(anim, motions(), workers) if workers > 1 else motions()


def follow(face: FaceModel, motions: Iterable[MotionFrame], options: GenerateOptions = GenerateOptions(),
           times: Iterable[float] | None = None, workers: int = 1) -> Iterator[Frame]:
    """Frames of the portrait following given motions (a driving video's), made by the same
    core as `generate`; frame i is at times[i] (default i / fps)."""
    anim = Animator(face, options)
    times = iter(times) if times is not None else None

    def still() -> Iterator[Frame]:
        for i, motion in enumerate(motions):
            t = next(times) if times is not None else i / options.fps
            yield Frame(index=i, time=float(t), image=None, motion=motion)

    yield from rendered(anim, still(), workers)
