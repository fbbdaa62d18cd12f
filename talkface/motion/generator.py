"""Motion stage: per output frame, a head pose and named facial coefficients.

The mouth comes from the lip-sync model. Head motion, gaze, blinks and brows come from a
motion source: the learned model (`motion.learned`, trained on real talking people) or
the procedural one (`motion.procedural`), both driven by the voice's prosody and a seeded
random process. The generator adds what the user's controls ask for (pose offset, gaze,
distance, emotion), eased in so nothing jumps, and maps measured degrees to the rig's.
It is causal and stateful: stepped once per frame, so the file renderer and the live
stream drive it identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.motion.controls import Controls
from talkface.motion.frames import Dynamics, DynamicsContext, Expression, MotionFrame, MouthShape, Prosody, Spring, springs_step
from talkface.motion.procedural import DEFAULT_STYLE, MotionStyle, ProceduralDynamics
from talkface.motion.prosody import ProsodyTracker, SpeechTracker

__all__ = ["Expression", "MotionFrame", "MouthShape", "Prosody", "ProsodyTracker", "MotionStyle", "MotionGenerator",
           "EMOTION_STYLES", "MOTION_SOURCES", "head_to_rig", "eye_to_rig", "eye_from_rig", "still_frame"]

MOTION_SOURCES = ("learned", "procedural")
DEFAULT_MOTION = "learned"

# How fast the controls' targets are reached (critically damped springs, 1/s)
CONTROL_OMEGA = 6.0           # pose offset and distance
EMOTION_PITCH_OMEGA = 3.0     # the head lowering / lifting with an emotion
HEAD_GAZE_OMEGA = 4.0         # the head's share of a gaze request
GAZE_TARGET_OMEGA = 8.0       # the eyes moving between gaze targets
SACCADE_OMEGA = 35.0          # a saccade takes ~0.1 s
FACE_OMEGA = 5.0              # emotion's face
TALK_OMEGA = 8.0              # an emotion's open mouth giving way to speech
LID_FOLLOW_BLINK = 0.15       # the lower lid rises a little with a blink
MAX_JAW = 1.2

@dataclass(frozen=True)
class EmotionStyle:
    face: Expression
    pitch_offset: float   # degrees (as measured by the tracker): sadness lowers the head
    energy: float         # scales head motion
    tempo: float          # scales how fast it moves
    blink_rate: float = 1.0   # scales the blink rate


EMOTION_STYLES = {
    "neutral": EmotionStyle(Expression(), 0.0, 1.0, 1.0),
    "happy": EmotionStyle(Expression(smile=0.85, eye_open=-0.35, brow_raise=0.15), 1.5, 1.25, 1.15),
    # sadness's oblique brows: the inner ends up and drawn together
    "sad": EmotionStyle(Expression(mouth_frown=1.0, brow_inner=1.0, brow_frown=0.3, brow_raise=0.1, eye_open=-0.4), -4.0, 0.55, 0.7, 0.85),
    "angry": EmotionStyle(Expression(brow_frown=1.0, lip_press=0.35, eye_open=0.9, mouth_frown=0.6), -2.0, 1.3, 1.2, 0.75),
    "surprised": EmotionStyle(Expression(brow_raise=1.0, brow_inner=0.6, eye_open=0.8, jaw_open=0.12), 2.0, 1.1, 1.0, 0.6),
}

# The rig's response as the tracker reads it, on the built-in portrait (MediaPipe face mesh,
# the extractor every measurement uses): commanded rig degrees -> measured degrees. Measured
# with `talkface eval controls --calibrate` against rig.py with DEPTH_GAIN 1.4: head yaw reads
# ~0.9 of the command up to 25 degrees and saturates past it, pitch is non-linear (~0.9 down,
# 1.2 to 1.4 up since the hair turns at the pivot's depth), the irises ~0.6 in yaw.
# The generator plans everything in measured degrees (what the tracker, on real video too,
# calls a degree) and maps it back through these tables, so `--head-pose 10,0,0` reads as
# 10 degrees of yaw on the output. Re-measure whenever the rig or renderer changes:
# `talkface eval controls --calibrate` prints this block (tests/test_controls.py notices drift).
RIG_HEAD_YAW = (-40, -35, -30, -25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30, 35, 40)
MEASURED_HEAD_YAW = (-25.91, -24.84, -24.09, -21.8, -18.32, -14.03, -9.36, -4.53, 0, 4.43, 8.88, 14.2, 18.82, 23.71, 25.91, 28.11, 29.36)
RIG_HEAD_PITCH = (-35, -30, -25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30, 35)
MEASURED_HEAD_PITCH = (-32.02, -29.25, -26.55, -20.89, -14.62, -9.05, -3.44, 0, 6.02, 13.56, 19.8, 27.7, 35.94, 43.15, 47.74)
RIG_HEAD_ROLL = (-25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25)
MEASURED_HEAD_ROLL = (-24.66, -20.25, -14.87, -9.69, -4.78, 0, 5.56, 10.61, 15.6, 21.3, 26.01)
PITCH_FROM_YAW = (-1.49, -1.09, -2.29, -1.08, -0.75, -0.97, 0.1, 0.25, 0, 1.1, 1.11, 0.86, 0.67, 0.95, 1.5, 2.38, 1.39)    # measured pitch cross-talk at RIG_HEAD_YAW
PITCH_FROM_ROLL = (1.39, 1.1, 1.34, 0.37, 0.38, 0, 1.78, 2.9, 2.94, 3.26, 3.48)  # ... at RIG_HEAD_ROLL
RIG_EYE_YAW = (-35, -30, -25, -20, -15, -10, -5, 0, 5, 10, 15, 20, 25, 30, 35)
MEASURED_EYE_YAW = (-24.89, -20.04, -17.99, -11.76, -8.95, -6.04, -3.68, 0, 3.43, 6.31, 9.77, 11.47, 15.87, 18.45, 22.21)
# Vertical iris motion the tracker hardly reads (rig 25 -> 6.6, rig -25 -> -3.1, saturating)
# although it shows plainly: a mild gain instead of the tracker's table, and vertical gaze
# requests are shared with the head, which the tracker does read.
EYE_PITCH_GAIN = 0.75
MAX_RIG_HEAD = (45.0, 40.0, 30.0)
MAX_RIG_EYE = (32.0, 22.0)            # beyond this the eyes look strained (the lids follow pitch: rig.LID_FOLLOW)
GAZE_HEAD_SHARE = (0.3, 0.5)          # of a gaze request away from the camera, done by the head


def _inverse(x: float, rig: tuple, measured: tuple) -> float:
    """Rig value whose measured response is x (the table inverted, extended linearly)."""
    m, g = np.asarray(measured, float), np.asarray(rig, float)
    if x < m[0]:
        return float(g[0] + (x - m[0]) * (g[1] - g[0]) / (m[1] - m[0]))
    if x > m[-1]:
        return float(g[-1] + (x - m[-1]) * (g[-1] - g[-2]) / (m[-1] - m[-2]))
    return float(np.interp(x, m, g))


def head_to_rig(pose) -> np.ndarray:
    """(yaw, pitch, roll) in measured degrees -> the rig's degrees."""
    yaw = _inverse(pose[0], RIG_HEAD_YAW, MEASURED_HEAD_YAW)
    roll = _inverse(pose[2], RIG_HEAD_ROLL, MEASURED_HEAD_ROLL)
    xt = np.interp(yaw, RIG_HEAD_YAW, PITCH_FROM_YAW) + np.interp(roll, RIG_HEAD_ROLL, PITCH_FROM_ROLL)
    pitch = _inverse(pose[1] - xt, RIG_HEAD_PITCH, MEASURED_HEAD_PITCH)
    return np.clip(np.array([yaw, pitch, roll]), -np.array(MAX_RIG_HEAD), np.array(MAX_RIG_HEAD))


def eye_to_rig(eye) -> np.ndarray:
    """Eye rotation in the head (yaw, pitch), measured degrees -> the rig's degrees."""
    out = np.array([_inverse(eye[0], RIG_EYE_YAW, MEASURED_EYE_YAW), eye[1] / EYE_PITCH_GAIN])
    return np.clip(out, -np.array(MAX_RIG_EYE), np.array(MAX_RIG_EYE))


def eye_from_rig(eye) -> np.ndarray:
    return np.array([np.interp(eye[0], RIG_EYE_YAW, MEASURED_EYE_YAW), eye[1] * EYE_PITCH_GAIN])


@dataclass(frozen=True)
class _Targets:
    """What the controls put on the head and eyes this frame (eased), not the motion."""

    pose: np.ndarray       # (yaw, pitch, roll) measured degrees
    gaze: np.ndarray       # gaze target in the camera's frame, measured degrees
    scale: float


class _ControlState:
    """The controls eased in: pose offset, distance, the head's share of a gaze request,
    the emotion's head pitch and face, the gaze target."""

    def __init__(self, dt: float, rest_gaze: tuple[float, float]) -> None:
        self.dt, self.rest_gaze = dt, rest_gaze
        self.offset = [Spring(), Spring(), Spring()]
        self.pitch_emotion = Spring()
        self.scale = Spring(value=1.0)
        self.head_gaze = [Spring(), Spring()]
        self.gaze_base: list[Spring] | None = None
        self.face = {k: Spring() for k in ("smile", "mouth_frown", "brow_frown", "brow_raise", "brow_inner", "eye_open",
                                           "jaw_open", "lip_press")}
        self.talking = Spring()

    def targets(self, controls: Controls) -> _Targets:
        dt, emo = self.dt, EMOTION_STYLES[controls.emotion]
        pose = springs_step(self.offset, controls.head_pose, CONTROL_OMEGA, dt)
        share = np.zeros(2)
        if controls.gaze is not None and not controls.gaze_camera:
            share = np.array(controls.gaze, float) * np.array(GAZE_HEAD_SHARE)
        pose[:2] += springs_step(self.head_gaze, share, HEAD_GAZE_OMEGA, dt)
        pose[1] += self.pitch_emotion.step(emo.pitch_offset * controls.emotion_strength, EMOTION_PITCH_OMEGA, dt)
        scale = self.scale.step(1.0 / controls.head_distance, CONTROL_OMEGA, dt)
        if controls.gaze_camera:
            target = np.zeros(2)
        elif controls.gaze is not None:
            target = np.array(controls.gaze, float)
        else:
            target = eye_from_rig(self.rest_gaze)           # the portrait's own gaze, held
        if self.gaze_base is None:                          # start on the target, then ease between targets
            self.gaze_base = [Spring(value=float(v)) for v in target]
        gaze = springs_step(self.gaze_base, target, GAZE_TARGET_OMEGA, dt)
        return _Targets(pose=pose, gaze=gaze, scale=float(scale))

    def expression(self, controls: Controls, mouth: MouthShape, speaking: bool, brow: float, blink: float,
                   eye_rig: np.ndarray) -> Expression:
        """The face: the emotion eased in, the lip-sync mouth, brows, blink and eyes."""
        emo = EMOTION_STYLES[controls.emotion]
        face = {k: sp.step(getattr(emo.face, k) * controls.emotion_strength, FACE_OMEGA, self.dt)
                for k, sp in self.face.items()}
        # an emotion's open mouth (surprise) gives way while talking, so the lip-sync's
        # closures (p, b, m) still close the lips; emotion never closes the mouth either
        talk = self.talking.step(1.0 if speaking else 0.0, TALK_OMEGA, self.dt)
        open_ = min(mouth.jaw_open, 1.0)
        jaw = mouth.jaw_open + face["jaw_open"] * (1.0 - talk) * (1.0 - open_)
        return Expression(
            jaw_open=float(np.clip(jaw, 0.0, MAX_JAW)), lip_spread=mouth.lip_spread, lip_round=mouth.lip_round,
            lip_press=float(min(1.0, mouth.lip_press + face["lip_press"] * (1 - open_))),
            smile=face["smile"], mouth_frown=face["mouth_frown"], brow_raise=face["brow_raise"] + brow,
            brow_frown=face["brow_frown"], brow_inner=face["brow_inner"], blink_left=blink, blink_right=blink,
            eye_open=float(face["eye_open"] - LID_FOLLOW_BLINK * blink),   # the lids follow gaze pitch in the rig
            gaze_yaw=float(eye_rig[0] - self.rest_gaze[0]), gaze_pitch=float(eye_rig[1] - self.rest_gaze[1]))


def dynamics_context(controls: Controls) -> DynamicsContext:
    emo, k, ms = EMOTION_STYLES[controls.emotion], controls.emotion_strength, controls.motion_scale
    return DynamicsContext(energy=(1 + (emo.energy - 1) * k) * ms, tempo=1 + (emo.tempo - 1) * k,
                           look=min(ms, 1.5), blink_rate=emo.blink_rate ** k, motion_scale=ms,
                           emotion=controls.emotion, emotion_strength=k)


def motion_source(name: str, dt: float, rng: np.random.Generator, style: MotionStyle = DEFAULT_STYLE, model=None):
    """The head/eye/blink/brow dynamics by name: 'learned' (the shipped model, or `model`)
    or 'procedural'."""
    if name == "procedural":
        return ProceduralDynamics(dt, rng, style)
    if name == "learned":
        from talkface.motion.learned import LearnedDynamics, default_motion_model

        return LearnedDynamics(model or default_motion_model(), dt, rng)
    raise ValueError(f"unknown motion source '{name}' (choose one of: {', '.join(MOTION_SOURCES)})")


class MotionGenerator:
    """Motion from a source (learned or procedural) plus the controls.

    Same seed, same inputs: same frames. One `step` per output frame, causal.
    """

    def __init__(self, fps: float, seed: int = 0, rest_gaze: tuple[float, float] = (0.0, 0.0),
                 style: MotionStyle = DEFAULT_STYLE, source: str = DEFAULT_MOTION, model=None) -> None:
        self.dt = 1.0 / fps
        self.rng = np.random.default_rng(seed)
        self.speech = SpeechTracker(self.dt)
        self.source = motion_source(source, self.dt, self.rng, style, model)
        self.controls = _ControlState(self.dt, rest_gaze)
        self.eye = [Spring(), Spring()]

    def step(self, mouth: MouthShape, prosody: Prosody, controls: Controls) -> MotionFrame:
        events = self.speech.update(prosody)
        dyn: Dynamics = self.source.step(prosody, events, dynamics_context(controls))
        target = self.controls.targets(controls)
        aim = springs_step(self.eye, target.gaze + dyn.gaze, SACCADE_OMEGA, self.dt)
        # the eyes hold their aim while the head moves (a set pose is compensated fully)
        eye_rig = eye_to_rig(aim - self.source.vor * dyn.head[:2] - target.pose[:2])
        expression = self.controls.expression(controls, mouth, events.speaking, dyn.brow, dyn.blink, eye_rig)
        rig_pose = head_to_rig(dyn.head + target.pose)
        return MotionFrame(yaw=float(rig_pose[0]), pitch=float(rig_pose[1]), roll=float(rig_pose[2]),
                           tx=float(dyn.shift[0]), ty=float(dyn.shift[1]), scale=target.scale, expression=expression)


def still_frame(expression: Expression | None = None) -> MotionFrame:
    """The portrait at rest (mouth closed), for tests and previews."""
    return MotionFrame(expression=expression or Expression())
