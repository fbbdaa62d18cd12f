"""One `/v1/generate` job, assembled from its uploads and rendered in a worker thread: audio (a
file or offline speech), the portrait (an upload, or the built-in one), then the MP4."""
from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from talkface.engine import FaceModel, GenerateOptions
from talkface.live.errors import BadInput, TooLarge
from talkface.live.jobs import Ticket
from talkface.live.uploads import clean_message, load_portrait

TRACK_RATE = 48000   # Hz of the MP4's audio track


@dataclass(frozen=True)
class FileJob:
    image: Path | None        # uploaded portrait, or None for the built-in one
    audio: Path | None        # uploaded audio, or None when `text` is given
    text: str | None
    voice: str
    options: GenerateOptions
    max_seconds: float
    max_image_pixels: int


def load_job_audio(job: FileJob):
    """(analysis audio at 16 kHz, the MP4's audio track); typed errors for the client."""
    from talkface.analysis.audio import AudioError, checked_audio, load_audio
    from talkface.analysis.speech import SpeechError, speak

    limit = job.max_seconds
    if job.text is not None:
        try:
            spoken = speak(job.text, voice=job.voice)
        except SpeechError as exc:
            raise BadInput(f"text: {exc}") from None
        if len(spoken.samples) / spoken.sample_rate > limit:
            raise TooLarge(f"the spoken text is longer than the {limit:g} s limit")
        try:
            return (checked_audio(spoken.samples, spoken.sample_rate, "text"),
                    checked_audio(spoken.samples, spoken.sample_rate, "text", rate=spoken.sample_rate))
        except AudioError as exc:
            raise BadInput(f"text: {exc}") from None
    try:
        audio = load_audio(job.audio)    # capped by load_audio's own 15-minute limit
        if audio.duration > limit:
            raise TooLarge(f"audio is longer than the {limit:g} s limit")
        return audio, load_audio(job.audio, rate=TRACK_RATE)
    except AudioError as exc:
        raise BadInput(clean_message(str(exc), job.audio, "the audio upload")) from None


def render_file_job(ticket: Ticket, job: FileJob, builtin: Callable[[], FaceModel], folder: Path) -> bytes:
    """Blocking: the MP4's bytes. Stops between frames when the ticket is cancelled."""
    from talkface.engine import generate
    from talkface.output.video import write_video

    audio, track = load_job_audio(job)
    face = FaceModel(load_portrait(job.image, job.max_image_pixels)) if job.image is not None else builtin()
    ticket.frames_total = math.ceil(audio.duration * job.options.fps)
    work = Path(tempfile.mkdtemp(prefix="job-", dir=folder))
    try:
        frames = generate(face, audio, job.options)
        out = write_video(work / "out.mp4", frames, track, fps=job.options.fps, on_frame=ticket.progress)
        return out.read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
