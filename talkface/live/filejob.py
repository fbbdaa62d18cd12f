"""One `/v1/generate` job: its uploads handed to the one job pipeline (talkface.pipeline), in a
worker thread, with the pipeline's errors turned into the server's typed client errors."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from talkface.engine import FaceModel, GenerateOptions
from talkface.errors import Cancelled, TalkfaceError, TooLongError
from talkface.live.errors import BadInput, TooLarge
from talkface.live.jobs import JobCancelled, Ticket
from talkface.live.uploads import clean_message, load_portrait


@dataclass(frozen=True)
class FileJob:
    image: Path | None        # uploaded portrait, or None for the built-in one
    audio: Path | None        # uploaded audio, or None when `text` is given
    text: str | None
    voice: str
    options: GenerateOptions
    max_seconds: float
    max_image_pixels: int


class _TicketProgress:
    """The pipeline's progress bar, counting frames on the ticket (its place-in-queue report)."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket

    @property
    def total(self) -> float | None:
        return self.ticket.frames_total

    @total.setter
    def total(self, value: float | None) -> None:
        self.ticket.frames_total = int(value or 0)

    def update(self, n: int = 1) -> None:
        self.ticket.frames_done += n


def render_file_job(ticket: Ticket, job: FileJob, builtin: Callable[[], FaceModel], folder: Path) -> bytes:
    """Blocking: the MP4's bytes. Stops between frames when the ticket is cancelled."""
    from talkface.pipeline import Job, render_file

    face = FaceModel(load_portrait(job.image, job.max_image_pixels)) if job.image is not None else builtin()
    work = Path(tempfile.mkdtemp(prefix="job-", dir=folder))
    try:
        spec = Job(output=work / "out.mp4", audio=job.audio, text=job.text, voice=job.voice, options=job.options,
                   max_seconds=job.max_seconds)
        result = render_file(spec, face=face, progress=_TicketProgress(ticket), cancel=ticket.cancel)
        return result.output.read_bytes()
    except Cancelled:
        raise JobCancelled(ticket.id) from None
    except TooLongError as exc:
        raise TooLarge(_client_message(str(exc), job)) from None
    except TalkfaceError as exc:
        raise BadInput(_client_message(str(exc), job)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _client_message(message: str, job: FileJob) -> str:
    """The pipeline's one-line error as the client should read it (no server paths)."""
    if job.audio is None:
        return f"text: {message}"
    return clean_message(message, job.audio, "the audio upload")
