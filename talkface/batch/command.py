"""`talkface batch JOBS.jsonl --out DIR [--ray auto|ADDRESS] [--workers N]`.

Without --ray the jobs run in a local process pool; with it, as Ray tasks on a cluster (the
optional extra `talkface[ray]`). Each job goes through `pipeline.render_file` (atomic,
watermarked output); its outcome is appended to DIR/results.jsonl (with the node that ran it,
or the reason it failed); a failed job never stops the others, and a re-run skips the jobs
recorded as done whose output exists.
"""
from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Iterator

from talkface.batch.jobs import BatchEntry, finished, read_jobs, record
from talkface.batch.worker import run_job, run_job_on_ray
from talkface.errors import InputError
from talkface.pipeline import Job
from talkface.progress import progress_bar


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("jobs", help="JSONL file, one job per line (image, audio or text, output, seed, controls)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--ray", help="run on a Ray cluster: 'auto' or its address (HOST:PORT)")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: CPU count)")
    p.add_argument("--size", type=int, default=512, help="output size in pixels; default 512")
    p.add_argument("--watermark-id", type=int, default=0, help="0..65535, carried in the invisible watermark")


def run(args: argparse.Namespace) -> int:
    summary = run_batch(Path(args.jobs), Path(args.out), ray_address=args.ray, workers=args.workers,
                        size=args.size, watermark_id=args.watermark_id)
    print(f"{summary['ok']} done, {summary['failed']} failed, {summary['skipped']} skipped "
          f"(results in {Path(args.out) / 'results.jsonl'})")
    return 0 if summary["failed"] == 0 else 1


def run_batch(jobs_file: Path, out_dir: Path, ray_address: str | None = None, workers: int | None = None,
              size: int = 512, watermark_id: int = 0) -> dict:
    """Run every job not yet done; returns counts {"ok", "failed", "skipped"}."""
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be 1 or more, got {workers}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out is not a folder: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = read_jobs(jobs_file, out_dir, size=size, watermark_id=watermark_id)
    done = finished(out_dir)
    todo = [e for e in entries if e.output not in done]
    counts = {"ok": 0, "failed": 0, "skipped": len(entries) - len(todo)}
    runnable = [e.job for e in todo if e.job is not None]
    with progress_bar(len(todo), "batch", unit="job") as bar:
        for e in todo:
            if e.job is None:
                _count(out_dir, counts, {"output": e.output, "status": "failed", "reason": e.error, "node": None}, bar)
        rows = _on_ray(runnable, ray_address) if ray_address else _locally(runnable, workers)
        for row in rows:
            _count(out_dir, counts, row, bar)
    return counts


def _count(out_dir: Path, counts: dict, row: dict, bar) -> None:
    record(out_dir, row)
    counts["ok" if row["status"] == "ok" else "failed"] += 1
    bar.update(1)


def _locally(jobs: list[Job], workers: int | None) -> Iterator[dict]:
    if not jobs:
        return
    import multiprocessing

    n = min(workers or os.cpu_count() or 1, len(jobs))
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()


def _on_ray(jobs: list[Job], address: str) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the optional extra: pip install 'talkface[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        except ConnectionError as exc:
            raise InputError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    try:
        task = ray.remote(num_cpus=1)(run_job_on_ray)
        pending = [task.remote(job) for job in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        if connected_here:
            ray.shutdown()


__all__ = ["BatchEntry", "add_arguments", "run", "run_batch"]
