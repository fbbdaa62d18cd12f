"""`talkface eval batch`: jobs per minute of `talkface batch` on a Ray cluster of 1 node against
2 nodes, both started on this machine (ray.cluster_utils.Cluster; one CPU per node). On one
machine a second node shows the mechanism (jobs spread over nodes), not a speed-up beyond
what the machine's cores give."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from talkface.batch.command import run_batch
from talkface.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=8, help="jobs per run; default 8")
    p.add_argument("--seconds", type=float, default=2.0, help="audio per job; default 2")
    p.add_argument("--size", type=int, default=256, help="output size; default 256")
    p.add_argument("--json", help="also write the figures to this JSON file")


def _jobs_file(folder: Path, n: int, seconds: float) -> Path:
    import numpy as np
    import soundfile as sf

    from talkface.analysis.audio import SAMPLE_RATE

    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    speechlike = 0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    sf.write(str(folder / "a.wav"), speechlike.astype(np.float32), SAMPLE_RATE)
    lines = [json.dumps({"audio": "a.wav", "output": f"j{i}.mp4", "seed": i}) for i in range(n)]
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(nodes: int, jobs: int, seconds: float, size: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory(prefix="talkface-batch-bench-") as tmp:
            folder = Path(tmp)
            jobs_file = _jobs_file(folder, jobs, seconds)
            t0 = time.perf_counter()
            counts = run_batch(jobs_file, folder / "out", ray_address=cluster.address, size=size)
            wall = time.perf_counter() - t0
            rows = [json.loads(x) for x in (folder / "out" / "results.jsonl").read_text().splitlines()]
        used = len({r["node"] for r in rows if r["status"] == "ok"})
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    return {"nodes": nodes, "jobs": jobs, "ok": counts["ok"], "nodes_used": used, "wall_s": round(wall, 2),
            "jobs_per_minute": round(60.0 * counts["ok"] / wall, 2)}


def run(args: argparse.Namespace) -> int:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise InputError("eval batch needs the optional extra: pip install 'talkface[ray]'") from None
    if args.jobs < 1 or args.seconds <= 0:
        raise InputError("--jobs must be 1 or more and --seconds positive")
    results = [measure(n, args.jobs, args.seconds, args.size) for n in (1, 2)]
    for r in results:
        print(f"{r['nodes']} node(s): {r['ok']}/{r['jobs']} jobs in {r['wall_s']:.1f} s = {r['jobs_per_minute']:.1f} jobs/min "
              f"({r['nodes_used']} node(s) used)")
    print(f"machine: {os.cpu_count()} cores; both nodes run on it, so a second node shows the mechanism, "
          "not more compute than the cores give")
    out = {"runs": results, "cpu_count": os.cpu_count(), "seconds_per_job": args.seconds, "size": args.size}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0
