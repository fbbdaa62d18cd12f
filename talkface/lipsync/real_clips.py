"""Real talking-face clips as lip-sync data: the tracked mouth of a real video (cached), and
which clips are the same footage (kept on one side of every split). Shared by training and
evaluation, which must not import each other."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

# Same footage in two files: always on the same side of a split.
SAME_FOOTAGE = ({"video_woman_frontal_03", "video_woman_hdtf_06"},)


def cache_dir(override: str | None = None) -> Path:
    base = Path(override) if override else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "talkface" / "lipsync"
    base.mkdir(parents=True, exist_ok=True)
    return base


def _key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}|v2".encode()).hexdigest()[:16]


def real_mouth(path: str | Path, cache: str | None = None) -> dict:
    """Per-frame times (from the first audio sample), inner-lip opening and mouth width (IOD
    units) of a real video, cached."""
    from talkface.analysis.tracking import stream_start_gap, track_video

    path = Path(path)
    f = cache_dir(cache) / f"{path.stem}-{_key(path)}.npz"
    if f.is_file():
        with np.load(f) as z:
            return {k: z[k] for k in z.files}
    track = track_video(path)
    out = {"times": track.times.astype(np.float64) + stream_start_gap(path), "opening": track.mouth_opening().astype(np.float64),
           "width": track.mouth_width().astype(np.float64), "points": track.points.astype(np.float32)}
    np.savez_compressed(f, **out)
    return out


def groups_of(names: list[str]) -> list[list[str]]:
    groups, seen = [], set()
    for n in names:
        if n in seen:
            continue
        g = [n]
        for same in SAME_FOOTAGE:
            if n in same:
                g = sorted(x for x in names if x in same)
        seen.update(g)
        groups.append(g)
    return groups
