"""The dynamics figures of a clip's face track (head pose, eye aperture, gaze), the same
for real video, rendered output and generated motion measured directly. Used by `eval
dynamics` and by `train motion` (its cross-validation), so it imports neither.

- delta_pose_deg: mean absolute per-frame change of yaw, pitch, roll (averaged over axes)
- pose_std_deg: standard deviation of each pose angle over a clip (averaged over axes)
- blinks_per_min: dips of the eye aperture (landmarks.eye_aperture) below 65% of its
  running baseline, at least 0.25 s apart
- gaze_camera_share: share of frames whose gaze (head pose + eye-in-head angle from the
  iris) lies within 6 degrees of the clip's median gaze, i.e. the direction held most
  (the camera, in talking-head footage)
- motion_speech_corr: Pearson correlation of head-motion energy (per-frame pose change,
  0.5 s smoothing) with speech energy (audio RMS in dB above the clip's floor, same
  smoothing)
- frechet: the Frechet distance between Gaussians fitted to 2 s windows of motion features
  (pose, pose velocity, gaze, eye openness) of two sets of clips

Landmark jitter adds to every per-frame figure, on real and generated video alike.
"""
from __future__ import annotations

FPS = 25.0
METRICS = ("delta_pose_deg", "pose_std_deg", "blinks_per_min", "gaze_camera_share", "motion_speech_corr")
BLINK_DROP = 0.65          # a blink: aperture below this share of the running baseline
BLINK_MIN_GAP_S = 0.25
GAZE_HOLD_DEG = 6.0
SMOOTH_S = 0.5


def resample(times, values, fps: float = FPS):
    """(T, ...) values at arbitrary timestamps -> a uniform grid; gaps (NaN) interpolated."""
    import numpy as np

    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    flat = values.reshape(len(values), -1)
    ok = np.all(np.isfinite(flat), axis=1)
    if ok.sum() < 2:
        return np.full((0,) + values.shape[1:], np.nan)
    grid = np.arange(times[ok][0], times[ok][-1] + 1e-9, 1.0 / fps)
    out = np.stack([np.interp(grid, times[ok], flat[ok, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape((len(grid),) + values.shape[1:])


def gaze_deg(points):
    """(yaw, pitch) of the eyes in the head, degrees, from where the irises sit between the
    eye corners and lids; the rig's eyeball model (radius 0.19 inter-ocular distances)."""
    import numpy as np

    from talkface.analysis import landmarks as lm

    iod = lm.interocular(points)
    x_axis = points[263, :2] - points[33, :2]
    x_axis = x_axis / (np.linalg.norm(x_axis) + 1e-9)
    y_axis = np.array([-x_axis[1], x_axis[0]])  # image down, de-rolled
    offsets = []
    for iris, (a, b), upper, lower in ((lm.RIGHT_IRIS, (33, 133), lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
                                       (lm.LEFT_IRIS, (263, 362), lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)):
        centre = np.array([(points[a, 0] + points[b, 0]) / 2,
                           (points[list(upper[1:-1]), 1].mean() + points[list(lower[1:-1]), 1].mean()) / 2])
        d = points[iris[0], :2] - centre
        offsets.append((d @ x_axis, d @ y_axis))
    dx, dy = np.mean(offsets, axis=0) / (0.19 * iod)
    return float(np.degrees(np.arcsin(np.clip(dx, -1, 1)))), float(np.degrees(np.arcsin(np.clip(-dy, -1, 1))))


def face_series(track):
    """Per tracked frame: yaw, pitch, roll, eye aperture (mean of both eyes), gaze yaw, gaze pitch."""
    import numpy as np

    from talkface.analysis import landmarks as lm

    rows = []
    for p in track.points:
        if not np.isfinite(p[0, 0]):
            rows.append([np.nan] * 6)
            continue
        y, pi, r = lm.head_pose_deg(p)
        ap = 0.5 * (lm.eye_aperture(p, "right") + lm.eye_aperture(p, "left"))
        gy, gp = gaze_deg(p)
        rows.append([y, pi, r, ap, gy, gp])
    return np.array(rows, np.float64).reshape(-1, 6)


def _smooth(x, seconds: float = SMOOTH_S, fps: float = FPS):
    import numpy as np

    n = max(1, int(round(seconds * fps)))
    k = np.hanning(n + 2)[1:-1]
    k /= k.sum()
    return np.convolve(np.pad(x, (n // 2, n - 1 - n // 2), mode="edge"), k, mode="valid")


def blink_frames(aperture, fps: float = FPS) -> list[int]:
    """The frames of the blinks: dips of the eye aperture below BLINK_DROP x its running
    baseline (the 80th percentile over 2 s), one blink per dip at its deepest frame, dips
    at least BLINK_MIN_GAP_S apart."""
    import numpy as np
    from scipy.ndimage import percentile_filter

    a = np.asarray(aperture, np.float64)
    if len(a) < 3:
        return []
    base = percentile_filter(a, 80, size=max(3, int(2.0 * fps)), mode="nearest")
    closed = a < BLINK_DROP * base
    found: list[int] = []
    i = 0
    while i < len(a):
        if not closed[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(a) and closed[j + 1]:
            j += 1
        centre = i + int(np.argmin(a[i:j + 1]))
        if not found or centre - found[-1] >= BLINK_MIN_GAP_S * fps:
            found.append(centre)
        i = j + 1
    return found


def count_blinks(aperture, fps: float = FPS) -> int:
    return len(blink_frames(aperture, fps))


def speech_energy(samples, rate: int, n_frames: int, fps: float = FPS):
    """Audio RMS per video frame, dB above the clip's 10th percentile, floored at 0."""
    import numpy as np

    hop = rate / fps
    out = np.zeros(n_frames)
    for i in range(n_frames):
        seg = samples[int(i * hop): int((i + 1) * hop)]
        out[i] = 10 * np.log10(np.mean(seg.astype(np.float64) ** 2) + 1e-10) if len(seg) else -100.0
    floor = np.percentile(out, 10)
    return np.maximum(out - floor, 0.0)


def clip_stats(series, fps: float = FPS, energy=None) -> dict:
    """The dynamics figures of one clip from its face_series already resampled to `fps`."""
    import numpy as np

    pose, ap, gaze = series[:, :3], series[:, 3], series[:, 4:6]
    d = np.abs(np.diff(pose, axis=0))
    out = {
        "seconds": round(len(series) / fps, 2),
        "delta_pose_deg": float(d.mean()),
        "delta_pose_axes_deg": [round(float(v), 3) for v in d.mean(axis=0)],
        "pose_std_deg": float(pose.std(axis=0).mean()),
        "pose_std_axes_deg": [round(float(v), 3) for v in pose.std(axis=0)],
        "blinks": count_blinks(ap, fps),
    }
    out["blinks_per_min"] = out["blinks"] / max(len(series) / fps, 1e-6) * 60.0
    direction = gaze + pose[:, :2]        # eye-in-head + head: where the eyes point in the camera frame
    off = np.linalg.norm(direction - np.median(direction, axis=0), axis=1)
    out["gaze_camera_share"] = float(np.mean(off < GAZE_HOLD_DEG))
    if energy is not None and len(energy) >= len(series):
        motion = _smooth(np.concatenate([[0.0], np.linalg.norm(np.diff(pose, axis=0), axis=1)]), fps=fps)
        speech = _smooth(np.asarray(energy[:len(series)], np.float64), fps=fps)
        if motion.std() > 1e-9 and speech.std() > 1e-9:
            out["motion_speech_corr"] = float(np.corrcoef(motion, speech)[0, 1])
    return out


WINDOW_S = 2.0             # Frechet distance: windows of motion this long,
WINDOW_HOP_S = 1.0         # this far apart,
BLOCK_S = 0.2              # described by their means over blocks this long


def window_features(series, fps: float = FPS):
    """(N, blocks x 9) 2 s windows of motion features from a face_series on the fps grid:
    head pose and gaze in the camera's frame (about the clip's median), pose velocity
    (degrees per frame) and eye openness (aperture over its running baseline), each
    averaged over BLOCK_S blocks."""
    import numpy as np
    from scipy.ndimage import percentile_filter

    s = np.asarray(series, np.float64)
    if len(s) < 2:
        return np.zeros((0, 9 * int(WINDOW_S / BLOCK_S)))
    pose = s[:, :3] - np.median(s[:, :3], axis=0)
    vel = np.vstack([np.zeros((1, 3)), np.diff(s[:, :3], axis=0)])
    gaze = s[:, 4:6] + s[:, :2]
    gaze = gaze - np.median(gaze, axis=0)
    base = percentile_filter(s[:, 3], 80, size=max(3, int(2.0 * fps)), mode="nearest")
    openness = s[:, 3] / np.maximum(base, 1e-6)
    f = np.column_stack([pose, vel, gaze, openness])
    win, hop, block = int(WINDOW_S * fps), int(WINDOW_HOP_S * fps), int(BLOCK_S * fps)
    rows = [f[a:a + win].reshape(win // block, block, 9).mean(axis=1).ravel()
            for a in range(0, len(f) - win + 1, hop)]
    return np.array(rows).reshape(len(rows), -1)


def frechet_distance(a, b) -> float:
    """Frechet distance between Gaussians fitted to two sets of window features."""
    import numpy as np
    from scipy.linalg import sqrtm

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):
        root = root.real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def summarise(clips: dict) -> dict:
    """Means over clips (blinks: total blinks over total minutes)."""
    import numpy as np

    vals = list(clips.values())
    if not vals:
        return {}
    out = {}
    for m in ("delta_pose_deg", "pose_std_deg", "gaze_camera_share", "motion_speech_corr"):
        xs = [v[m] for v in vals if m in v]
        if xs:
            out[m] = round(float(np.mean(xs)), 4)
    minutes = sum(v["seconds"] for v in vals) / 60.0
    out["blinks_per_min"] = round(sum(v["blinks"] for v in vals) / max(minutes, 1e-6), 2)
    out["clips"] = len(vals)
    out["seconds"] = round(minutes * 60, 1)
    return out
