"""`talkface data prepare DIR... --out CACHE [--workers N] [--speakers TSV]`: track every
real clip once and cache what training and evaluation need (talkface.data.clip), in
parallel over clips, resumable (complete cache files are skipped), with an index.json
listing each clip's speaker, emotion, offset, and why it or parts of it were rejected.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from talkface.data.clip import ClipJob, is_complete, prepare_clip, read_meta, refresh_sync
from talkface.data.speakers import SpeakerTable, emotion_of

VIDEO_EXT = {".mp4", ".mpg", ".mpeg", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
INDEX = "index.json"
MOTION_ONLY_FOLDERS = {"motion_only"}   # footage without the speaker's own speech (fetched-data/README.md)


def find_videos(dirs: list[str]) -> list[Path]:
    out = []
    for d in dirs:
        d = Path(d)
        if d.is_file() and d.suffix.lower() in VIDEO_EXT:
            out.append(d)
        elif d.is_dir():
            out.extend(sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXT
                              and not p.name.startswith(".")))
        else:
            raise ValueError(f"not a folder or video: {d}")
    return out


def speaker_table(dirs: list[str], override: str | None) -> SpeakerTable:
    """The built-in groups, then each folder's MANIFEST.tsv speaker column, then --speakers."""
    table = SpeakerTable()
    for d in dirs:
        manifest = Path(d) / "MANIFEST.tsv"
        if manifest.is_file() and "speaker" in manifest.read_text(encoding="utf-8").split("\n", 1)[0].lower().split("\t"):
            table = table.with_file(manifest)
    return table.with_file(override) if override else table


def make_jobs(videos: list[Path], table: SpeakerTable, out: Path) -> list[ClipJob]:
    stems = [p.stem for p in videos]
    jobs = []
    for p in videos:
        clip_id = p.stem if stems.count(p.stem) == 1 else f"{p.parent.name}__{p.stem}"
        jobs.append(ClipJob(str(p.resolve()), clip_id, table.speaker(p.stem), emotion_of(p.stem), str(out / f"{clip_id}.npz"),
                            no_speech=bool(MOTION_ONLY_FOLDERS & set(p.parts))))
    return jobs


def _duration(path: str) -> float:
    import av

    try:
        with av.open(path) as c:
            return float(c.duration or 0) / 1e6
    except Exception:  # only for the progress bar's weights
        return 1.0


def run_jobs(jobs: list[ClipJob], workers: int, log=print) -> list[dict]:
    """Prepare the clips in a process pool (spawned: MediaPipe does not survive a fork),
    with a progress bar weighted by clip duration."""
    from multiprocessing import get_context

    from tqdm import tqdm

    weights = {j.clip_id: max(1, round(_duration(j.path))) for j in jobs}   # whole seconds of video
    metas = []
    with tqdm(total=sum(weights.values()), unit="s", desc="tracking", file=sys.stderr) as bar:
        if workers <= 1:
            for j in jobs:
                metas.append(_report(prepare_clip(j), log))
                bar.update(weights[j.clip_id])
            return metas
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(prepare_clip, j): j for j in jobs}
            for f in as_completed(futures):
                metas.append(_report(f.result(), log))
                bar.update(weights[futures[f].clip_id])
    return metas


def _report(meta: dict, log) -> dict:
    bad = [s for s in meta.get("rejected_stretches", []) if s["reason"] != "short stretch"]
    msg = f"{meta['clip']}: speaker {meta['speaker']}"
    if meta.get("rejected"):
        msg += f", REJECTED ({meta['rejected']})"
    else:
        msg += (f", {meta['usable_s']:.1f} of {meta['duration_s']:.1f} s usable, av lag {meta['av_lag_s']} s "
                f"(r {meta['av_r']}, {'corrected' if meta['av_reliable'] else 'not corrected'})")
        if meta.get("lipsync_rejected"):
            msg += f", not for lip sync ({meta['lipsync_rejected']})"
    if bad:
        msg += "; rejected stretches: " + ", ".join(f"{s['start_s']:.2f}-{s['end_s']:.2f} s {s['reason']}" for s in bad[:4])
        msg += f" (+{len(bad) - 4} more)" if len(bad) > 4 else ""
    log(msg)
    return meta


def write_index(out: Path, jobs: list[ClipJob] = ()) -> dict:
    """index.json from every complete clip file in the cache (atomic), with this run's labels
    (speaker, emotion, motion-only) over the ones recorded when each clip was tracked."""
    labels = {j.clip_id: j.labels() for j in jobs}
    clips = {}
    for f in sorted(out.glob("*.npz")):
        if f.name.startswith("."):
            continue
        try:
            meta = read_meta(f)
        except (OSError, ValueError, KeyError):
            continue
        clips[meta["clip"]] = {**meta, **labels.get(meta["clip"], {}), "file": f.name}
    index = {"pipeline": "talkface data prepare", "clips": clips,
             "speakers": sorted({m["speaker"] for m in clips.values()}),
             "lipsync_clips": sum(1 for m in clips.values() if m.get("use_lipsync")),
             "motion_clips": sum(1 for m in clips.values() if m.get("use_motion"))}
    tmp = out / f".{INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    os.replace(tmp, out / INDEX)
    return index


def prepare(dirs: list[str], out: Path, workers: int = 2, speakers: str | None = None, log=print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    jobs = make_jobs(find_videos(dirs), speaker_table(dirs, speakers), out)
    if not jobs:
        raise ValueError(f"no videos in {', '.join(dirs)}")
    todo = [j for j in jobs if not is_complete(j)]
    log(f"{len(jobs)} clips, {len(jobs) - len(todo)} already cached, {len(todo)} to track")
    resynced = sum(refresh_sync(j) for j in jobs if j not in todo)
    if resynced:
        log(f"re-estimated the audio-video offset of {resynced} cached clips (newer estimator)")
    run_jobs(todo, workers, log)
    index = write_index(out, jobs)
    log(f"index: {len(index['clips'])} clips, {len(index['speakers'])} speakers, "
        f"{index['lipsync_clips']} for lip sync, {index['motion_clips']} for motion -> {out / INDEX}")
    return index


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", help="folders (searched recursively) or video files")
    p.add_argument("--out", required=True, help="cache folder (one .npz per clip and index.json)")
    p.add_argument("--workers", type=int, default=2, help="processes tracking clips in parallel; default 2")
    p.add_argument("--speakers", help="TSV of clip<TAB>speaker rows that override the speaker ids")


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    prepare(args.dirs, Path(args.out), args.workers, args.speakers, log=lambda s: print(s, flush=True))
    return 0
