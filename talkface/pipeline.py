"""One file job, from inputs to a finished MP4: the single entry for `talkface generate`,
`talkface drive`, the server's file jobs and `talkface batch`.

    from talkface.pipeline import Job, render_file
    result = render_file(Job(output=Path("out.mp4"), audio=Path("hello.wav")))

Everything a job needs is in the frozen `Job`; `render_file` checks the inputs before any
heavy work, renders through the one frame-by-frame core (`talkface.engine.Animator`), and
writes the file atomically (a temporary file renamed when complete: a failed, cancelled or
killed job leaves nothing behind). Marks are applied last, on the final picture.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol

from talkface.analysis.audio import MAX_DURATION_S, Audio, AudioError, checked_audio, load_audio
from talkface.analysis.portrait import Portrait
from talkface.engine import RENDER_WORKERS, FaceModel, GenerateOptions, follow, generate, in_background
from talkface.errors import Cancelled, InputError, TooLongError
from talkface.marking.provenance import SigningIdentity
from talkface.output.video import check_output_path, write_video

SIZE_RANGE = (64, 2048)           # output size in pixels (the head crop's side)
OUTPUT_AUDIO_RATE = 48000         # the MP4's audio track keeps this quality
# espeak-ng speaks about 900 characters a minute at its default rate (100k characters became
# 110 minutes): the text limit that matches the audio cap
SPOKEN_CHARS_PER_MINUTE = 900
MAX_TEXT_CHARS = int(MAX_DURATION_S / 60 * SPOKEN_CHARS_PER_MINUTE)


class Progress(Protocol):
    total: float | None

    def update(self, n: int = 1) -> object: ...


@dataclass(frozen=True)
class Job:
    """One video to make. Exactly one motion source: `audio` (a file), `text` (spoken offline in
    `voice`) or `driver` (a driving video: its head motion, expressions and audio)."""

    output: Path
    image: Path | None = None          # None: the built-in portrait
    audio: Path | None = None
    text: str | None = None
    voice: str = "en"
    driver: Path | None = None
    options: GenerateOptions = GenerateOptions()   # fps, seed, controls, watermark_id, label, framing
    size: int = 512
    face_index: int = 0
    c2pa: SigningIdentity | None = None
    max_seconds: float = MAX_DURATION_S   # longest input audio (or driver) accepted

    def __post_init__(self) -> None:
        sources = [s for s in (self.audio, self.text, self.driver) if s is not None]
        if len(sources) != 1:
            raise InputError("give one of: an audio file, a text to speak, or a driving video")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not SIZE_RANGE[0] <= self.size <= SIZE_RANGE[1]:
            raise InputError(f"size must be between {SIZE_RANGE[0]} and {SIZE_RANGE[1]} pixels, got {self.size!r}")
        if isinstance(self.face_index, bool) or not isinstance(self.face_index, int) or self.face_index < 0:
            raise InputError(f"face index must be 0 or more, got {self.face_index!r}")
        if self.text is not None:
            if not isinstance(self.text, str):
                raise InputError(f"text must be a string, got {type(self.text).__name__}")
            if len(self.text) > MAX_TEXT_CHARS:
                raise InputError(f"text is {len(self.text)} characters; the limit is {MAX_TEXT_CHARS} "
                                 f"(about {MAX_DURATION_S / 60:g} minutes of speech)")
        if not 0 < self.max_seconds <= MAX_DURATION_S:
            raise InputError(f"max_seconds must be between 0 and {MAX_DURATION_S:g}, got {self.max_seconds:g}")


@dataclass(frozen=True)
class JobResult:
    output: Path
    frames: int
    fps: float
    seconds: float           # video duration: frames / fps


def render_file(job: Job, *, face: FaceModel | None = None, progress: Progress | None = None,
                cancel: threading.Event | Callable[[], bool] | None = None) -> JobResult:
    """Make `job.output`. Raises a TalkfaceError (one line) for anything the user can fix.

    face: the job's portrait already analysed (a server or batch worker reusing it), else it is
      analysed here from job.image (or the built-in portrait) at job.size.
    progress: a tqdm-like bar: its `total` is set to the frame count once known, and
      `update(1)` is called after each frame written.
    cancel: an Event, or a callable returning True, checked between frames; when set, the job
      stops with `talkface.errors.Cancelled` and nothing is written.
    """
    out = check_output_path(job.output)
    check_inputs(job)
    if job.driver is not None:
        return _render_driven(job, out, face, progress, cancel)
    audio, track = load_job_audio(job)
    face = face or FaceModel(load_job_portrait(job))
    total = int(round(audio.duration * job.options.fps))
    frames = in_background(generate(face, audio, job.options, workers=RENDER_WORKERS))
    return _write(job, out, frames, track, job.options.fps, progress, cancel, total)


def check_inputs(job: Job) -> None:
    """The cheap checks, before any heavy work: the input files exist and are files."""
    for what, path in (("image", job.image), ("audio", job.audio), ("driving video", job.driver)):
        if path is None:
            continue
        path = Path(path)
        if path.is_dir():
            raise InputError(f"{what} path is a folder, not a file: {path}")
        if not path.is_file():
            raise InputError(f"{what} file not found: {path}")


def load_job_audio(job: Job) -> tuple[Audio, Audio]:
    """(analysis audio at 16 kHz, the output track at its native quality)."""
    if job.text is not None:
        from talkface.analysis.speech import speak

        spoken = speak(job.text, voice=job.voice)
        if len(spoken.samples) > job.max_seconds * spoken.sample_rate:
            raise TooLongError(f"the spoken text is longer than the {job.max_seconds:g} s limit")
        track = checked_audio(spoken.samples, spoken.sample_rate, "text", rate=spoken.sample_rate)
        return checked_audio(spoken.samples, spoken.sample_rate, "text"), track
    audio = load_audio(job.audio, max_duration=job.max_seconds)
    if audio.duration > job.max_seconds:
        raise TooLongError(f"audio is longer than the {job.max_seconds:g} s limit: {job.audio}")
    return audio, load_audio(job.audio, max_duration=job.max_seconds, rate=OUTPUT_AUDIO_RATE)


def load_job_portrait(job: Job) -> Portrait:
    if job.image is None:
        return Portrait.builtin(job.size)
    return Portrait.from_file(job.image, size=job.size, face_index=job.face_index)


def _render_driven(job: Job, out: Path, face: FaceModel | None, progress, cancel) -> JobResult:
    """A driving video as the motion source: its tracked motion through the same core."""
    from talkface.analysis.tracking import track_video
    from talkface.face.drive import DriveError, frame_rate, motions_from_points

    face = face or FaceModel(load_job_portrait(job))
    try:
        track = track_video(job.driver, max_seconds=job.max_seconds)
    except InputError:
        raise
    except Exception as exc:  # FFmpeg's many errors: one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DriveError(f"cannot read driving video {job.driver}: {first}") from None
    if len(track.times) == 0:
        raise DriveError(f"no video frames in {job.driver}")
    motions = motions_from_points(track.points, eye_reference="typical")
    try:
        audio = load_audio(job.driver, max_duration=job.max_seconds, rate=OUTPUT_AUDIO_RATE)
        audio = Audio(audio.samples[: int(job.max_seconds * audio.sample_rate)], audio.sample_rate)
    except AudioError:
        audio = None  # a silent driver makes a silent video
    options = replace(job.options, fps=frame_rate(track.times))
    frames = in_background(follow(face, motions, options, track.times, workers=RENDER_WORKERS))
    return _write(job, out, frames, audio, options.fps, progress, cancel, len(motions))


def _write(job: Job, out: Path, frames, track: Audio | None, fps: float, progress, cancel, total: int) -> JobResult:
    count = 0

    def counted():
        nonlocal count
        try:
            for frame in frames:
                if cancel is not None and (cancel.is_set() if isinstance(cancel, threading.Event) else cancel()):
                    raise Cancelled(f"cancelled after {count} of {total} frames: {out}")
                count += 1
                yield frame
        finally:
            frames.close()   # stop the rendering thread, whatever ended the job

    if progress is not None:
        progress.total = total
    write_video(out, counted(), track, fps=fps, on_frame=progress.update if progress else None, c2pa=job.c2pa)
    return JobResult(output=out, frames=count, fps=fps, seconds=count / fps)

