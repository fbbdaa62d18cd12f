"""`talkface train motion`: fit the learned motion model (talkface.motion.learned) to real
talking people, and measure it with cross-validation disjoint by speaker.

    talkface train motion --cache /work/cache/prepared

Data: the per-clip cache `talkface data prepare` writes (head pose, eye openness, gaze,
brows at the video's frames; 100 Hz audio features; speaker id; quality flags). Each clip
is resampled to 25 fps and split where the face was lost or the picture cuts; every
segment's own median is its rest. The audio goes through the same prosody tracker the
engine runs, so the model is conditioned on exactly what it sees at run time.

Fit (closed form, seconds on a CPU): a ridge vector autoregression of the motion on its
last ORDER frames and the voice's condition vector; a log-variance regression of the
residuals on the condition (the voice scales the innovations); their correlation; and a
logistic blink hazard fitted to the blinks found in the eye openness; look-away episodes
(where the eyes went and how far the head turned with them) with logistic start/end hazards;
and per-emotion factors measured on the emotion-labelled clips (training/motion_emotion.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from talkface.motion.controls import EMOTIONS
from talkface.motion.frames import Spring, springs_step
from talkface.motion.learned import (
    EMOTION_FACTORS,
    GAZE,
    GLANCE_HEAD_OMEGA,
    HEAD,
    MODEL_FPS,
    N_MOTION,
    SACCADE_DEG,
    ConditionTracker,
    LearnedDynamics,
    MotionModel,
    blink_features,
    glance_features,
)
from talkface.motion.prosody import ProsodyTracker, SpeechTracker

ORDER = 3                     # frames of motion history
RIDGE = 1.0                   # on the standardised regressors
BROW_UNITS = 100.0            # model units per inter-ocular distance of brow height
CUT_DEG = 8.0                 # a per-frame head change this large is a picture cut or a tracking jump
MIN_SEGMENT_S = 1.0
CHI2_LOG_MEAN = -1.2704       # E[log z^2] for z ~ N(0, 1): the bias of a log-squared-residual regression
BLINK_LEAD = 2                # a detected blink's deepest frame is this many frames after its start
NEWTON_STEPS = 25
# What rendering and tracking change in the generated motion's figures (eval dynamics on
# rendered clips against the same motion measured directly: the tracker reads the talking
# jaw as head pitch, and jitters): head-pose std (degrees, added; 0.4 on 7 clips of the
# procedural motion, but the learned motion rendered read 2.04 against 2.2 planned, so 0),
# camera-gaze share (lost).
RENDER_POSE_STD = 0.0
RENDER_GAZE_SHARE = 0.07
GAIN_ITERATIONS = 4
MIN_GLANCE_FRAMES = 3        # a look away lasts at least this long (shorter: tracker noise)
MAX_GLANCE_OFFSETS = 128
# Episode means of smoothed gaze under-state where people look (short episodes dominate the
# sample, the long looks off-camera carry the variance): chosen by the training-set Frechet
# distance of the gaze windows (1: 394, 1.5: 226, 2: 121; notes/dynamics.md).
GLANCE_OFFSET_GAIN = 2.0
GLANCE_HEAD_GAIN = 1.4        # ... and the head's share of each look away (its episode mean; CV FD: 1: 341, 1.4: 306)
SMOOTH_PASSES = 6             # of [1, 2, 1] / 4 over the tracked motion before fitting


@dataclass(frozen=True)
class MotionClip:
    """One clip's motion at MODEL_FPS (measured degrees; NaN where the face was not found)
    and its audio features at 100 Hz."""

    name: str
    speaker: str
    emotion: str
    pose: np.ndarray          # (T, 3) yaw, pitch, roll
    gaze: np.ndarray          # (T, 2) eyes in the head, yaw and pitch
    aperture: np.ndarray      # (T,) eye openness
    brow: np.ndarray          # (T,) brow height over the eyes, inter-ocular distances
    rms_db: np.ndarray        # (K,) 100 Hz
    pitch_hz: np.ndarray      # (K,)


@dataclass(frozen=True)
class Prepared:
    """A clip ready to fit: model-unit motion (per segment about its median), the
    condition vectors, the blink onsets and the per-frame blink features."""

    clip: MotionClip
    x: np.ndarray             # (T, N_MOTION)
    valid: np.ndarray         # (T,) frame usable (inside a segment)
    c: np.ndarray             # (T, C)
    blink_x: np.ndarray       # (T, len(BLINK_FEATURES))
    blink_y: np.ndarray       # (T,) 1 where a blink starts
    glance_x: np.ndarray      # (T, len(GLANCE_FEATURES))
    away: np.ndarray          # (T,) bool: looking away from the camera
    offsets: np.ndarray       # (episodes, 2) where the eyes went, each time they looked away
    events: list              # per-frame (Prosody, SpeechEvents), to drive the model on this audio


def feature_index(frame: int, fps: float = MODEL_FPS) -> int:
    """The 100 Hz feature frame the engine reads for video frame `frame` (engine.Animator)."""
    from talkface.analysis.audio import HOP, SAMPLE_RATE, WINDOW

    return max(0, int(round((frame / fps * SAMPLE_RATE - WINDOW / 2) / HOP)))


def voice_events(rms_db: np.ndarray, pitch_hz: np.ndarray, n: int) -> list:
    """Per video frame, the prosody and speech events the engine would compute."""
    dt = 1.0 / MODEL_FPS
    prosody, speech, out = ProsodyTracker(), SpeechTracker(dt), []
    for i in range(n):
        k = feature_index(i)
        rms, pitch = (float(rms_db[k]), float(pitch_hz[k])) if k < len(rms_db) else (-90.0, 0.0)
        p = prosody.update(rms, pitch, dt)
        out.append((p, speech.update(p)))
    return out


def segments(clip: MotionClip) -> np.ndarray:
    """Frames inside usable stretches: face found, no cut, at least MIN_SEGMENT_S long."""
    ok = np.all(np.isfinite(np.c_[clip.pose, clip.gaze, clip.aperture, clip.brow]), axis=1)
    jump = np.r_[False, np.abs(np.diff(clip.pose, axis=0)).max(axis=1) > CUT_DEG]
    ok &= ~jump
    valid = np.zeros(len(ok), bool)
    start = None
    for i, v in enumerate(np.r_[ok, False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start >= MIN_SEGMENT_S * MODEL_FPS:
                valid[start:i] = True
            start = None
    return valid


def _centred(x: np.ndarray, valid: np.ndarray, passes: int) -> np.ndarray:
    """Each segment about its own median, smoothed with `passes` passes of [1, 2, 1] / 4
    (the tracker's frame-to-frame jitter is not motion: the rendered output gets its own)."""
    out = np.full_like(x, np.nan)
    edges = np.flatnonzero(np.diff(np.r_[0, valid.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        seg = x[a:b] - np.median(x[a:b], axis=0)
        for _ in range(passes):
            padded = np.vstack([seg[:1], seg, seg[-1:]])
            seg = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
        out[a:b] = seg
    return out


def blink_onsets(aperture: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from talkface.motion.metrics import blink_frames

    y = np.zeros(len(aperture))
    filled = np.where(np.isfinite(aperture), aperture, np.nanmedian(aperture))
    for f in blink_frames(filled, MODEL_FPS):
        if valid[f]:
            y[max(f - BLINK_LEAD, 0)] = 1.0
    return y


def prepare(clip: MotionClip, smooth: int = SMOOTH_PASSES) -> Prepared:
    valid = segments(clip)
    raw = np.c_[clip.pose, clip.gaze + clip.pose[:, :2], clip.brow * BROW_UNITS]
    x = _centred(raw, valid, smooth)
    events = voice_events(clip.rms_db, clip.pitch_hz, len(x))
    cond = ConditionTracker(1.0 / MODEL_FPS)
    c = np.array([cond.update(p, e) for p, e in events])
    x = np.nan_to_num(x)
    away, offsets = glances(x, valid)
    turn_target = np.zeros((len(x), 2))
    for (a, b), off in zip(_runs(away), offsets):
        x[a:b, GAZE] -= off[:2]                   # the autoregression models the fixational part,
        turn_target[a:b] = off[2:]
    x[:, :2] -= glance_turn(turn_target)          # and the head's motion beside its turn towards the look
    blink_y = blink_onsets(clip.aperture, valid)
    blink_x, glance_x = _event_design(events, x, blink_y)
    return Prepared(clip, x, valid, c, blink_x, blink_y, glance_x, away, offsets, events)


def glance_turn(target: np.ndarray) -> np.ndarray:
    """The head's turn towards looks away as the run-time model makes it: a spring
    (GLANCE_HEAD_OMEGA) following each episode's head offset."""
    springs, dt = [Spring(), Spring()], 1.0 / MODEL_FPS
    return np.array([springs_step(springs, t, GLANCE_HEAD_OMEGA, dt) for t in target]).reshape(-1, 2)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2]))


def glances(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames looking away (camera-frame gaze over GAZE_HOLD_DEG from the rest, for at
    least MIN_GLANCE_FRAMES) and each episode's mean gaze direction and head yaw and pitch
    (real people turn the head towards where they look: in the cache the head's yaw
    follows a look away's yaw with slope 0.43, its pitch with 0.91)."""
    from talkface.motion.metrics import GAZE_HOLD_DEG

    away = valid & (np.linalg.norm(x[:, GAZE], axis=1) > GAZE_HOLD_DEG)
    for a, b in _runs(away):
        if b - a < MIN_GLANCE_FRAMES:
            away[a:b] = False
    offsets = np.array([np.r_[x[a:b, GAZE].mean(axis=0), x[a:b, :2].mean(axis=0)] for a, b in _runs(away)])
    return away, offsets.reshape(-1, 4)


def _event_design(events, x, blink_y) -> tuple[np.ndarray, np.ndarray]:
    """The blink and glance features at every frame, as the run-time model sees them."""
    rows, looks, since_end, since_start, since_blink = [], [], 10.0, 10.0, 10.0
    dt, fix = 1.0 / MODEL_FPS, np.zeros(2)
    for i, (_, ev) in enumerate(events):
        since_end = 0.0 if ev.ends_phrase else since_end + dt
        since_start = 0.0 if ev.starts_phrase else since_start + dt
        g = np.nan_to_num(x[i, GAZE])
        saccade = bool(np.linalg.norm(g - fix) > SACCADE_DEG)
        if saccade:
            fix = g
        rows.append(blink_features(ev.speaking, since_end, since_start, saccade, since_blink))
        looks.append(glance_features(ev.speaking, since_end, since_start, ev.silent_for))
        since_blink = 0.0 if blink_y[i] else since_blink + dt
    return np.array(rows), np.array(looks)


# ----------------------------------------------------------------------------- the prepared cache
def _grid(times: np.ndarray, values: np.ndarray, usable: np.ndarray, n: int) -> np.ndarray:
    """Values at the video's frame times -> the MODEL_FPS grid from audio time 0; NaN
    where the nearest frames are unusable or missing."""
    ok = usable & np.all(np.isfinite(values.reshape(len(values), -1)), axis=1)
    grid = np.arange(n) / MODEL_FPS
    if ok.sum() < 2:
        return np.full((n,) + values.shape[1:], np.nan)
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(grid, times[ok], flat[ok, j], left=np.nan, right=np.nan) for j in range(flat.shape[1])], 1)
    near = np.interp(grid, times, ok.astype(float), left=0.0, right=0.0) > 0.99
    out[~near] = np.nan
    return out.reshape((n,) + values.shape[1:])


def load_clip(path: Path, meta: dict, max_seconds: float | None = None, need_audio: bool = True) -> MotionClip | None:
    """One clip of `talkface data prepare`'s cache, its motion at the audio time of each
    frame (the audio-video offset corrected); None without an audio track if need_audio
    (without, the audio features are empty: silence)."""
    with np.load(path) as z:
        if "rms_db" not in z.files and need_audio:
            return None
        t = np.asarray(z["aligned_times"], np.float64)
        n = int(np.floor(t[-1] * MODEL_FPS)) + 1 if len(t) else 0
        if max_seconds is not None:
            n = min(n, int(max_seconds * MODEL_FPS))
        usable = np.asarray(z["usable"], bool)
        cols = np.column_stack([z["pose"], z["gaze"], z["eyes"].mean(axis=1), z["brows"].mean(axis=1)]).astype(np.float64)
        g = _grid(t, cols, usable, n)
        audio = "rms_db" in z.files
        rms = np.asarray(z["rms_db"] if audio else [], np.float64)
        pitch = np.asarray(z["pitch_hz"] if audio else [], np.float64)
    return MotionClip(name=meta["clip"], speaker=str(meta["speaker"]), emotion=meta.get("emotion") or "neutral",
                      pose=g[:, :3], gaze=g[:, 3:5], aperture=g[:, 5], brow=g[:, 6], rms_db=rms, pitch_hz=pitch)


def load_cache(folder: str | Path, max_seconds: float | None = None, log=print) -> list[MotionClip]:
    """The clips index.json marks fit for motion (its labels are authoritative)."""
    folder = Path(folder)
    index = folder / "index.json"
    if not index.is_file():
        raise ValueError(f"no prepared cache in {folder} (run `talkface data prepare ... --out {folder}`)")
    metas = [m for m in json.loads(index.read_text())["clips"].values() if m.get("use_motion") and not m.get("rejected")]
    clips = [c for c in (load_clip(folder / m["file"], m, max_seconds) for m in metas) if c is not None]
    log(f"{len(clips)} clips for motion in {folder}, {len({c.speaker for c in clips})} speakers, "
        f"{sum(len(c.pose) for c in clips) / MODEL_FPS:.0f} s")
    return clips


# ----------------------------------------------------------------------------- fitting
def _design(preps: list[Prepared]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regressors [x_(t-1) .. x_(t-ORDER), c_t] and targets x_t over frames whose history is valid."""
    rows, cs, ys = [], [], []
    for p in preps:
        ok = p.valid.copy()
        for k in range(1, ORDER + 1):
            ok[k:] &= p.valid[:-k]
        ok[:ORDER] = False
        idx = np.flatnonzero(ok)
        rows.append(np.concatenate([p.x[idx - k] for k in range(1, ORDER + 1)], axis=1))
        cs.append(p.c[idx])
        ys.append(p.x[idx])
    return np.concatenate(rows), np.concatenate(cs), np.concatenate(ys)


def fit_dynamics(preps: list[Prepared], ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    hist, c, y = _design(preps)
    a = np.concatenate([hist, c], axis=1)
    scale = a.std(axis=0) + 1e-6
    scale[hist.shape[1]] = 1.0                       # the bias column
    an = a / scale
    reg = ridge * len(an) / 1000.0 * np.eye(an.shape[1])
    reg[hist.shape[1], hist.shape[1]] = 0.0
    coef = np.linalg.solve(an.T @ an + reg, an.T @ y) / scale[:, None]
    lags = coef[: hist.shape[1]].T.reshape(N_MOTION, ORDER, N_MOTION).transpose(1, 0, 2)
    cond = coef[hist.shape[1]:].T
    resid = y - a @ coef
    log_var = np.linalg.lstsq(c, np.log(resid ** 2 + 1e-8) - CHI2_LOG_MEAN, rcond=None)[0].T
    z = resid / np.exp(0.5 * c @ log_var.T)
    chol = np.linalg.cholesky(np.cov(z.T) + 1e-9 * np.eye(N_MOTION))
    return lags, cond, log_var, chol


def fit_blink(preps: list[Prepared]) -> np.ndarray:
    """The blink hazard: blink starts on the blink features."""
    return fit_logistic(np.concatenate([p.blink_x[p.valid] for p in preps]),
                        np.concatenate([p.blink_y[p.valid] for p in preps]))


def fit_glances(preps: list[Prepared]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hazards of looking away (from frames at the camera) and back (from frames away), and
    a sample of the directions looked at."""
    starts, ends = ([], []), ([], [])
    for p in preps:
        prev = np.r_[False, p.away[:-1]]
        ok = p.valid & np.r_[False, p.valid[:-1]]
        for (xs, ys), state, change in ((starts, ~prev, p.away), (ends, prev, ~p.away)):
            m = ok & state
            xs.append(p.glance_x[m])
            ys.append(change[m].astype(float))
    offsets = np.concatenate([p.offsets for p in preps])
    keep = np.random.default_rng(0).permutation(len(offsets))[:MAX_GLANCE_OFFSETS]
    return (fit_logistic(np.concatenate(starts[0]), np.concatenate(starts[1])),
            fit_logistic(np.concatenate(ends[0]), np.concatenate(ends[1])),
            offsets[keep] * np.repeat([GLANCE_OFFSET_GAIN, GLANCE_HEAD_GAIN], 2))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Logistic regression (Newton's method; the bias unpenalised)."""
    w = np.zeros(x.shape[1])
    w[0] = np.log(max(y.mean(), 1e-4) / (1 - max(y.mean(), 1e-4)))
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        grad = x.T @ (p - y) + l2 * w * np.r_[0, np.ones(len(w) - 1)]
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.diag(np.r_[0, np.ones(len(w) - 1)])
        w -= np.linalg.solve(hess, grad)
    return w


def fit(preps: list[Prepared], ridge: float = RIDGE, calibrate: bool = True) -> MotionModel:
    lags, cond, log_var, chol = fit_dynamics(preps, ridge)
    scale = np.ones(N_MOTION)
    scale[5] = BROW_UNITS
    start, end, offsets = fit_glances(preps)
    model = MotionModel(lags=lags, cond=cond, noise_log_var=log_var, noise_chol=chol, blink=fit_blink(preps), scale=scale,
                        style=np.zeros(3), glance_start=start, glance_end=end, glance_offsets=offsets,
                        emotion=np.zeros((len(EMOTIONS), len(EMOTION_FACTORS))))
    if not calibrate:
        return model
    return calibrate_gains(replace(model, style=fit_style(model, preps)), preps)


def _log_spreads(series: list[np.ndarray]) -> np.ndarray:
    """Per clip: log of the head-pose std and of the camera-frame gaze std."""
    out = []
    for s in series:
        gaze = s[:, 4:6] + s[:, :2]
        out.append([np.log(s[:, :3].std(axis=0).mean() + 1e-3), np.log(gaze.std(axis=0).mean() + 1e-3)])
    return np.array(out)


def fit_style(model: MotionModel, preps: list[Prepared], seed: int = 0) -> np.ndarray:
    """The spread of liveliness between people: the variance of the per-clip log spreads of
    real clips beyond what the model already gives clip to clip."""
    usable = [p for p in preps if p.valid.sum() >= 2 * MODEL_FPS]
    real = _log_spreads([real_series(p) for p in usable])
    gen = _log_spreads([series_from_motion(p, *generate_series(model, p, seed + i)) for i, p in enumerate(usable)])
    extra = np.cov(real.T) - np.cov(gen.T)
    sigma = np.sqrt(np.maximum(np.diag(extra), 0.0))
    rho = float(np.clip(extra[0, 1] / max(sigma[0] * sigma[1], 1e-6), -0.95, 0.95))
    return np.r_[sigma, rho]


def with_gains(model: MotionModel, head: float, gaze: float) -> MotionModel:
    """The model with its head and gaze motion scaled (the process is linear in its inputs)."""
    g = np.ones(N_MOTION)
    g[HEAD], g[GAZE] = head, gaze
    log_var = model.noise_log_var.copy()
    log_var[:, 0] += 2 * np.log(g)
    return replace(model, cond=model.cond * g[:, None], noise_log_var=log_var)


def _mean_stats(model: MotionModel, preps: list[Prepared], seed: int) -> tuple[float, float]:
    from talkface.motion.metrics import clip_stats

    stds, shares = [], []
    for i, p in enumerate(preps):
        if p.valid.sum() < 2 * MODEL_FPS:
            continue
        st = clip_stats(series_from_motion(p, *generate_series(model, p, seed + i)), MODEL_FPS)
        stds.append(st["pose_std_deg"])
        shares.append(st["gaze_camera_share"])
    return float(np.mean(stds)), float(np.mean(shares))


def calibrate_gains(model: MotionModel, preps: list[Prepared], seed: int = 0) -> MotionModel:
    """Scale the head and gaze motion so that, over the training clips, the mean head-pose
    std and the share of time gazing at the camera are the real ones, less what rendering
    and tracking change (RENDER_POSE_STD, RENDER_GAZE_SHARE). A Gaussian
    process fitted to pooled clips moves every clip like the average of very still and
    very lively people; the figures are means over clips."""
    from talkface.motion.metrics import clip_stats

    real = [clip_stats(real_series(p), MODEL_FPS) for p in preps if p.valid.sum() >= 2 * MODEL_FPS]
    std_target = max(float(np.mean([r["pose_std_deg"] for r in real])) - RENDER_POSE_STD, 0.5)
    share_target = min(float(np.mean([r["gaze_camera_share"] for r in real])) + RENDER_GAZE_SHARE, 0.95)
    head, gaze = 1.0, 1.0
    for _ in range(GAIN_ITERATIONS):
        std, share = _mean_stats(with_gains(model, head, gaze), preps, seed)
        head *= std_target / max(std, 1e-6)
        gaze *= float(np.clip((1.0 - share_target) / max(1.0 - share, 1e-3), 0.5, 2.0)) ** 0.7
    return with_gains(model, head, gaze)


def spectral_radius(model: MotionModel) -> float:
    p, d = model.order, N_MOTION
    comp = np.zeros((p * d, p * d))
    comp[:d] = np.concatenate(list(model.lags), axis=1)
    comp[d:, :-d] = np.eye((p - 1) * d)
    return float(np.abs(np.linalg.eigvals(comp)).max())


# ----------------------------------------------------------------------------- generating in model space
def generate_series(model: MotionModel, prep: Prepared, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The model driven by this clip's audio: (T, N_MOTION) motion in the camera's frame and
    (T,) blink amount, as the generator would produce them (no controls)."""
    from talkface.motion.frames import DynamicsContext

    dyn = LearnedDynamics(model, 1.0 / MODEL_FPS, np.random.default_rng(seed))
    ctx = DynamicsContext()
    xs, blinks = [], []
    for p, ev in prep.events:
        d = dyn.step(p, ev, ctx)
        xs.append(np.r_[d.head, d.gaze, d.brow])
        blinks.append(d.blink)
    return np.array(xs), np.array(blinks)


# ----------------------------------------------------------------------------- cross-validation (model space)
def speaker_folds(preps: list[Prepared], k: int, seed: int = 0) -> list[list[int]]:
    """Clip indices per fold; every speaker's clips in one fold."""
    speakers = sorted({p.clip.speaker for p in preps})
    order = np.random.default_rng(seed).permutation(len(speakers))
    fold_of = {speakers[j]: i % k for i, j in enumerate(order)}
    return [[n for n, p in enumerate(preps) if fold_of[p.clip.speaker] == f] for f in range(k)]


def frame_energy(rms_db: np.ndarray, n: int) -> np.ndarray:
    """Speech energy per video frame, dB above the clip's 10th percentile (as eval dynamics)."""
    e = np.array([rms_db[min(feature_index(i), len(rms_db) - 1)] for i in range(n)], np.float64)
    return np.maximum(e - np.percentile(e, 10), 0.0)


def real_series(prep: Prepared) -> np.ndarray:
    """face_series columns (yaw, pitch, roll, aperture, gaze yaw, pitch) on the usable frames."""
    c = prep.clip
    return np.column_stack([c.pose, c.aperture, c.gaze])[prep.valid]


def series_from_motion(prep: Prepared, motion: np.ndarray, blink: np.ndarray) -> np.ndarray:
    """Generated motion as face_series columns, the eye aperture the real clip's own with
    the generated blinks (the lids closing to 10%)."""
    rest = float(np.nanpercentile(prep.clip.aperture, 80))
    head, gaze = motion[:, HEAD], motion[:, GAZE]
    s = np.column_stack([head, rest * (1.0 - 0.9 * blink), gaze - head[:, :2]])
    return s[prep.valid]


def procedural_motion(prep: Prepared, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from talkface.motion.frames import DynamicsContext
    from talkface.motion.procedural import ProceduralDynamics

    dyn = ProceduralDynamics(1.0 / MODEL_FPS, np.random.default_rng(seed))
    ctx, eye, xs, blinks = DynamicsContext(), np.zeros(2), [], []
    for p, ev in prep.events:
        d = dyn.step(p, ev, ctx)
        eye += (d.gaze - eye) * 0.75            # ~the generator's saccade spring at 25 fps
        xs.append(np.r_[d.head, eye + (1 - dyn.vor) * d.head[:2], d.brow])
        blinks.append(d.blink)
    return np.array(xs), np.array(blinks)


def cross_validate(preps: list[Prepared], k: int = 5, seed: int = 0, ridge: float = RIDGE, log=print) -> dict:
    """Per-clip figures of the real motion, the learned model (trained without the clip's
    speaker) and the procedural motion, each driven by the clip's own audio; FD over all."""
    from talkface.motion.metrics import clip_stats, frechet_distance, summarise, window_features

    tables: dict = {"real": {}, "learned": {}, "procedural": {}}
    windows: dict = {name: [] for name in tables}
    for f, held in enumerate(speaker_folds(preps, k, seed)):
        model = fit([p for i, p in enumerate(preps) if i not in held], ridge)
        for i in held:
            p = preps[i]
            if p.valid.sum() < 2 * MODEL_FPS:
                continue
            energy = frame_energy(p.clip.rms_db, len(p.valid))[p.valid]
            series = {"real": real_series(p),
                      "learned": series_from_motion(p, *generate_series(model, p, seed + i)),
                      "procedural": series_from_motion(p, *procedural_motion(p, seed + i))}
            for name, s in series.items():
                tables[name][p.clip.name] = clip_stats(s, MODEL_FPS, energy)
                windows[name].append(window_features(s, MODEL_FPS))
        log(f"fold {f + 1}/{k}: {len(held)} clips held out")
    out = {name: {"summary": summarise(t), "clips": t} for name, t in tables.items()}
    real_w = np.concatenate(windows["real"])
    for name in ("learned", "procedural"):
        out[name]["summary"]["frechet"] = round(frechet_distance(real_w, np.concatenate(windows[name])), 3)
    return out


# ----------------------------------------------------------------------------- command
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", required=True, help="prepared cache folder (`talkface data prepare ... --out CACHE`)")
    p.add_argument("--folds", type=int, default=5, help="speaker-disjoint cross-validation folds; default 5 (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default=None, help="weights file (default: talkface/weights/motion.npz)")


def run(args: argparse.Namespace) -> int:
    from talkface.motion.learned import WEIGHTS
    from talkface.training.motion_emotion import emotion_effects, labelled_table

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if not Path(args.cache).is_dir():
        raise ValueError(f"--cache folder not found: {args.cache}")
    clips = load_cache(args.cache, log=log)
    preps = [prepare(c) for c in clips]
    record: dict = {"command": "talkface train motion " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "talkface train motion",
                    "args": {k: v for k, v in vars(args).items() if k != "func"},
                    "data": {"cache": str(args.cache), "clips": [c.name for c in clips],
                             "speakers": len({c.speaker for c in clips}),
                             "seconds": round(sum(int(p.valid.sum()) for p in preps) / MODEL_FPS, 1)}}
    if args.folds > 1:
        cv = cross_validate(preps, args.folds, args.seed, log=log)
        record["cross_validation"] = cv
        for name in ("real", "learned", "procedural"):
            log(f"{name:<11}" + ", ".join(f"{k}={v}" for k, v in cv[name]["summary"].items()))
    effects, record["emotion"] = emotion_effects(labelled_table(args.cache))
    model = replace(fit(preps), emotion=effects)
    out = Path(args.output) if args.output else WEIGHTS
    tmp = out.with_name(out.stem + ".tmp.npz")
    model.save(tmp)
    tmp.replace(out)
    record["model"] = {"order": model.order, "spectral_radius": round(spectral_radius(model), 4),
                       "style": model.style.round(3).tolist(), "bytes": out.stat().st_size}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {out} ({out.stat().st_size} bytes) and {out.with_suffix('.json')}")
    return 0
