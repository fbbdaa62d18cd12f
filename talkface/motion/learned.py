"""Learned motion: head pose, gaze, brows and blinks generated from the voice, with the
statistics of real talking people (trained by `talkface train motion` on tracked real
clips; weights in talkface/weights/motion.npz, a few kB).

The model, per 25 fps frame t, in measured degrees (what the face tracker reads):

    x_t = sum_k A_k x_(t-k) + B c_t + s(c_t) * (L z_t),    z_t ~ N(0, I)

x = (head yaw, pitch, roll, gaze yaw, pitch in the camera's frame, brow height) about the
person's own rest, scaled by a per-sequence liveliness drawn from the seed (log-normal,
its spread the spread between real people); c = what the voice is doing (loudness, speaking, smoothed energy,
syllable onsets, pitch accents, phrase starts, pauses; `condition`); the noise scale
s(c) = exp(W c / 2) grows with the voice, which couples head motion to speech; L is the
residuals' correlation (head and eyes move together). A fixation holds until the
model's gaze has moved SACCADE_DEG from it, then the eyes jump (a saccade), as real eyes
do. Blinks start with a learned per-frame hazard (logistic in the blink features below:
pauses, phrase starts, saccades, time since the last blink).

Looks away from the camera are episodes of a two-state chain; the head turns part of the
way with the eyes (a spring towards the episode's head offset), as real people do. An
emotion scales head motion, look-aways, blink rate and brow motion by factors measured on
MEAD clips (`MotionModel.emotion`, at the control's strength).

Causal, no look-ahead; numpy only; a few microseconds per frame. Different seeds give
different motion with the same statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from talkface.motion.controls import EMOTIONS
from talkface.motion.frames import Dynamics, DynamicsContext, Prosody, Spring, springs_step
from talkface.motion.procedural import Blinker
from talkface.motion.prosody import SpeechEvents

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "motion.npz"
MODEL_FPS = 25.0
HEAD, GAZE, BROW = slice(0, 3), slice(3, 5), 5
N_MOTION = 6
CONDITION_NAMES = ("bias", "loudness", "speaking", "energy", "onset", "accent", "phrase_start", "pause")
BLINK_FEATURES = ("bias", "speaking", "phrase_end", "phrase_start", "saccade", "log_since")
GLANCE_FEATURES = ("bias", "speaking", "phrase_end", "phrase_start", "pause")
EMOTION_FACTORS = ("head", "look", "blink", "brow")   # what an emotion scales (training/motion_emotion.py)
PHRASE_DECAY_S = 0.5          # the phrase-start feature fades over this time
PAUSE_TAU_S = 1.0
SACCADE_DEG = 1.5             # a new fixation when the model's gaze has moved this far from the held one
BLINK_REFRACTORY_S = 0.25
BLINK_EVENT_S = 0.5           # phrase ends / starts this recent count for the blink hazard
BROW_TO_RIG = 8.0             # rig brow_raise per unit of brow height (inter-ocular distances)
BROW_RIG_RANGE = (-0.3, 0.8)
HEAD_RANGE_DEG = 25.0         # the generated head never leaves this box (about the rest)
GAZE_RANGE_DEG = 20.0
TX_PER_DEG, TY_PER_DEG = 0.002, 0.001   # the head shifts a little as it turns and nods
STYLE_GAIN_RANGE = (1 / 3, 3.0)   # the liveliness' log-normal tail cut: a 6x head looked wild
GLANCE_HEAD_OMEGA = 6.0           # 1/s: the head's share of a look away eases in and out (a spring)


@dataclass(frozen=True)
class MotionModel:
    lags: np.ndarray        # (P, D, D): x_t += lags[k] @ x_(t-1-k)
    cond: np.ndarray        # (D, C)
    noise_log_var: np.ndarray   # (D, C): log variance of the innovation = noise_log_var @ c
    noise_chol: np.ndarray  # (D, D) Cholesky factor of the innovations' correlation
    blink: np.ndarray       # (len(BLINK_FEATURES),) logistic hazard weights per frame
    scale: np.ndarray       # (D,) units of x (brow: inter-ocular distances x scale[5] -> model units)
    style: np.ndarray       # (3,) a sequence's liveliness: log-normal sigma of head, gaze; their correlation
    glance_start: np.ndarray    # (len(GLANCE_FEATURES),) logistic hazard of looking away from the camera
    glance_end: np.ndarray      # (len(GLANCE_FEATURES),) ... of looking back
    glance_offsets: np.ndarray  # (K, 4) where real people looked when they looked away, and where their
                                # head turned meanwhile: gaze yaw, pitch, head yaw, pitch (degrees)
    emotion: np.ndarray     # (len(controls.EMOTIONS), len(EMOTION_FACTORS)) log factors at full strength

    @classmethod
    def load(cls, path: str | Path = WEIGHTS) -> "MotionModel":
        with np.load(path) as z:
            return cls(**{k: np.asarray(z[k], np.float64) for k in cls.__dataclass_fields__})

    def save(self, path: str | Path) -> None:
        np.savez(path, **{k: np.asarray(getattr(self, k), np.float32) for k in self.__dataclass_fields__})

    @property
    def order(self) -> int:
        return self.lags.shape[0]


@lru_cache(maxsize=1)
def default_motion_model() -> MotionModel:
    return MotionModel.load(WEIGHTS)


class ConditionTracker:
    """The condition vector c_t from the per-frame prosody and speech events (causal)."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.since_start = 10.0

    def update(self, prosody: Prosody, ev: SpeechEvents) -> np.ndarray:
        self.since_start = 0.0 if ev.starts_phrase else self.since_start + self.dt
        speaking = float(ev.speaking)
        return np.array([1.0, prosody.loudness, speaking, ev.energy, max(ev.rise, 0.0) * speaking,
                         max(prosody.pitch_z, 0.0) * speaking, np.exp(-self.since_start / PHRASE_DECAY_S) * speaking,
                         1.0 - np.exp(-ev.silent_for / PAUSE_TAU_S)])


def blink_features(speaking: bool, since_end: float, since_start: float, saccade: bool, since_blink: float) -> np.ndarray:
    return np.array([1.0, float(speaking), float(since_end < BLINK_EVENT_S), float(since_start < BLINK_EVENT_S),
                     float(saccade), np.log(max(since_blink, BLINK_REFRACTORY_S))])


def glance_features(speaking: bool, since_end: float, since_start: float, silent_for: float) -> np.ndarray:
    return np.array([1.0, float(speaking), float(since_end < BLINK_EVENT_S), float(since_start < BLINK_EVENT_S),
                     1.0 - np.exp(-silent_for / PAUSE_TAU_S)])


def hazard(weights: np.ndarray, features: np.ndarray) -> float:
    return float(1.0 / (1.0 + np.exp(-float(weights @ features))))


class LearnedDynamics:
    """Steps a MotionModel once per frame (the model runs at MODEL_FPS; other frame rates
    step it at the nearest model frame)."""

    vor = 1.0     # the model's gaze is already where the eyes point in the camera's frame

    def __init__(self, model: MotionModel, dt: float, rng: np.random.Generator) -> None:
        self.model, self.dt, self.rng = model, dt, rng
        self.history = np.zeros((model.order, N_MOTION))   # newest first
        self.condition = ConditionTracker(dt)
        self.blinker = Blinker(rng, dt)
        self.fixation = np.zeros(2)
        self.glance: np.ndarray | None = None      # where the eyes went while looking away
        self.since_end = 10.0
        self.clock = 0.0          # model frames owed (a fraction of one between model frames)
        # this sequence's liveliness: real people range from very still to very animated
        self.gain = np.ones(N_MOTION)
        self.gain[HEAD], self.gain[GAZE] = liveliness(model.style, rng)
        self.glance_head = [Spring(), Spring()]

    def _advance(self, c: np.ndarray) -> np.ndarray:
        m = self.model
        x = np.einsum("kij,kj->i", m.lags, self.history) + m.cond @ c
        x += np.exp(0.5 * (m.noise_log_var @ c)) * (m.noise_chol @ self.rng.standard_normal(N_MOTION))
        x[HEAD] = np.clip(x[HEAD], -HEAD_RANGE_DEG, HEAD_RANGE_DEG)
        x[GAZE] = np.clip(x[GAZE], -GAZE_RANGE_DEG, GAZE_RANGE_DEG)
        self.history = np.vstack([x[None], self.history[:-1]])
        return x

    def step(self, prosody: Prosody, ev: SpeechEvents, ctx: DynamicsContext) -> Dynamics:
        c = self.condition.update(prosody, ev)
        self.clock += self.dt * MODEL_FPS
        while self.clock > 1.0 - 1e-6:
            self._advance(c)
            self.clock -= 1.0
        frac = min(max(self.clock, 0.0), 1.0)     # one model frame behind, interpolated between model frames
        x = (self.history[1] + frac * (self.history[0] - self.history[1])) * self.gain
        self.since_end = 0.0 if ev.ends_phrase else self.since_end + self.dt
        head_gain, look_gain, blink_gain, brow_gain = self.emotion_gains(ctx)
        look = self._glance(ev, look_gain)
        turn = springs_step(self.glance_head, look[2:], GLANCE_HEAD_OMEGA, self.dt)
        gaze = (x[GAZE] + look[:2]) * ctx.look
        saccade = bool(np.linalg.norm(gaze - self.fixation) > SACCADE_DEG)
        if saccade:
            self.fixation = gaze.copy()
        feats = blink_features(ev.speaking, self.since_end, self.condition.since_start, saccade, self.blinker.since)
        p = 1.0 - (1.0 - hazard(self.model.blink, feats)) ** (self.dt * MODEL_FPS)
        blink = self.blinker.step(p * blink_gain, BLINK_REFRACTORY_S)
        head = np.clip(x[HEAD] + np.r_[turn, 0.0], -HEAD_RANGE_DEG, HEAD_RANGE_DEG) * head_gain
        brow = float(np.clip(x[BROW] * brow_gain / self.model.scale[BROW] * BROW_TO_RIG, *BROW_RIG_RANGE))
        brow *= min(ctx.motion_scale, 1.0)
        return Dynamics(head=head, gaze=self.fixation.copy(), blink=blink, brow=brow,
                        shift=(TX_PER_DEG * head[0], TY_PER_DEG * head[1]))

    def emotion_gains(self, ctx: DynamicsContext) -> np.ndarray:
        """Head, look-away, blink-rate and brow gains: the emotion's learned factors at the
        control's strength (the head's also times the motion scale)."""
        row = EMOTIONS.index(ctx.emotion) if ctx.emotion in EMOTIONS else 0
        gains = np.exp(ctx.emotion_strength * self.model.emotion[row])
        gains[0] *= ctx.motion_scale
        return gains

    def _glance(self, ev: SpeechEvents, rate: float = 1.0) -> np.ndarray:
        """Looking away from the camera and back: a two-state chain with learned hazards
        (`rate` scales the hazard of looking away)."""
        m = self.model
        feats = glance_features(ev.speaking, self.since_end, self.condition.since_start, ev.silent_for)
        steps = self.dt * MODEL_FPS
        if self.glance is None:
            if self.rng.random() < 1.0 - (1.0 - min(hazard(m.glance_start, feats) * rate, 1.0)) ** steps:
                self.glance = m.glance_offsets[self.rng.integers(len(m.glance_offsets))]
        elif self.rng.random() < 1.0 - (1.0 - hazard(m.glance_end, feats)) ** steps:
            self.glance = None
        return np.zeros(4) if self.glance is None else self.glance


def liveliness(style: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A sequence's head and gaze gains: correlated log-normal draws (lively people move
    head and eyes more), the tails cut at STYLE_GAIN_RANGE."""
    rho = float(np.clip(style[2], -0.99, 0.99)) if len(style) > 2 else 0.0
    z = rng.standard_normal(2)
    z[1] = rho * z[0] + np.sqrt(1.0 - rho * rho) * z[1]
    head, gaze = np.clip(np.exp(style[:2] * z), *STYLE_GAIN_RANGE)
    return float(head), float(gaze)
