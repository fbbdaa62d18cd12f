"""Identity drift and flicker over a long render, measured on talkface's own output.

    talkface eval stability [--image IMG] [--minutes 10] [--json FILE] [--sheet PNG]

Two renders of the portrait on silent audio (no watermark unless said):

- still head (motion scale 0) for --still-seconds: frame-to-frame change, in grey levels,
  over the face's skin (the face oval without eyes, brows and mouth, which blinks and
  glances move), over the background, and with the watermark on;
- neutral motion (the default controls: idle head motion, blinks, glances) for --minutes:
  a frame every --every seconds is tracked with the face mesh and compared with the
  portrait: dlib identity distance (optional dependency, as in `eval reenact`), head pose,
  and, between the first and the last minute, the median head pose, the median face shape
  (landmarks after removing position and scale, inter-ocular units), and the mean picture.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np

from talkface.errors import InputError

FPS = 25.0


class StabilityError(InputError):
    """Bad arguments; one line for the user."""


def skin_mask(points: np.ndarray, size: int) -> np.ndarray:
    """The face oval without the eyes, brows and mouth (and a margin round them)."""
    import cv2

    from talkface.analysis import landmarks as lm

    oval = lm.face_oval_mask(points, size) > 0.5
    margin = max(3, int(round(0.12 * lm.interocular(points))))
    moving = np.zeros((size, size), np.uint8)
    for ids in (lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.RIGHT_BROW + lm.RIGHT_LID_RING2,
                lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER + lm.LEFT_BROW + lm.LEFT_LID_RING2,
                lm.LIPS_UPPER_OUTER + lm.LIPS_LOWER_OUTER + (lm.CHIN,)):
        cv2.fillConvexPoly(moving, cv2.convexHull(np.round(points[list(ids), :2]).astype(np.int32)), 1)
    moving = cv2.dilate(moving, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)).astype(bool)
    return oval & ~moving


def frame_changes(frames, regions: dict[str, np.ndarray]) -> dict:
    """Mean |frame(t) - frame(t-1)| (grey levels) per region: mean and largest over the pairs,
    and the share of region pixels that changed by more than 2 levels in any pair."""
    out = {}
    prev = None
    sums = {k: [] for k in regions}
    moved = {k: np.zeros(int(m.sum()), bool) for k, m in regions.items()}
    for img in frames:
        grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        if prev is not None:
            d = np.abs(grey - prev)
            for k, m in regions.items():
                sums[k].append(float(d[m].mean()))
                moved[k] |= d[m] > 2.0
        prev = grey
    for k in regions:
        v = np.array(sums[k])
        out[k] = {"mean": round(float(v.mean()), 4), "max": round(float(v.max()), 4),
                  "share_changed_gt2": round(float(moved[k].mean()), 5)}
    return out


def _frames(face, seconds: float, motion_scale: float, watermark_id, seed: int):
    from talkface.analysis.audio import Audio
    from talkface.engine import GenerateOptions, generate
    from talkface.motion.controls import Controls, ControlTrack

    controls = ControlTrack(base=Controls(motion_scale=motion_scale).validated())
    options = GenerateOptions(fps=FPS, seed=seed, controls=controls, watermark_id=watermark_id)
    return generate(face, Audio.silence(seconds), options)


def still_flicker(face, seconds: float, seed: int) -> dict:
    p = face.portrait
    regions = {"skin": skin_mask(p.points, p.size), "background": p.person_mask < 0.05}
    result = {"seconds": seconds}
    for name, wm in (("no_watermark", None), ("watermarked", 0)):
        result[name] = frame_changes((f.image for f in _frames(face, seconds, 0.0, wm, seed)), regions)
    return result


def shape(points: np.ndarray) -> np.ndarray:
    """Landmarks (x, y) with position and scale removed, in inter-ocular units."""
    from talkface.analysis import landmarks as lm

    xy = points[:, :2] - points[:, :2].mean(axis=0)
    return xy / lm.interocular(points)


def long_run(face, minutes: float, every: float, seed: int, identity, progress) -> dict:
    from talkface.analysis import landmarks as lm
    from talkface.analysis.tracking import FaceTracker

    portrait = face.portrait
    ref = identity.descriptor(portrait.image, portrait.points) if identity else None
    step = int(round(every * FPS))
    window = int(round(10 * FPS))
    total = int(round(minutes * 60 * FPS))
    first_sum = np.zeros(portrait.image.shape, np.float64)
    last_sum = np.zeros(portrait.image.shape, np.float64)
    samples = []
    rss = []
    tracker = FaceTracker()
    try:
        with progress(total, "long render") as bar:
            for f in _frames(face, minutes * 60, 1.0, None, seed):
                if f.index < window:
                    first_sum += f.image
                elif f.index >= total - window:
                    last_sum += f.image
                if f.index % step == 0:
                    pts = tracker.points(f.image)
                    found = bool(np.isfinite(pts[0, 0]))
                    d = identity.descriptor(f.image, pts) if (identity and found) else None
                    samples.append({"time": round(f.time, 2), "found": found, "descriptor": d,
                                    "pose": [round(v, 2) for v in lm.head_pose_deg(pts)] if found else None,
                                    "shape": shape(pts) if found else None,
                                    "id_distance": None if d is None or ref is None else round(float(np.linalg.norm(d - ref)), 4)})
                    rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
                bar.update(1)
    finally:
        tracker.close()

    def minute(lo: float, hi: float):
        return [s for s in samples if lo <= s["time"] < hi and s["found"]]

    end = minutes * 60
    first, last = minute(0, 60), minute(end - 60, end + 1)
    ids = [s["id_distance"] for s in samples if s["id_distance"] is not None]
    per_minute = []
    for m in range(int(np.ceil(minutes))):
        v = [s["id_distance"] for s in minute(60 * m, 60 * (m + 1)) if s["id_distance"] is not None]
        per_minute.append(round(float(np.mean(v)), 4) if v else None)

    def median(items, key):
        return np.median(np.array([s[key] for s in items]), axis=0)

    def descriptors(items):
        return [s["descriptor"] for s in items if s["descriptor"] is not None]

    drift = None
    if descriptors(first) and descriptors(last):
        drift = round(float(np.linalg.norm(np.mean(descriptors(first), axis=0) - np.mean(descriptors(last), axis=0))), 4)
    result = {
        "minutes": minutes, "samples": len(samples), "found": sum(s["found"] for s in samples),
        "id_distance_max": round(max(ids), 4) if ids else None,
        "id_distance_mean_per_minute": per_minute,
        "id_first_vs_last_minute": drift,   # between the minutes' mean descriptors: the render's own drift
        "pose_median_first_minute": [round(float(v), 2) for v in median(first, "pose")] if first else None,
        "pose_median_last_minute": [round(float(v), 2) for v in median(last, "pose")] if last else None,
        "shape_change_iod": round(float(np.median(np.linalg.norm(median(first, "shape") - median(last, "shape"), axis=1))), 5)
        if first and last else None,
        "picture_change_grey": round(float(np.abs(first_sum - last_sum).mean() / window), 3),
        "max_rss_mb_at_first_sample": round(rss[0], 1) if rss else None,
        "max_rss_mb_at_end": round(rss[-1], 1) if rss else None,
    }
    result["time_series"] = [{k: v for k, v in s.items() if k not in ("shape", "descriptor")} for s in samples]
    return result


def write_sheet(path: Path, face, minutes: float, seed: int, columns: int = 6, tile: int = 192) -> None:
    """The portrait and frames spread over the render (the same seed: the frames the long run saw)."""
    import cv2

    wanted = set(int(round(t * FPS)) for t in np.linspace(0, minutes * 60 - 1 / FPS, columns * 2 - 1))
    tiles = [face.portrait.image]
    for f in _frames(face, minutes * 60, 1.0, None, seed):
        if f.index in wanted:
            tiles.append(f.image)
    tiles = [cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in tiles]
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    rows[-1] = np.hstack([rows[-1], np.zeros((tile, tile * columns - rows[-1].shape[1], 3), np.uint8)])
    tmp = path.with_suffix(".tmp.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    tmp.replace(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="portrait (default: the built-in one)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the neutral-motion render; default 10")
    p.add_argument("--every", type=float, default=5.0, help="seconds between tracked frames; default 5")
    p.add_argument("--still-seconds", type=float, default=20.0, help="length of the still-head render; default 20")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--sheet", help="write a PNG of frames spread over the long render (renders it again)")
    p.add_argument("--no-identity", action="store_true", help="skip the dlib identity distance")


def run(args: argparse.Namespace) -> int:
    from talkface.analysis.portrait import Portrait
    from talkface.engine import FaceModel
    from talkface.evaluation.reenact import load_identity_model
    from talkface.progress import progress_bar

    if args.image and not Path(args.image).is_file():
        raise StabilityError(f"image file not found: {args.image}")
    for name, value, lo in (("--minutes", args.minutes, 0.05), ("--every", args.every, 0.04), ("--still-seconds", args.still_seconds, 0.5)):
        if not value >= lo:
            raise StabilityError(f"{name} must be at least {lo:g}, got {value:g}")
    face = FaceModel(Portrait.from_file(args.image) if args.image else Portrait.builtin())
    identity, why = (None, "disabled with --no-identity") if args.no_identity else load_identity_model()
    if identity is None:
        print(f"stability: id_distance is null ({why})", file=sys.stderr)
    still = still_flicker(face, args.still_seconds, args.seed)
    for name in ("no_watermark", "watermarked"):
        r = still[name]
        print(f"still head, {name:12s} frame-to-frame change (grey levels): skin mean {r['skin']['mean']:.3f} "
              f"max {r['skin']['max']:.3f}, pixels ever >2: {100 * r['skin']['share_changed_gt2']:.2f} %; "
              f"background mean {r['background']['mean']:.3f} max {r['background']['max']:.3f}")
    long = long_run(face, args.minutes, args.every, args.seed, identity, progress_bar)
    print(f"{args.minutes:g} min of neutral motion, {long['found']}/{long['samples']} sampled frames with a face: "
          f"id distance to the portrait max {long['id_distance_max']}, mean per minute {long['id_distance_mean_per_minute']}; "
          f"first vs last minute {long['id_first_vs_last_minute']}")
    print(f"first vs last minute: median pose {long['pose_median_first_minute']} -> {long['pose_median_last_minute']} deg, "
          f"face shape {long['shape_change_iod']} IOD, mean picture {long['picture_change_grey']} grey levels; "
          f"peak RSS {long['max_rss_mb_at_first_sample']} -> {long['max_rss_mb_at_end']} MB")
    if args.sheet:
        write_sheet(Path(args.sheet), face, args.minutes, args.seed)
    if args.json:
        report = {"image": args.image or "builtin", "fps": FPS, "still": still, "long": long,
                  "identity_model": None if identity is None else "dlib_face_recognition_resnet_model_v1"}
        tmp = Path(args.json).with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(args.json)
    return 0
