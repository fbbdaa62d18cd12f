"""Motion stage: per output frame, a head pose and named facial coefficients.

The mouth comes from the lip-sync model; everything else (head motion, brows, blinks,
gaze, emotion) is generated here from the voice's prosody, a seeded random process and
the user's controls. The generator is causal and stateful: it is stepped once per frame,
so the file renderer and the live stream drive it identically.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .controls import Controls


@dataclass(frozen=True)
class Expression:
    """Facial coefficients, 0 = the neutral face with lips closed; most range 0..1."""

    jaw_open: float = 0.0
    lip_spread: float = 0.0
    lip_round: float = 0.0
    lip_press: float = 0.0
    smile: float = 0.0
    mouth_frown: float = 0.0
    brow_raise: float = 0.0
    brow_frown: float = 0.0
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
class EmotionStyle:
    face: Expression
    pitch_offset: float   # degrees: sadness lowers the head
    energy: float         # scales head motion
    tempo: float          # scales how fast it moves


EMOTION_STYLES = {
    "neutral": EmotionStyle(Expression(), 0.0, 1.0, 1.0),
    "happy": EmotionStyle(Expression(smile=0.85, eye_open=-0.35, brow_raise=0.15), 1.5, 1.25, 1.15),
    "sad": EmotionStyle(Expression(mouth_frown=0.8, brow_frown=0.35, brow_raise=0.25, eye_open=-0.4), -5.0, 0.55, 0.7),
    "angry": EmotionStyle(Expression(brow_frown=1.0, lip_press=0.35, eye_open=0.2, mouth_frown=0.3), -2.0, 1.3, 1.2),
    "surprised": EmotionStyle(Expression(brow_raise=1.0, eye_open=0.8, jaw_open=0.12), 2.0, 1.1, 1.0),
}


@dataclass
class _Spring:
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


class ProsodyTracker:
    """Speaker-independent loudness and pitch, from running statistics (causal)."""

    def __init__(self) -> None:
        self.noise_floor = -60.0
        self.peak = -20.0
        self.pitch_mean = 0.0
        self.pitch_var = 1.0
        self.hangover = 0
        self.started = False

    def update(self, rms_db: float, pitch_hz: float, dt: float) -> Prosody:
        if not self.started:
            self.noise_floor = min(rms_db, -45.0)
            self.started = True
        # the floor follows quiet frames quickly and loud ones slowly; the peak the reverse
        self.noise_floor += (rms_db - self.noise_floor) * (0.3 if rms_db < self.noise_floor else 0.002)
        self.peak += (rms_db - self.peak) * (0.3 if rms_db > self.peak else 0.003)
        self.peak = max(self.peak, self.noise_floor + 20.0)
        loud = float(np.clip((rms_db - self.noise_floor - 6.0) / (self.peak - self.noise_floor - 6.0), 0.0, 1.0))
        if loud > 0.2:
            self.hangover = int(0.25 / dt)
        else:
            self.hangover = max(0, self.hangover - 1)
        pitch_z = 0.0
        if pitch_hz > 0 and loud > 0.1:
            semis = 12 * np.log2(pitch_hz / 100.0)
            if self.pitch_mean == 0.0:
                self.pitch_mean = semis
            self.pitch_mean += (semis - self.pitch_mean) * 0.02
            self.pitch_var += ((semis - self.pitch_mean) ** 2 - self.pitch_var) * 0.02
            pitch_z = float((semis - self.pitch_mean) / np.sqrt(max(self.pitch_var, 1.0)))
        return Prosody(loudness=loud, speaking=self.hangover > 0, pitch_z=pitch_z)


class MotionGenerator:
    """Procedural, prosody-driven motion with a seeded random process."""

    BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.08, 0.04, 0.16

    def __init__(self, fps: float, seed: int = 0, rest_gaze: tuple[float, float] = (0.0, 0.0)) -> None:
        self.dt = 1.0 / fps
        self.rng = np.random.default_rng(seed)
        self.rest_gaze = rest_gaze
        self.time = 0.0
        self.drift = np.zeros(3)        # slow wandering of yaw, pitch, roll (degrees)
        self.nod = _Spring()
        self.turn = _Spring()
        self.brow = _Spring()
        self.face = {k: _Spring() for k in ("smile", "mouth_frown", "brow_frown", "brow_raise", "eye_open", "jaw_open", "lip_press")}
        self.pose_offset = [_Spring(), _Spring(), _Spring()]
        self.scale = _Spring(value=1.0)
        self.gaze = [_Spring(), _Spring()]
        self.gaze_target = np.zeros(2)
        self.next_saccade = self.rng.uniform(0.8, 2.5)
        self.look_away_until = -1.0
        self.blink_start = -10.0
        self.next_blink = self.rng.uniform(0.5, 3.0)
        self.prev_loud = 0.0
        self.prev_speaking = False
        self.silent_for = 0.0
        self.energy = 0.0

    def _blink_amount(self) -> float:
        t = self.time - self.blink_start
        c, h, o = self.BLINK_CLOSE_S, self.BLINK_HOLD_S, self.BLINK_OPEN_S
        if t < 0 or t > c + h + o:
            return 0.0
        if t < c:
            return float(np.sin(t / c * np.pi / 2))
        if t < c + h:
            return 1.0
        return float(np.cos((t - c - h) / o * np.pi / 2) ** 2)

    def step(self, mouth: MouthShape, prosody: Prosody, controls: Controls) -> MotionFrame:
        dt, rng = self.dt, self.rng
        style = EMOTION_STYLES[controls.emotion]
        strength = controls.emotion_strength
        energy_k = (1 + (style.energy - 1) * strength) * controls.motion_scale
        tempo = 1 + (style.tempo - 1) * strength

        # --- speech activity and phrase boundaries
        starts_phrase = prosody.speaking and not self.prev_speaking
        ends_phrase = self.prev_speaking and not prosody.speaking
        self.silent_for = 0.0 if prosody.speaking else self.silent_for + dt
        self.prev_speaking = prosody.speaking
        self.energy += (prosody.loudness - self.energy) * min(1.0, dt / 0.4)

        # --- head: slow drift (larger while talking), nods on stressed syllables, settles in silence
        activity = 1.0 if prosody.speaking else max(0.25, 1.0 - self.silent_for / 1.5)
        theta = 0.5 * tempo
        sigma = np.array([2.6, 1.8, 1.4]) * activity
        self.drift += -theta * self.drift * dt + sigma * np.sqrt(2 * theta * dt) * rng.standard_normal(3)
        onset = max(0.0, prosody.loudness - self.prev_loud)
        self.prev_loud = prosody.loudness
        nod_kick = 0.0
        if prosody.speaking and onset > 0.12:
            nod_kick = -onset * 5.0 * (0.6 + 0.8 * rng.random())   # chin dips on the stressed syllable
        self.nod.velocity += nod_kick * 12.0
        nod = self.nod.step(0.0, 9.0 * tempo, dt)
        if starts_phrase:
            self.turn.velocity += rng.normal(0, 25.0)
        turn = self.turn.step(0.0, 4.0 * tempo, dt)
        breathing = 0.35 * np.sin(2 * np.pi * 0.23 * self.time)
        yaw = (self.drift[0] + turn) * energy_k
        pitch = (self.drift[1] + nod + 1.5 * self.energy) * energy_k + breathing
        roll = self.drift[2] * energy_k

        # --- controls: pose offset, distance and emotion ease in, never jump
        omega_c = 6.0
        off = [s.step(v, omega_c, dt) for s, v in zip(self.pose_offset, controls.head_pose)]
        pitch_emotion = style.pitch_offset * strength
        scale = self.scale.step(1.0 / controls.head_distance, omega_c, dt)

        # --- blinks: ~15/min, more likely as a phrase ends, never too close together
        since = self.time - self.blink_start
        hazard = (12.0 if ends_phrase else 0.0) + 0.22
        if since > 1.2 and (self.time >= self.next_blink or rng.random() < hazard * dt * 0.2 and ends_phrase):
            self.blink_start = self.time
            gap = rng.gamma(2.0, 1.8)
            self.next_blink = self.time + max(1.2, gap)
            if rng.random() < 0.08:  # an occasional double blink
                self.next_blink = self.time + 0.35
        blink = self._blink_amount()

        # --- gaze: holds the target, small saccades, glances away as a phrase starts
        if controls.gaze_camera:
            base_gaze = (-self.rest_gaze[0], -self.rest_gaze[1])
        elif controls.gaze is not None:
            base_gaze = (controls.gaze[0] - self.rest_gaze[0], controls.gaze[1] - self.rest_gaze[1])
        else:
            base_gaze = (0.0, 0.0)
        if starts_phrase and rng.random() < 0.35 * controls.motion_scale:
            self.look_away_until = self.time + rng.uniform(0.4, 1.1)
            self.gaze_target = np.array([rng.choice([-1, 1]) * rng.uniform(4, 8), rng.uniform(-4, 1)])
        elif self.time >= self.next_saccade and self.time > self.look_away_until:
            self.gaze_target = rng.normal(0, 1.0, 2) * min(controls.motion_scale, 1.0)
            self.next_saccade = self.time + rng.uniform(0.8, 2.8)
        target = self.gaze_target if self.time < self.look_away_until or self.time >= 0 else np.zeros(2)
        gaze = [g.step(base_gaze[i] + target[i], 40.0, dt) for i, g in enumerate(self.gaze)]

        # --- face: emotion, brows on pitch accents, mouth from lip sync
        face_target = {k: getattr(style.face, k) * strength for k in self.face}
        face = {k: s.step(face_target[k], 5.0, dt) for k, s in self.face.items()}
        accent = max(0.0, prosody.pitch_z - 0.8) * 0.35 * min(controls.motion_scale, 1.5)
        brow = self.brow.step(min(accent, 0.6), 14.0, dt)
        expression = Expression(
            jaw_open=float(np.clip(mouth.jaw_open + face["jaw_open"], 0.0, 1.2)),
            lip_spread=mouth.lip_spread,
            lip_round=mouth.lip_round,
            lip_press=float(min(1.0, mouth.lip_press + face["lip_press"] * (1 - mouth.jaw_open))),
            smile=face["smile"],
            mouth_frown=face["mouth_frown"],
            brow_raise=face["brow_raise"] + brow,
            brow_frown=face["brow_frown"],
            blink_left=blink,
            blink_right=blink,
            eye_open=face["eye_open"] - 0.15 * blink,
            gaze_yaw=gaze[0],
            gaze_pitch=gaze[1],
        )
        self.time += dt
        return MotionFrame(
            yaw=float(yaw + off[0]),
            pitch=float(pitch + off[1] + pitch_emotion),
            roll=float(roll + off[2]),
            tx=float(0.004 * self.drift[0] * energy_k),
            ty=float(0.002 * breathing),
            scale=float(scale),
            expression=expression,
        )


def still_frame(expression: Expression | None = None) -> MotionFrame:
    """The portrait at rest (mouth closed), for tests and previews."""
    return MotionFrame(expression=expression or Expression())


def with_expression(frame: MotionFrame, **changes) -> MotionFrame:
    return replace(frame, expression=replace(frame.expression, **changes))
