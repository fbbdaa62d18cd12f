"""`talkface batch`: a local process pool, and a real two-node Ray cluster on this machine."""
import json

import pytest
from conftest import write_wav

N_JOBS = 8
SECONDS = 1.5


@pytest.fixture(scope="module")
def jobs_file(tmp_path_factory, speech_audio):
    """N_JOBS good jobs (audio, text, controls, seeds) and one with an unreadable image."""
    folder = tmp_path_factory.mktemp("jobs")
    write_wav(folder / "speech.wav", speech_audio.samples[16000:16000 + int(16000 * SECONDS)])
    (folder / "broken.png").write_bytes(b"not an image")
    lines = [{"audio": "speech.wav", "output": f"job{i}.mp4", "seed": i,
              **({"emotion": "happy", "head_pose": [-10, 0, 0]} if i % 2 else {})} for i in range(N_JOBS)]
    lines.append({"image": "broken.png", "audio": "speech.wav", "output": "broken.mp4"})
    lines.append({"audio": "speech.wav", "output": "../outside.mp4"})
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def check_results(out, n_ok: int) -> list[dict]:
    """Each good output: the audio's duration, the watermark; the bad ones failed alone."""
    import av

    from talkface.marking.watermark import verify_file

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    failed = {r["output"]: r["reason"] for r in rows if r["status"] == "failed"}
    assert len(ok) == n_ok, rows
    assert "cannot read image" in failed["broken.mp4"]
    assert any("inside the output folder" in reason for reason in failed.values())
    assert not (out.parent / "outside.mp4").exists()
    for r in ok:
        with av.open(str(out / r["output"])) as c:
            assert float(c.duration / av.time_base) == pytest.approx(SECONDS, abs=0.1)
        found = verify_file(out / r["output"])
        assert found.found and found.payload.user_id == 5, r
    return ok


def test_local_pool_and_rerun_skips(tmp_path, jobs_file):
    from talkface.batch.command import run_batch

    out = tmp_path / "out"
    counts = run_batch(jobs_file, out, workers=2, size=256, watermark_id=5)
    assert counts == {"ok": N_JOBS, "failed": 2, "skipped": 0}
    check_results(out, N_JOBS)
    assert not list(out.glob(".*part*")), "a temporary file was left behind"
    again = run_batch(jobs_file, out, workers=2, size=256, watermark_id=5)
    assert again == {"ok": 0, "failed": 2, "skipped": N_JOBS}


def test_ray_cluster_of_two_nodes(tmp_path, jobs_file, monkeypatch):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from talkface.batch.command import run_batch

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        counts = run_batch(jobs_file, out, ray_address=cluster.address, size=256, watermark_id=5)
        assert counts == {"ok": N_JOBS, "failed": 2, "skipped": 0}
        ok = check_results(out, N_JOBS)
        nodes = {r["node"] for r in ok}
        assert len(nodes) == 2, nodes          # both nodes rendered
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_bad_jobs_file_is_one_line(tmp_path, capsys):
    from talkface.cli import main

    assert main(["batch", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "jobs file not found" in err[0]
