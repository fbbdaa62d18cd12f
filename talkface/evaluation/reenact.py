"""`talkface eval reenact`: re-render real videos from their first frame and compare.

For each video: its first frame is the portrait (analysed like any image), the video itself
is the driver (talkface.motion.drive), and every rendered frame is compared with the real frame in
the portrait's crop space:

- psnr / ssim over the whole crop (the part inside the video), psnr_face / ssim_face over the real face oval;
- landmark_nme: face mesh on both, mean point distance over the real inter-ocular distance;
- id_distance: dlib's ResNet face descriptor (the face_recognition models), the portrait vs
  each rendered frame, worst frame (id_distance_mean: the mean); dlib calls < 0.6 the same
  person; null when dlib is not installed (optional: requirements-eval.txt).
  id_distance_real(_max) is each rendered frame vs the real frame at that time, and
  static_id_distance(_max) the real frame vs the real first frame: how far the person's own
  descriptor drifts over the clip with expression, pose and light, the reference for what a
  rendering that follows the real motion can be expected to reach;
- mouth_open_error: mean |inner-lip gap| difference (over the real inter-ocular distance);
- pose_error_deg: mean |yaw, pitch, roll| difference (face mesh pose) rendered vs real, and
  yaw_gain, how much of the real head turn the rendering shows (slope, 1 = all);
- the static baseline: the first frame repeated, measured the same way.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
# metric -> (per-frame value, how frames are pooled)
POOLED = {"id_distance": ("id_portrait", max), "id_distance_mean": ("id_portrait", np.mean),
          "id_distance_real": ("id_real", np.mean), "id_distance_real_max": ("id_real", max),
          "static_id_distance": ("id_static", np.mean), "static_id_distance_max": ("id_static", max)}
METRICS = ("psnr_face", "ssim_face", "psnr", "ssim", "landmark_nme", *POOLED,
           "pose_error_deg", "mouth_open_error", "static_psnr_face", "static_ssim_face", "static_psnr", "static_ssim",
           "static_landmark_nme", "static_pose_error_deg",
           "static_mouth_open_error")


class ReenactError(ValueError):
    """Bad arguments or unreadable input; one line for the user."""


# ---------------------------------------------------------------------- identity
class IdentityModel:
    """dlib's 128-d face descriptor, the face located by our own mesh (no dlib detector)."""

    def __init__(self) -> None:
        import importlib.util

        import dlib

        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("face-recognition-models is not installed")
        models = Path(list(spec.submodule_search_locations)[0]) / "models"
        self.shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
        self.dlib = dlib

    def descriptor(self, image: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        if points is None or not np.isfinite(points[0, 0]):
            return None
        x0, y0 = points[:, :2].min(axis=0)
        x1, y1 = points[:, :2].max(axis=0)
        rect = self.dlib.rectangle(int(x0), int(y0 + 0.1 * (y1 - y0)), int(x1), int(y1))
        shape = self.shape(np.ascontiguousarray(image), rect)
        return np.array(self.encoder.compute_face_descriptor(np.ascontiguousarray(image), shape))


def load_identity_model() -> tuple[IdentityModel | None, str | None]:
    try:
        return IdentityModel(), None
    except Exception as exc:  # optional dependency
        return None, f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------- metrics
def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = d.mean() if mask is None else d[mask].mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM on luminance (Gaussian window, sigma 1.5), averaged over the mask."""
    import cv2

    def lum(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64)

    x, y = lum(a), lum(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m.mean() if mask is None else m[mask].mean())


def nme(real: np.ndarray, other: np.ndarray) -> float:
    from talkface.analysis import landmarks as lm

    if not (np.isfinite(real[0, 0]) and np.isfinite(other[0, 0])):
        return float("nan")
    return float(np.linalg.norm(real[:, :2] - other[:, :2], axis=1).mean() / lm.interocular(real))


# ---------------------------------------------------------------------- one video
def read_frames(path: Path, max_seconds: float | None) -> tuple[list[np.ndarray], np.ndarray]:
    from talkface.output.video import VideoReadError, read_video_frames

    try:
        frames, times = read_video_frames(path, max_seconds=max_seconds)
    except VideoReadError as exc:
        raise ReenactError(str(exc)) from None
    if not frames:
        raise ReenactError(f"no video frames in {path}")
    return frames, np.array(times)


def evaluate_video(path: Path, max_seconds: float | None = None, size: int = 512, sheet_dir: Path | None = None,
                   identity: IdentityModel | None = None) -> dict:
    from talkface.analysis import landmarks as lm
    from talkface.motion.drive import motions_from_points
    from talkface.engine import FaceModel
    from talkface.analysis.portrait import Portrait, square_crop
    from talkface.analysis.tracking import track_frames

    frames, times = read_frames(path, max_seconds)
    portrait = Portrait.from_image(frames[0], size=size, name=path.name)
    real = [square_crop(f, portrait.crop_box, size) for f in frames]
    real[0] = portrait.image
    real_track = track_frames(real, times, name=path.stem)
    motions = motions_from_points(real_track.points)
    face = FaceModel(portrait)
    rendered = [face.renderer.render(face.rig.targets(m)) for m in motions]
    rend_track = track_frames(rendered, times, name=path.stem + "-rendered")
    static = portrait.image
    # whole-frame metrics only where the crop is inside the video (the rest is replicated edge)
    h, w = frames[0].shape[:2]
    x0, y0, side = portrait.crop_box
    u = x0 + (np.arange(size) + 0.5) * side / size
    v = y0 + (np.arange(size) + 0.5) * side / size
    inside = ((v >= 0) & (v < h))[:, None] & ((u >= 0) & (u < w))[None, :]

    rows = []
    ref_desc = None
    for i, (r, g) in enumerate(zip(real, rendered)):
        pr, pg = real_track.points[i], rend_track.points[i]
        row = {"psnr": psnr(r, g, inside), "ssim": ssim(r, g, inside),
               "static_psnr": psnr(r, static, inside), "static_ssim": ssim(r, static, inside)}
        if np.isfinite(pr[0, 0]):
            mask = lm.face_oval_mask(pr, size) > 0.5
            row.update(psnr_face=psnr(r, g, mask), ssim_face=ssim(r, g, mask),
                       static_psnr_face=psnr(r, static, mask), static_ssim_face=ssim(r, static, mask),
                       landmark_nme=nme(pr, pg), static_landmark_nme=nme(pr, real_track.points[0]))
            if np.isfinite(pg[0, 0]):
                row["mouth_open_error"] = abs(lm.mouth_opening(pr) - lm.mouth_opening(pg))
                row["static_mouth_open_error"] = abs(lm.mouth_opening(pr) - lm.mouth_opening(real_track.points[0]))
                yr, yg = np.array(lm.head_pose_deg(pr)), np.array(lm.head_pose_deg(pg))
                row["pose_error_deg"] = float(np.abs(yr - yg).mean())
                row["static_pose_error_deg"] = float(np.abs(yr - np.array(lm.head_pose_deg(real_track.points[0]))).mean())
                row["yaw_real"], row["yaw_rendered"] = float(yr[0]), float(yg[0])
        if identity is not None:
            dr = identity.descriptor(r, pr)
            dg = identity.descriptor(g, pg if np.isfinite(pg[0, 0]) else pr)
            if i == 0:
                ref_desc = dr
            if dg is not None and ref_desc is not None:
                row["id_portrait"] = float(np.linalg.norm(dg - ref_desc))
            if dr is not None and dg is not None:
                row["id_real"] = float(np.linalg.norm(dr - dg))
            if dr is not None and ref_desc is not None:
                row["id_static"] = float(np.linalg.norm(dr - ref_desc))
        rows.append(row)

    def mean(key):
        vals = [row[key] for row in rows if key in row and np.isfinite(row[key])]
        return float(np.mean(vals)) if vals else None

    result = {"name": path.stem, "frames": len(frames)}
    for key in METRICS:
        if key in POOLED:
            name, pool = POOLED[key]
            vals = [row[name] for row in rows if name in row]
            result[key] = float(pool(vals)) if vals else None
        else:
            result[key] = mean(key)
    result["landmark_found_rendered"] = float(np.isfinite(rend_track.points[:, 0, 0]).mean())
    # how much of the real head turn the rendering shows (1 = all): slope of rendered on real yaw
    pairs = np.array([(row["yaw_real"], row["yaw_rendered"]) for row in rows if "yaw_real" in row])
    if len(pairs) > 5 and np.std(pairs[:, 0]) > 1.0:
        a = pairs - pairs.mean(axis=0)
        result["yaw_gain"] = float((a[:, 0] @ a[:, 1]) / (a[:, 0] @ a[:, 0]))
    else:
        result["yaw_gain"] = None
    if sheet_dir is not None:
        write_sheet(sheet_dir / f"{path.stem}.png", real, rendered, static)
    return result


def write_sheet(path: Path, real: list, rendered: list, static: np.ndarray, columns: int = 6, tile: int = 256) -> None:
    """Columns of frames spread over the clip; rows: real, rendered, |difference| x 3, static difference x 3."""
    import cv2

    idx = np.linspace(0, len(real) - 1, min(columns, len(real))).round().astype(int)

    def small(img):
        return cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)

    rows = []
    for make in (lambda i: real[i], lambda i: rendered[i],
                 lambda i: np.clip(3 * np.abs(real[i].astype(int) - rendered[i].astype(int)), 0, 255).astype(np.uint8),
                 lambda i: np.clip(3 * np.abs(real[i].astype(int) - static.astype(int)), 0, 255).astype(np.uint8)):
        rows.append(np.concatenate([small(make(i)) for i in idx], axis=1))
    sheet = np.concatenate(rows, axis=0)
    for k, label in enumerate(("real", "rendered", "|real-rendered|x3", "|real-static|x3")):
        cv2.putText(sheet, label, (6, k * tile + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def summarise(videos: list[dict], pool=np.mean) -> dict:
    out = {}
    for key in METRICS:
        vals = [v[key] for v in videos if v.get(key) is not None]
        out[key] = float(pool(vals)) if vals else None
    return out


# ---------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--videos", required=True, help="folder of real talking-face videos (or one video)")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--sheet", help="write real | rendered | difference contact sheets into this folder")
    parser.add_argument("--max-seconds", type=float, default=4.0, help="use the first S seconds of each video; default 4")
    parser.add_argument("--size", type=int, default=512, help="crop size; default 512")
    parser.add_argument("--no-identity", action="store_true", help="skip the dlib identity distance")


def run(args: argparse.Namespace) -> int:
    src = Path(args.videos)
    if src.is_file():
        videos = [src]
    elif src.is_dir():
        videos = sorted(p for p in src.iterdir() if p.suffix.lower() in VIDEO_EXT)
    else:
        raise ReenactError(f"videos folder not found: {src}")
    if not videos:
        raise ReenactError(f"no videos in {src}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ReenactError(f"--max-seconds must be positive, got {args.max_seconds:g}")
    identity, why = (None, "disabled with --no-identity") if args.no_identity else load_identity_model()
    if identity is None:
        print(f"reenact: id_distance is null ({why})", file=sys.stderr)
    sheet = Path(args.sheet) if args.sheet else None
    results = []
    for v in videos:
        r = evaluate_video(v, args.max_seconds, args.size, sheet, identity)
        results.append(r)
        print(_line(r), flush=True)
    report = {"videos": results, "mean": summarise(results), "worst": summarise(results, max),
              "identity_model": None if identity is None else "dlib_face_recognition_resnet_model_v1",
              "max_seconds": args.max_seconds}
    print(_line(dict(name="MEAN", **report["mean"])))
    print(_line(dict(name="WORST", **report["worst"])))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _line(r: dict) -> str:
    def f(key, fmt):
        v = r.get(key)
        return "  -  " if v is None else format(v, fmt)

    return (f"{r['name'][:28]:28s} psnr_face {f('psnr_face', '5.2f')} (static {f('static_psnr_face', '5.2f')})  "
            f"ssim_face {f('ssim_face', '.3f')} ({f('static_ssim_face', '.3f')})  "
            f"nme {f('landmark_nme', '.4f')} ({f('static_landmark_nme', '.4f')})  "
            f"id vs portrait max {f('id_distance', '.3f')} mean {f('id_distance_mean', '.3f')} (real frames "
            f"vs first: max {f('static_id_distance_max', '.3f')})  "
            f"pose err {f('pose_error_deg', '.2f')} ({f('static_pose_error_deg', '.2f')})  "
            f"mouth err {f('mouth_open_error', '.3f')} ({f('static_mouth_open_error', '.3f')})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="talkface eval reenact")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
