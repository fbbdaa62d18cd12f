"""The motion stage's data: what the voice is doing at one frame, and what the face does.

Everything downstream (rig, renderer, drive, evaluation) speaks these types; they live in
a module of their own so the motion sources (procedural, learned) and the generator that
composes them import them without a cycle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Expression:
    """Facial coefficients, 0 = the neutral face with lips closed; most range 0..1."""

    jaw_open: float = 0.0
    mouth_rest: float = 0.0    # 1 keeps the portrait's own mouth as photographed (0: lips closed)
    lip_spread: float = 0.0
    lip_round: float = 0.0
    lip_press: float = 0.0
    smile: float = 0.0
    mouth_frown: float = 0.0
    brow_raise: float = 0.0
    brow_frown: float = 0.0
    brow_inner: float = 0.0    # inner ends of the brows up (sadness, surprise, worry)
    blink_left: float = 0.0
    blink_right: float = 0.0
    eye_open: float = 0.0      # > 0 wider, < 0 squint
    gaze_yaw: float = 0.0      # degrees, > 0 towards the image's right
    gaze_pitch: float = 0.0    # degrees, > 0 up


@dataclass(frozen=True)
class MotionFrame:
    """Head pose relative to the portrait's own pose, and the expression."""

    yaw: float = 0.0      # degrees, > 0 turns the nose to the image's right
    pitch: float = 0.0    # degrees, > 0 lifts the chin
    roll: float = 0.0     # degrees, > 0 tilts the head's top to the image's right
    tx: float = 0.0       # fraction of the frame width
    ty: float = 0.0
    scale: float = 1.0
    expression: Expression = Expression()


@dataclass(frozen=True)
class MouthShape:
    jaw_open: float = 0.0
    lip_spread: float = 0.0
    lip_round: float = 0.0
    lip_press: float = 0.0


@dataclass(frozen=True)
class Prosody:
    """What the voice is doing at one frame, normalised so it means the same for any speaker."""

    loudness: float   # 0 (silence) .. 1 (this speaker's loud)
    speaking: bool
    pitch_z: float    # pitch relative to the running mean, in standard deviations (0 when unvoiced)


@dataclass(frozen=True)
class DynamicsContext:
    """How the controls in force scale a frame's dynamics (emotion and motion scale)."""

    energy: float = 1.0       # scales head motion
    tempo: float = 1.0        # scales how fast it moves
    look: float = 1.0         # scales glances away and gaze wander
    blink_rate: float = 1.0   # scales the blink rate
    motion_scale: float = 1.0
    emotion: str = "neutral"      # the emotion in force (the learned source applies its own measured effects)
    emotion_strength: float = 0.0


@dataclass(frozen=True)
class Dynamics:
    """One frame of a motion source's output, in measured degrees (what the face tracker
    calls a degree, on real video as on ours), before the controls are added."""

    head: np.ndarray          # (yaw, pitch, roll) about the portrait's own pose
    gaze: np.ndarray          # (yaw, pitch) where the eyes point, in the camera's frame, about the gaze target
    blink: float              # 0 open .. 1 closed
    brow: float               # extra brow raise, rig units
    shift: tuple[float, float] = (0.0, 0.0)   # (tx, ty) of the head, fractions of the frame


@dataclass
class Spring:
    """A critically damped spring: follows a target smoothly, overshoots never."""

    value: float = 0.0
    velocity: float = 0.0

    def step(self, target: float, omega: float, dt: float) -> float:
        # exact solution of x'' = -2w x' - w^2 (x - target) over dt
        x = self.value - target
        exp = np.exp(-omega * dt)
        tmp = (self.velocity + omega * x) * dt
        self.velocity = (self.velocity - omega * tmp) * exp
        self.value = target + (x + tmp) * exp
        return self.value


def springs_step(springs: list[Spring], targets, omega: float, dt: float) -> np.ndarray:
    return np.array([s.step(float(t), omega, dt) for s, t in zip(springs, targets)])
