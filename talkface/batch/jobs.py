"""Batch jobs: one JSON object per line of a JSONL file, checked into `pipeline.Job`s, and the
results file (DIR/results.jsonl) that records each job's outcome and lets a re-run skip what
is done.

A line: {"image": "me.jpg", "audio": "hello.wav", "output": "hello.mp4", "seed": 3,
"emotion": "happy", "head_pose": [-10, 0, 0]}; or "text" (+ "voice") instead of "audio".
Paths are relative to the JSONL file's folder; "output" is a file name inside the output
folder. Controls go by their --controls JSON names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from talkface.engine import GenerateOptions
from talkface.errors import InputError, TalkfaceError
from talkface.motion.controls import ControlTrack, controls_from_mapping
from talkface.pipeline import Job

JOB_KEYS = {"image", "audio", "text", "voice", "output", "seed"}
RESULTS_NAME = "results.jsonl"


@dataclass(frozen=True)
class BatchEntry:
    line: int
    output: str            # the file name inside the output folder (the job's key)
    job: Job | None        # None when the line is invalid
    error: str | None = None


def read_jobs(path: Path, out_dir: Path, size: int = 512, watermark_id: int = 0) -> list[BatchEntry]:
    """Every line of the JSONL file as a BatchEntry; an invalid line is an entry with its error."""
    if path.is_dir() or not path.is_file():
        raise InputError(f"jobs file not found: {path}")
    entries = []
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            item = json.loads(text)
            if not isinstance(item, dict):
                raise InputError(f"{where}: expected a JSON object")
            output = _output_name(item.get("output"), where)
        except (json.JSONDecodeError, InputError) as exc:
            entries.append(BatchEntry(n, f"line-{n}", None, str(exc)))
            continue
        try:
            entries.append(BatchEntry(n, output, _job(item, path.parent, out_dir / output, size, watermark_id, where)))
        except TalkfaceError as exc:
            entries.append(BatchEntry(n, output, None, str(exc)))
    return entries


def _output_name(value, where: str) -> str:
    """A plain .mp4 file name: nothing that leaves the output folder."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: every job needs an 'output' file name")
    name = Path(value)
    if name.is_absolute() or len(name.parts) != 1 or value in (".", "..") or name.suffix.lower() != ".mp4":
        raise InputError(f"{where}: output must be a .mp4 file name inside the output folder, got {value!r}")
    return value


def _job(item: dict, base: Path, output: Path, size: int, watermark_id: int, where: str) -> Job:
    controls = {k: v for k, v in item.items() if k not in JOB_KEYS}
    seed = item.get("seed", 0)
    options = GenerateOptions(seed=seed, watermark_id=watermark_id,
                              controls=ControlTrack(base=controls_from_mapping(controls, where=where)))

    def path(key: str) -> Path | None:
        value = item.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InputError(f"{where}: {key} must be a path, got {value!r}")
        return base / value

    try:
        return Job(output=output, image=path("image"), audio=path("audio"), text=item.get("text"),
                   voice=str(item.get("voice", "en")), options=options, size=size)
    except TalkfaceError as exc:
        raise InputError(f"{where}: {exc}") from None


def finished(out_dir: Path) -> set[str]:
    """Outputs recorded as done in DIR/results.jsonl whose file exists."""
    path = out_dir / RESULTS_NAME
    done = set()
    if path.is_file():
        for text in path.read_text().splitlines():
            try:
                row = json.loads(text)
            except json.JSONDecodeError:
                continue   # a line cut short by a killed run
            if row.get("status") == "ok" and (out_dir / str(row.get("output"))).is_file():
                done.add(row["output"])
    return done


def record(out_dir: Path, row: dict) -> None:
    with open(out_dir / RESULTS_NAME, "a") as f:
        f.write(json.dumps(row) + "\n")
