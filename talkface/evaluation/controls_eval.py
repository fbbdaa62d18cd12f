"""How well the controls are obeyed, measured on talkface's own output.

    talkface eval controls --json controls.json

Renders the built-in portrait (no watermark) under a grid of constant controls with the
head otherwise still (motion scale 0, silent audio), tracks the frames with the same face
mesh every measurement uses (`tracking.FaceTracker`), and compares with what was asked:

- pose_err_deg: |measured - requested| head pose offset (yaw, pitch, roll; L2 norm over
  the three angles), the measurement taken relative to a render without offset
- gaze_err_deg: |measured - requested| gaze in the camera's frame (head pose change plus
  the eyes' rotation read from the irises, zero = irises centred with the head frontal);
  'camera' requests (0, 0), also with the head turned away
- distance_err_rel: |measured size x requested distance - 1|, size = inter-ocular
  distance relative to distance 1
- emotions: for each emotion at full strength, how the mouth corners, inner brows, brows
  and eye aperture move against neutral (inter-ocular units, head-aligned), whether each
  moves the expected way, and whether speech stays in sync (the tracked mouth opening on a
  spoken sentence, correlated with neutral's, and its mean relative to neutral)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from talkface.errors import InputError

FPS = 25.0
SETTLE_FRAMES = 30      # controls ease in over ~1 s; measure after
MEASURE_FRAMES = 12

POSE_GRID = ((10, 0, 0), (-10, 0, 0), (20, 0, 0), (-20, 0, 0), (0, 10, 0), (0, -10, 0), (0, 15, 0), (0, -15, 0),
             (0, 0, 10), (0, 0, -10), (15, 8, 5), (-12, -8, -6))
GAZE_GRID = (("camera", (0, 0, 0)), ((10, 0), (0, 0, 0)), ((-10, 0), (0, 0, 0)), ((20, 0), (0, 0, 0)),
             ((-20, 0), (0, 0, 0)), ((0, 8), (0, 0, 0)), ((0, -8), (0, 0, 0)), ((10, 5), (0, 0, 0)),
             ("camera", (15, 0, 0)), ("camera", (-15, 0, 0)), ("camera", (0, 10, 0)), ((10, 0), (-10, 0, 0)))
DISTANCES = (0.6, 0.8, 1.2, 1.5)
# Expected direction of each measure against neutral: +1 up / wider, -1 down / narrower.
EXPECTED = {
    "happy": {"mouth_corners": +1, "eye_aperture": -1},
    "sad": {"mouth_corners": -1, "brow_inner": +1, "eye_aperture": -1},
    "angry": {"mouth_corners": -1, "brow_inner": -1, "brow": -1, "eye_aperture": +1},
    "surprised": {"brow": +1, "brow_inner": +1, "eye_aperture": +1},
}
MIN_CHANGE = {"mouth_corners": 0.01, "brow_inner": 0.01, "brow": 0.01, "eye_aperture": 0.01}
SENTENCE = "Hello there, my name is Anna and I am happy to meet you today. How are you?"


def _still_points(face, motion):
    """Face-mesh points of one rendered still, tracked a few times so the tracker settles."""
    from talkface.analysis.tracking import track_still

    return track_still(face.render(motion))

def _frames(face, controls, audio, seed: int = 0):
    from talkface.engine import GenerateOptions, generate
    from talkface.motion.controls import ControlTrack

    opts = GenerateOptions(fps=FPS, seed=seed, watermark_id=None, controls=ControlTrack(base=controls.validated()))
    return [f.image for f in generate(face, audio, opts)]


def _track(frames):
    """Points of every frame, one tracker over the sequence."""
    import numpy as np

    from talkface.analysis.tracking import FaceTracker

    tracker = FaceTracker()
    try:
        return np.array([tracker.points(f) for f in frames])
    finally:
        tracker.close()


def face_measures(points) -> dict:
    """Head pose, camera-frame-ready eye rotation, size, and expression measures of one frame."""
    import numpy as np

    from talkface.analysis import landmarks as lm
    from talkface.analysis.landmarks import gaze_deg

    iod = lm.interocular(points)
    # the eye corners: a reference the lids (blinks, wide eyes, squints) do not move
    right = points[[33, 133], :2].mean(axis=0)
    left = points[[263, 362], :2].mean(axis=0)
    x_axis = (left - right) / np.linalg.norm(left - right)
    y_axis = np.array([-x_axis[1], x_axis[0]])
    eye_mid = (left + right) / 2

    def height(ids):  # above the eye line, in inter-ocular distances (up > 0)
        return float(-np.mean((points[list(ids), :2] - eye_mid) @ y_axis) / iod)

    return {
        "pose": np.array(lm.head_pose_deg(points)),
        "gaze": np.array(gaze_deg(points)),
        "iod": iod,
        "mouth_corners": height(lm.MOUTH_CORNERS) - height((0, 17)),   # relative to the lips' middle
        "brow_inner": height(lm.RIGHT_BROW_INNER + lm.LEFT_BROW_INNER),
        "brow": height(lm.RIGHT_BROW + lm.LEFT_BROW),
        "eye_aperture": 0.5 * (lm.eye_aperture(points, "right") + lm.eye_aperture(points, "left")),
        "mouth_opening": lm.mouth_opening(points),
    }


def settled(points) -> dict:
    """Median of each measure over the settled frames (robust to a blink)."""
    import numpy as np

    ms = [face_measures(p) for p in points[SETTLE_FRAMES:SETTLE_FRAMES + MEASURE_FRAMES] if np.isfinite(p[0, 0])]
    if not ms:
        raise RuntimeError("the tracker found no face in the rendered frames")
    return {k: np.median(np.array([m[k] for m in ms]), axis=0) for k in ms[0]}


def _round(x, nd=3):
    import numpy as np

    if isinstance(x, (list, tuple, np.ndarray)):
        return [round(float(v), nd) for v in x]
    return round(float(x), nd)


def evaluate(log=lambda m: None, image: str | None = None) -> dict:
    import numpy as np

    from talkface.analysis.audio import Audio
    from talkface.analysis.portrait import Portrait
    from talkface.engine import FaceModel
    from talkface.motion.controls import Controls
    from talkface.motion.generator import Expression, MotionFrame

    face = FaceModel(Portrait.from_file(image) if image else Portrait.builtin())
    silence = Audio.silence((SETTLE_FRAMES + MEASURE_FRAMES + 1) / FPS)
    still = Controls(motion_scale=0.0)

    # references: the portrait at rest, and with its irises centred (gaze zero)
    ref = settled(_track(_frames(face, still, silence)))
    centred = MotionFrame(expression=Expression(gaze_yaw=-face.rest_gaze[0], gaze_pitch=-face.rest_gaze[1]))
    fm = face_measures(_still_points(face, centred))
    gaze_zero = fm["gaze"] + (fm["pose"][:2] - ref["pose"][:2])   # so that this frame reads as gaze (0, 0)

    result: dict = {"portrait": image or "built-in", "fps": FPS}
    pose_rows = []
    for req in POSE_GRID:
        m = settled(_track(_frames(face, Controls(motion_scale=0.0, head_pose=tuple(map(float, req))), silence)))
        got = m["pose"] - ref["pose"]
        err = float(np.linalg.norm(got - np.array(req)))
        pose_rows.append({"requested": list(req), "measured": _round(got, 2), "err_deg": round(err, 2)})
        log(f"head-pose {req}: measured {_round(got, 1)} err {err:.2f}")
    gaze_rows = []
    for gaze, pose in GAZE_GRID:
        c = Controls(motion_scale=0.0, head_pose=tuple(map(float, pose)),
                     gaze=None if gaze == "camera" else tuple(map(float, gaze)), gaze_camera=gaze == "camera")
        m = settled(_track(_frames(face, c, silence)))
        got = (m["pose"][:2] - ref["pose"][:2]) + (m["gaze"] - gaze_zero)
        want = np.zeros(2) if gaze == "camera" else np.array(gaze, float)
        err = float(np.linalg.norm(got - want))
        gaze_rows.append({"requested": gaze if gaze == "camera" else list(gaze), "head_pose": list(pose),
                          "measured": _round(got, 2), "err_deg": round(err, 2)})
        log(f"gaze {gaze} head {pose}: measured {_round(got, 1)} err {err:.2f}")
    dist_rows = []
    for d in DISTANCES:
        m = settled(_track(_frames(face, Controls(motion_scale=0.0, head_distance=d), silence)))
        size = m["iod"] / ref["iod"]
        err = abs(size * d - 1.0)
        dist_rows.append({"requested": d, "measured_size": round(float(size), 4), "err_rel": round(float(err), 4)})
        log(f"head-distance {d}: size {size:.3f} (want {1 / d:.3f}) err {err:.3f}")
    result["pose_err_deg"] = round(float(np.mean([r["err_deg"] for r in pose_rows])), 3)
    result["gaze_err_deg"] = round(float(np.mean([r["err_deg"] for r in gaze_rows])), 3)
    result["distance_err_rel"] = round(float(np.mean([r["err_rel"] for r in dist_rows])), 4)
    result["pose"], result["gaze"], result["distance"] = pose_rows, gaze_rows, dist_rows
    result["emotions"] = emotions(face, silence, ref, log)
    result["checks"] = {
        "pose_within_3deg": result["pose_err_deg"] <= 3.0,
        "gaze_within_3deg": result["gaze_err_deg"] <= 3.0,
        "distance_within_5pct": result["distance_err_rel"] <= 0.05,
        "emotions_expected_direction": all(e["ok"] for e in result["emotions"].values()),
    }
    return result


def emotions(face, silence, ref, log) -> dict:
    import numpy as np

    from talkface.analysis import landmarks as lm
    from talkface.analysis.audio import checked_audio
    from talkface.motion.controls import EMOTIONS, Controls

    speech = None
    try:
        from talkface.analysis.speech import speak

        spoken = speak(SENTENCE)
        speech = checked_audio(spoken.samples, spoken.sample_rate)
    except Exception as exc:  # no offline voice: the sync check is skipped, said so in the result
        log(f"speech synthesis unavailable ({exc}); skipping the speech-sync check")
    neutral_mouth = None
    out = {}
    for name in ("neutral",) + tuple(e for e in EMOTIONS if e != "neutral"):
        c = Controls(motion_scale=0.0, emotion=name, emotion_strength=1.0)
        m = settled(_track(_frames(face, c, silence)))
        row: dict = {k: round(float(m[k] - ref[k]), 4) for k in MIN_CHANGE}
        ok = True
        for k, sign in EXPECTED.get(name, {}).items():
            moved = (m[k] - ref[k]) * sign >= MIN_CHANGE[k]
            row[f"{k}_ok"] = bool(moved)
            ok &= bool(moved)
        row["expected"] = {k: ("up/wider" if v > 0 else "down/narrower") for k, v in EXPECTED.get(name, {}).items()}
        if speech is not None:
            pts = _track(_frames(face, Controls(motion_scale=0.0, emotion=name, emotion_strength=1.0), speech, seed=1))
            mouth = np.array([lm.mouth_opening(p) if np.isfinite(p[0, 0]) else np.nan for p in pts])
            if neutral_mouth is None:
                neutral_mouth = mouth
            n = min(len(mouth), len(neutral_mouth))
            a, b = mouth[:n], neutral_mouth[:n]
            good = np.isfinite(a) & np.isfinite(b)
            corr = float(np.corrcoef(a[good], b[good])[0, 1])
            ratio = float(np.nanmean(np.maximum(a - np.nanmin(a), 0)) / max(np.nanmean(b - np.nanmin(b)), 1e-6))
            row["mouth_sync_corr"] = round(corr, 3)          # tracked mouth opening vs neutral's, same sentence
            row["mouth_motion_ratio"] = round(ratio, 3)      # how much the mouth moves, relative to neutral
            sync_ok = corr >= 0.8 and ratio >= 0.7
            row["speech_sync_ok"] = bool(sync_ok)
            ok &= sync_ok
        row["ok"] = bool(ok)
        out[name] = row
        log(f"emotion {name}: " + ", ".join(f"{k}={v}" for k, v in row.items() if not isinstance(v, dict)))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--image", help="portrait to test on (default: the built-in one, which motion.py is calibrated on)")
    p.add_argument("--calibrate", action="store_true",
                   help="instead: measure the rig's head and eye response tables that motion.py inverts")


def run(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.calibrate:
        tables = calibrate(log)
        print(tables_source(tables))
        if args.json:
            Path(args.json).write_text(json.dumps(tables, indent=2))
        return 0
    if args.image and not Path(args.image).is_file():
            raise InputError(f"image file not found: {args.image}")
    result = evaluate(log, args.image)
    print(f"gaze_err_deg {result['gaze_err_deg']:.2f}  pose_err_deg {result['pose_err_deg']:.2f}  "
          f"distance_err_rel {result['distance_err_rel']:.4f}")
    for name, row in result["emotions"].items():
        print(f"{name:<10} {'ok' if row['ok'] else 'NOT OK'}  " +
              "  ".join(f"{k}={row[k]:+.3f}" for k in MIN_CHANGE) +
              (f"  sync_corr={row['mouth_sync_corr']:.2f}" if "mouth_sync_corr" in row else ""))
    print("checks: " + ", ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in result["checks"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0



# ----------------------------------------------------------------------------- calibration
HEAD_SWEEP = {"yaw": tuple(range(-40, 41, 5)), "pitch": tuple(range(-35, 36, 5)), "roll": tuple(range(-25, 26, 5))}
EYE_SWEEP = {"yaw": tuple(range(-35, 36, 5)), "pitch": tuple(range(-35, 36, 5))}


def calibrate(log=lambda m: None) -> dict:
    """The rig's response as the tracker reads it, on the built-in portrait: for each head
    axis and eye axis, commanded rig degrees -> measured degrees (and the cross-talk into
    pitch). motion.py inverts these tables; rerun after changing the rig or renderer:
    `talkface eval controls --calibrate`."""
    from talkface.analysis.portrait import Portrait
    from talkface.engine import FaceModel
    from talkface.motion.generator import Expression, MotionFrame

    face = FaceModel(Portrait.builtin())
    rest = face.rest_gaze

    def measure(mf):
        return face_measures(_still_points(face, mf))

    def eyes(gy, gp, **pose):
        return MotionFrame(**pose, expression=Expression(gaze_yaw=gy - rest[0], gaze_pitch=gp - rest[1]))

    ref = measure(eyes(0.0, 0.0))
    out: dict = {"head": {}, "eyes": {}}
    for k, axis in enumerate(("yaw", "pitch", "roll")):
        rows = []
        for v in HEAD_SWEEP[axis]:
            m = measure(eyes(0.0, 0.0, **{axis: float(v)}))
            d = m["pose"] - ref["pose"]
            rows.append((v, round(float(d[k]), 2), round(float(d[1]), 2)))
        out["head"][axis] = rows
        log(f"head {axis}: " + " ".join(f"{a}->{b}" for a, b, _ in rows))
    for k, axis in enumerate(("yaw", "pitch")):
        rows = []
        for v in EYE_SWEEP[axis]:
            gy, gp = (float(v), 0.0) if axis == "yaw" else (0.0, float(v))
            m = measure(eyes(gy, gp))
            d = (m["gaze"] - ref["gaze"]) + (m["pose"][:2] - ref["pose"][:2])
            rows.append((v, round(float(d[k]), 2), round(float(d[1]), 2)))
        out["eyes"][axis] = rows
        log(f"eyes {axis}: " + " ".join(f"{a}->{b}" for a, b, _ in rows))
    return out


def tables_source(tables: dict) -> str:
    """The calibration as the constants block motion.py holds (measured values made
    strictly increasing, so they can be inverted)."""
    def col(rows, k):
        return [r[k] for r in rows]

    def increasing(values):
        out = []
        for v in values:
            out.append(max(v, out[-1] + 0.01) if out else v)
        return out

    def fmt(values):
        return "(" + ", ".join(f"{round(v, 2):g}" for v in values) + ")"

    h, e = tables["head"], tables["eyes"]
    lines = []
    for name, rows in (("HEAD_YAW", h["yaw"]), ("HEAD_PITCH", h["pitch"]), ("HEAD_ROLL", h["roll"])):
        lines.append(f"RIG_{name} = {fmt(col(rows, 0))}")
        lines.append(f"MEASURED_{name} = {fmt(increasing(col(rows, 1)))}")
    lines.append(f"PITCH_FROM_YAW = {fmt(col(h['yaw'], 2))}")
    lines.append(f"PITCH_FROM_ROLL = {fmt(col(h['roll'], 2))}")
    lines.append(f"RIG_EYE_YAW = {fmt(col(e['yaw'], 0))}")
    lines.append(f"MEASURED_EYE_YAW = {fmt(increasing(col(e['yaw'], 1)))}")
    return "\n".join(lines)
