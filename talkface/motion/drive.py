"""`talkface drive`: animate a portrait with a driving video's head pose, expression,
blinks, gaze and audio.

The driver is tracked with the face mesh (talkface.analysis.tracking). Its first frame with a face
is the reference: a FaceRig built on it gives the expression basis in the driver's own
proportions. Per frame, a similarity fit of the rigid part of the face (forehead, nose,
eye corners, temples) gives the head pose, scale and shift relative to the reference;
what is left, brought back into the head frame, is solved by bounded least squares for the
rig's expression coefficients. Blinks come from the lid aperture, gaze from the iris
position between the eye corners. The coefficients are identity-free (in units of the
driver's own inter-ocular distance), so they transfer to any portrait's rig.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from talkface.analysis import landmarks as lm

CROP = 512  # the driver is measured in a head crop of this size, like a portrait


class DriveError(ValueError):
    """Unusable driving video; one line for the user."""


# Points that move with the skull, not with the jaw, lids or brows.
RIGID = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 33, 133, 263, 362, 234, 454, 127, 356, 93, 323,
         21, 251, 54, 284, 103, 332, 109, 338, 67, 297, 245, 465, 122, 351)
# Points whose motion the expression basis explains (not the eyes: blinks and gaze are measured).
_EYE_IDS = set(lm.RIGHT_EYE_UPPER + lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_UPPER + lm.LEFT_EYE_LOWER
               + lm.RIGHT_IRIS + lm.LEFT_IRIS)
FIT_NAMES = ("jaw_open", "lip_spread", "lip_round", "lip_press", "smile", "mouth_frown", "brow_raise", "brow_frown",
             "brow_inner")
BOUNDS = {"jaw_open": (0.0, 1.3), "lip_spread": (-0.6, 1.0), "lip_round": (-0.4, 1.0), "lip_press": (0.0, 1.0),
          "smile": (-0.3, 1.2), "mouth_frown": (0.0, 1.0), "brow_raise": (-0.6, 1.2), "brow_frown": (0.0, 1.0),
          "brow_inner": (0.0, 1.2), "mouth_rest": (0.0, 1.0)}


def _umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |dst - (s R src + t)|^2."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rot = u @ sign @ vt
    var = (a ** 2).sum() / len(src)
    s = float(np.trace(np.diag(d) @ sign) / max(var, 1e-9))
    t = mu_d - s * rot @ mu_s
    return s, rot, t


def crop_box_for(points: np.ndarray) -> tuple[float, float, float]:
    from talkface.analysis.portrait import head_box

    return head_box(points, margin=2.0)


def to_crop(points: np.ndarray, box: tuple[float, float, float], size: int = CROP) -> np.ndarray:
    out = np.asarray(points, np.float64).copy()
    out[:, 0] -= box[0]
    out[:, 1] -= box[1]
    out[:, :3] *= size / box[2]
    return out


def _gaze(local: np.ndarray, iod: float) -> np.ndarray:
    """(yaw, pitch) in degrees of the irises between the eye corners, head frame."""
    r = 0.19 * iod
    offs = []
    for iris, (a, b), upper, lower in ((lm.RIGHT_IRIS, (33, 133), lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER),
                                       (lm.LEFT_IRIS, (263, 362), lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER)):
        cx = (local[a, 0] + local[b, 0]) / 2
        cy = (local[list(upper[1:-1]), 1].mean() + local[list(lower[1:-1]), 1].mean()) / 2
        offs.append((local[iris[0], 0] - cx, local[iris[0], 1] - cy))
    dx, dy = np.mean(offs, axis=0)
    return np.degrees(np.arcsin(np.clip([dx / r, -dy / r], -1, 1)))


def _aperture(local: np.ndarray) -> np.ndarray:
    return np.array([lm.eye_aperture(local, "right"), lm.eye_aperture(local, "left")])


class DriverFit:
    """Built on the driver's reference frame; `motion(points)` per frame."""

    def __init__(self, ref_points: np.ndarray, open_aperture: np.ndarray | None = None,
                 eye_reference: str = "first") -> None:
        from talkface.analysis.portrait import Portrait
        from talkface.face.rig import EXPRESSION_NAMES, FaceRig

        self.box = crop_box_for(ref_points)
        ref = to_crop(ref_points, self.box)
        blank = np.zeros((CROP, CROP), np.float32)
        ref_portrait = Portrait(image=np.zeros((CROP, CROP, 3), np.uint8), points=ref.astype(np.float32),
                                person_mask=blank, crop_box=(0.0, 0.0, float(CROP)), source=np.zeros((1, 1, 3), np.uint8),
                                name="driver")
        self.rig = rig = FaceRig(ref_portrait)
        self.iod = rig.iod
        self.rigid = list(RIGID)
        self.fit_ids = np.array([i for i in range(478) if i not in _EYE_IDS])
        # re-enacting the driver's own face (the portrait is its first frame), the portrait's
        # mouth as photographed is one more shape to fit: the rig reproduces the first frame
        # exactly instead of closing the lips and re-opening them approximately
        self.fit_names = FIT_NAMES + (("mouth_rest",) if eye_reference == "first" else ())
        self.cols = cols = [EXPRESSION_NAMES.index(n) for n in self.fit_names]
        self.k_pitch = EXPRESSION_NAMES.index("gaze_pitch")
        # (2 * n_fit, K): only x and y (the mesh's depth is too noisy to fit expressions on).
        # The lips weigh more than the many chin and cheek points: the gap between the lips is
        # what a viewer reads (a jaw dropped behind closed lips must not open the mouth)
        w = np.ones(len(self.fit_ids))
        inner = set(lm.LIPS_UPPER_INNER + lm.LIPS_LOWER_INNER)
        outer = set(lm.LIPS_UPPER_OUTER + lm.LIPS_LOWER_OUTER)
        for n, i in enumerate(self.fit_ids):
            w[n] = 2.0 if i in inner else 1.5 if i in outer else 1.0
        self.row_weight = np.repeat(w, 2)
        self.design = rig.basis[cols][:, self.fit_ids, :2].reshape(len(cols), -1).T * self.row_weight[:, None]
        # and the lip gap itself, three pairs across the mouth, held hard
        self.gap_pairs = ((13, 14), (81, 178), (311, 402))
        gap_rows = np.array([rig.basis[cols][:, lo, 1] - rig.basis[cols][:, up, 1] for up, lo in self.gap_pairs])
        self.gap_weight = 5.0
        self.design = np.concatenate([self.design, self.gap_weight * gap_rows])
        self.lower = np.array([BOUNDS[n][0] for n in self.fit_names])
        self.upper = np.array([BOUNDS[n][1] for n in self.fit_names])
        # the pose is fitted on the mesh's raw depth (the rig's canonical face has its relief boosted)
        self.canonical = (ref - rig.pivot) @ rig.rest_rotation
        s0, r0, t0 = _umeyama(self.canonical[self.rigid], ref[self.rigid])
        self.s0, self.t0 = s0, t0
        self.r0 = r0
        self.local0 = self._local(ref, s0, r0, t0)
        self.gaze0 = _gaze(self.local0, self.iod)
        ap0 = _aperture(self.local0)
        if open_aperture is not None:
            if eye_reference == "typical":   # another face: its eyes at rest are the driver's usual eyes
                ap0 = np.asarray(open_aperture, np.float64)
            else:   # the driver's first frame (it is the portrait, squinting or not), unless caught mid-blink
                ap0 = np.maximum(ap0, 0.5 * open_aperture)
        self.aperture0 = np.maximum(ap0, 1e-3)
        # driving another face, small lid jitter around the usual opening is no blink (no squint)
        self.blink_dead = 0.12 if eye_reference == "typical" else 0.0
        self.target0 = self.local0 + rig.closing  # the local shape the rig calls "expression 0"

    @staticmethod
    def _local(points: np.ndarray, s: float, rot: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (points - t) @ rot / s

    def motion(self, points: np.ndarray):
        from scipy.optimize import lsq_linear

        from talkface.motion.generator import Expression, MotionFrame

        p = to_crop(points, self.box)
        s, rot, t = _umeyama(self.canonical[self.rigid], p[self.rigid])
        local = self._local(p, s, rot, t)
        # head pose: the fitted rotation relative to the reference's
        delta = rot @ self.r0.T
        yaw, pitch, roll = lm.rotation_to_angles(delta)
        shift = (t - self.t0) / CROP
        # expression: the non-rigid remainder in the head frame
        resid = (local - self.target0)[self.fit_ids, :2].reshape(-1) * self.row_weight
        gaps = np.array([max(local[lo, 1] - local[up, 1], 0.0) for up, lo in self.gap_pairs])
        resid = np.concatenate([resid, self.gap_weight * gaps])
        sol = lsq_linear(self.design, resid, bounds=(self.lower, self.upper), method="bvls", lsmr_tol="auto")
        coef = dict(zip(self.fit_names, (float(v) for v in sol.x)))
        gaze = np.clip(_gaze(local, self.iod) - self.gaze0, (-30.0, -25.0), (30.0, 25.0))
        # blinks and widening: only what the lids do beyond what the fitted expression and gaze
        # already make them do (a smile's raised lower lids, the lids following a look down):
        # counted twice, a smiling squint closed the eyes
        shaped = (self.target0 + np.tensordot(sol.x, self.rig.basis[self.cols], axes=1)
                  + np.sin(np.radians(gaze[1])) * self.rig.basis[self.k_pitch])
        ap = _aperture(local) / (self.aperture0 * _aperture(shaped) / _aperture(self.target0))
        # the rig's blink closes 100 % of the lid gap at 1; eye_open = 1 widens it by ~37 %
        blink = np.clip((1.0 - ap - self.blink_dead) / (1.0 - self.blink_dead), 0.0, 1.0)
        wide = float(np.clip((ap.mean() - 1.0) / 0.37, 0.0, 2.0))
        expr = Expression(blink_right=float(blink[0]), blink_left=float(blink[1]), eye_open=wide,
                          gaze_yaw=float(gaze[0]), gaze_pitch=float(gaze[1]), **coef)
        return MotionFrame(yaw=yaw, pitch=pitch, roll=roll, tx=float(shift[0]), ty=float(shift[1]),
                           scale=float(s / self.s0), expression=expr)


def motions_from_points(points: np.ndarray, eye_reference: str = "first") -> list:
    """One MotionFrame per tracked frame (T, 478, 3); frames without a face hold the last motion.

    eye_reference: "first" measures blinks against the driver's first frame (re-enacting the
    driver's own face from that frame); "typical" against its usual opening (driving another
    face, whose photographed eyes are its usual open eyes)."""
    from talkface.motion.generator import MotionFrame

    points = np.asarray(points, np.float64)
    found = np.isfinite(points[:, 0, 0])
    if not found.any():
        raise DriveError("no face found in the driving video")
    first = int(np.argmax(found))
    # the open-eye reference: the driver's typical aperture (robust to a first frame mid-blink)
    probe = DriverFit(points[first])
    aps = np.array([_aperture(probe._local(to_crop(points[i], probe.box),
                                           *_umeyama(probe.canonical[probe.rigid], to_crop(points[i], probe.box)[probe.rigid])))
                    for i in np.flatnonzero(found)[:: max(1, found.sum() // 50)]])
    typical = np.median(aps, axis=0) if eye_reference == "first" else np.percentile(aps, 65, axis=0)
    fit = DriverFit(points[first], open_aperture=typical, eye_reference=eye_reference)
    out, last = [], MotionFrame()
    for i in range(len(points)):
        if found[i]:
            last = fit.motion(points[i])
        out.append(last)
    return out


def render_motions(face, motions: Iterable, times: Iterable[float] | None = None) -> Iterator:
    """Engine Frames of the portrait following the given motions."""
    from talkface.engine import Frame

    times = list(times) if times is not None else None
    for i, m in enumerate(motions):
        image = face.renderer.render(face.rig.targets(m))
        yield Frame(index=i, time=times[i] if times is not None else i / 25.0, image=image, motion=m)


def frame_rate(times: np.ndarray) -> float:
    if len(times) < 2:
        return 25.0
    dt = float(np.median(np.diff(times)))
    return float(np.clip(1.0 / dt, 1.0, 120.0)) if dt > 0 else 25.0


# ---------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="portrait to animate")
    parser.add_argument("--video", required=True, help="driving video (a face; its audio is used)")
    parser.add_argument("-o", "--output", required=True, help="output .mp4")
    parser.add_argument("--size", type=int, default=512, help="output size in pixels; default 512")
    parser.add_argument("--face-index", type=int, default=0, help="which face in the portrait, largest first")
    parser.add_argument("--framing", choices=("crop", "full"), default="crop",
                        help="crop: the head crop (default); full: the whole picture")
    parser.add_argument("--max-seconds", type=float, default=None, help="use only the start of the driver")
    parser.add_argument("--watermark-id", type=int, default=0, help="0..65535, carried in the invisible watermark")


def run(args: argparse.Namespace) -> int:
    from talkface.analysis.audio import AudioError, load_audio
    from talkface.engine import FaceModel
    from talkface.analysis.portrait import Portrait
    from talkface.analysis.tracking import track_video
    from talkface.output.video import check_output_path, write_video

    out = check_output_path(args.output)
    video = Path(args.video)
    if not video.is_file():
        raise DriveError(f"driving video not found: {video}")
    if not 64 <= args.size <= 2048:
        raise DriveError(f"--size must be between 64 and 2048, got {args.size}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise DriveError(f"--max-seconds must be positive, got {args.max_seconds:g}")
    if not 0 <= args.watermark_id <= 65535:
        raise DriveError(f"--watermark-id must be between 0 and 65535, got {args.watermark_id}")
    portrait = Portrait.from_file(args.image, size=args.size, face_index=args.face_index)
    try:
        track = track_video(video, max_seconds=args.max_seconds)
    except Exception as exc:  # FFmpeg's many errors: one line
        raise DriveError(f"cannot read driving video {video}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if len(track.times) == 0:
        raise DriveError(f"no video frames in {video}")
    motions = motions_from_points(track.points, eye_reference="typical")
    try:
        audio = load_audio(video, rate=48000)
        if args.max_seconds is not None:
            from talkface.analysis.audio import Audio

            audio = Audio(audio.samples[: int(args.max_seconds * audio.sample_rate)], audio.sample_rate)
    except AudioError:
        audio = None  # a silent driver makes a silent video
    face = FaceModel(portrait)
    frames = render_motions(face, motions, track.times)
    frames = _watermarked(frames, args.watermark_id)
    if args.framing == "full":
        from talkface.render.framing import full_frame

        frames = full_frame(portrait, frames)
    write_video(out, frames, audio, fps=frame_rate(track.times))
    print(str(out))
    return 0


def _watermarked(frames, user_id: int):
    import dataclasses

    from talkface.marking.watermark import Payload, Watermarker

    marker = Watermarker(Payload.written(user_id=user_id))
    for f in frames:
        yield dataclasses.replace(f, image=marker.embed(f.image))
