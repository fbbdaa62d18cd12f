"""Where the seam threshold comes from: real photographs' own edges.

    talkface eval turns --seam-reference ../shared/data/videos

Every frame of each real talking-face video (the first seconds, cropped like a portrait:
talkface.evaluation.reenact) is scored against the video's first frame exactly as a
rendering is scored against its portrait (talkface.evaluation.seams.seam_score). Real heads
turn, speak and catch the light differently, and their silhouettes, jaws and necks change
with it, but they never tear: the largest of these scores is what a seam must exceed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_SECONDS = 4.0


def video_scores(path: Path, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(scores, |yaw| change in degrees) of every frame with a face after the first."""
    from talkface.analysis import landmarks as lm
    from talkface.analysis.portrait import Portrait, square_crop
    from talkface.analysis.tracking import track_frames
    from talkface.evaluation.reenact import read_frames
    from talkface.evaluation.seams import seam_score

    frames, times = read_frames(path, MAX_SECONDS)
    portrait = Portrait.from_image(frames[0], size=size, name=path.name)
    real = [square_crop(f, portrait.crop_box, size) for f in frames]
    real[0] = portrait.image
    track = track_frames(real, times, name=path.stem)
    scores, yaws = [], []
    yaw0 = lm.head_pose_deg(portrait.points)[0]
    for img, pts in zip(real[1:], track.points[1:]):
        if np.isfinite(pts[0, 0]):
            scores.append(seam_score(portrait.image, portrait.points, img, pts).score)
            yaws.append(abs(lm.head_pose_deg(pts)[0] - yaw0))
    return np.array(scores), np.array(yaws)


def run_reference(folder: Path) -> int:
    from talkface.evaluation.reenact import VIDEO_EXT
    from talkface.evaluation.seams import SEAM_THRESHOLD

    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXT) if folder.is_dir() else [folder]
    if not videos or not videos[0].exists():
        raise ValueError(f"no videos in {folder}")
    every = []
    for v in videos:
        s, yaw = video_scores(v)
        every.append(s)
        print(f"{v.stem:28s} frames {len(s):4d}  yaw change max {yaw.max(initial=0):5.1f}  seam p50 {np.median(s):.3f} "
              f"p99 {np.percentile(s, 99):.3f} max {s.max(initial=0):.3f}", flush=True)
    s = np.concatenate(every)
    print(f"{'ALL':28s} frames {len(s):4d}  seam p50 {np.median(s):.3f} p99 {np.percentile(s, 99):.3f} "
          f"max {s.max():.3f}  (SEAM_THRESHOLD {SEAM_THRESHOLD})")
    return 0
