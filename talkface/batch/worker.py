"""What runs in a batch worker (a local process or a Ray task): one job through
`render_file`, with the portrait analysed once per worker process (cached by file hash)."""
from __future__ import annotations

import functools
import hashlib
import os
import socket
import time
from pathlib import Path

from talkface.engine import FaceModel
from talkface.errors import TalkfaceError
from talkface.pipeline import Job, check_inputs, load_job_portrait, render_file

FACE_CACHE_SIZE = 8   # portraits kept analysed per worker process


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=FACE_CACHE_SIZE)
def _face(digest: str, job: Job) -> FaceModel:
    """Keyed by the image's content (and size, face index through the job's fields that matter)."""
    return FaceModel(load_job_portrait(job))


def face_for(job: Job) -> FaceModel:
    digest = file_digest(job.image) if job.image is not None else "builtin"
    key = Job(output=Path("-"), image=job.image, text="-", size=job.size, face_index=job.face_index)
    return _face(digest, key)


def run_job(job: Job, node: str | None = None) -> dict:
    """One job's row for results.jsonl; a failure is recorded, never raised."""
    t0 = time.perf_counter()
    row = {"output": job.output.name, "node": node or f"{socket.gethostname()}:{os.getpid()}"}
    try:
        check_inputs(job)
        result = render_file(job, face=face_for(job))
        row.update(status="ok", frames=result.frames, seconds=round(result.seconds, 3))
    except TalkfaceError as exc:
        row.update(status="failed", reason=str(exc))
    except Exception as exc:  # a bug in one job must not stop the batch: recorded as such
        row.update(status="failed", reason=f"internal error: {type(exc).__name__}: {exc}")
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    return row


def run_job_on_ray(job: Job) -> dict:
    import ray

    return run_job(job, node=ray.get_runtime_context().get_node_id())
