"""Motion stage: per output frame, a head pose and named facial coefficients.

The mouth comes from the lip-sync model; everything else (head motion, brows, blinks,
gaze, emotion) is generated here from the voice's prosody, a seeded random process and
the user's controls. The generator is causal and stateful: it is stepped once per frame,
so the file renderer and the live stream drive it identically.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from talkface.motion.controls import Controls


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
class MotionStyle:
    """The statistics of the procedural motion, in measured degrees. Fitted to the real
    talking-head clips in ../shared/data/videos with `talkface eval dynamics` (tracked on
    both sides with the same face mesh): per-frame head change, pose spread, blink rate,
    gaze holding, head-motion vs speech-energy correlation."""

    posture_sigma: tuple = (8.5, 5.6, 5.0)   # spread of the per-phrase head posture (yaw, pitch, roll)
    posture_omega: float = 3.2               # how fast a new posture is reached (1/s)
    posture_hold: tuple = (1.2, 3.5)         # seconds between posture changes while speaking
    drift_sigma: tuple = (2.0, 1.2, 1.2)     # slow wander on top (Ornstein-Uhlenbeck, stationary std)
    drift_tau: float = 1.2                   # its correlation time (s)
    nod_deg: float = 2.9                     # chin dip on a stressed syllable
    nod_omega: float = 10.0
    loud_pitch: float = 1.5                  # chin lifts with vocal effort
    silence_floor: float = 0.3               # motion left after settling in a pause
    settle_s: float = 1.0                    # how fast the head settles when the voice stops
    breathing_deg: float = 0.3
    blink_per_s: float = 0.34                # background blink hazard
    blink_at_pause: float = 0.6              # chance of a blink as a phrase ends
    blink_at_glance: float = 0.4             # chance of a blink with a look-away
    blink_refractory_s: float = 0.6
    saccade_deg: float = 1.2                 # fixational saccade spread
    saccade_every: tuple = (0.6, 2.5)
    look_away_p: float = 0.5                 # chance of a glance away as a phrase starts
    look_away_deg: tuple = (5.0, 10.0)
    look_away_s: tuple = (0.5, 1.4)
    idle_glance_per_s: float = 0.25          # glances away while silent (thinking, listening)
    vor: float = 0.9                         # how much the eyes counter-rotate against head motion


DEFAULT_STYLE = MotionStyle()


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
    """Procedural, prosody-driven motion with a seeded random process.

    Head: a per-phrase posture (a new one at phrase starts and every few seconds of
    speech, reached smoothly), a slow wander, chin dips on stressed syllables (loudness
    onsets; bigger on pitch accents), the chin lifting with vocal effort, breathing; faster
    speech (syllable rate) moves it quicker; all of it settling to a small residue in pauses.
    Eyes: the gaze target (the portrait's own, the camera, or a direction, in the camera's
    frame) held while the head moves (the eyes counter-rotate), fixational saccades, glances
    away as phrases start. Blinks: a background hazard plus blinks clustered at pauses and
    glances, a refractory time, occasional double blinks. Brows rise on pitch accents.
    Emotion sets the face and scales the motion's energy and tempo.

    Same seed, same inputs: same frames. One `step` per output frame, causal.
    """

    def __init__(self, fps: float, seed: int = 0, rest_gaze: tuple[float, float] = (0.0, 0.0),
                 style: MotionStyle = DEFAULT_STYLE) -> None:
        self.dt = 1.0 / fps
        self.rng = np.random.default_rng(seed)
        self.style = style
        self.rest_gaze = rest_gaze            # the portrait's own eye direction, in rig degrees
        self.time = 0.0
        self.drift = np.zeros(3)
        self.posture = [_Spring(), _Spring(), _Spring()]
        self.posture_target = np.zeros(3)
        self.next_posture = 0.0
        self.nod = _Spring()
        self.brow = _Spring()
        self.face = {k: _Spring() for k in ("smile", "mouth_frown", "brow_frown", "brow_raise", "brow_inner", "eye_open",
                                            "jaw_open", "lip_press")}
        self.pitch_emotion = _Spring()
        self.talking = _Spring()
        self.pose_offset = [_Spring(), _Spring(), _Spring()]
        self.head_gaze = [_Spring(), _Spring()]
        self.scale = _Spring(value=1.0)
        self.base_gaze: np.ndarray | None = None
        self.gaze_base = [_Spring(), _Spring()]
        self.eye = [_Spring(), _Spring()]
        self.fixation = np.zeros(2)
        self.next_saccade = self.rng.uniform(*style.saccade_every)
        self.look_away_until = -1.0
        self.blink_start = -10.0
        self.blink_len = (0.08, 0.03, 0.15)
        self.blink_depth = 1.0
        self.pending_blink = -1.0
        self.loud_hist = [0.0, 0.0, 0.0]
        self.last_stress = -10.0
        self.prev_speaking = False
        self.silent_for = 10.0
        self.energy = 0.0
        self.syllable_rate = 3.0

    # ------------------------------------------------------------------ blinks
    def _blink_amount(self) -> float:
        t = self.time - self.blink_start
        c, h, o = self.blink_len
        if t < 0 or t > c + h + o:
            return 0.0
        if t < c:
            a = np.sin(t / c * np.pi / 2)
        elif t < c + h:
            a = 1.0
        else:
            a = np.cos((t - c - h) / o * np.pi / 2) ** 2
        return float(a * self.blink_depth)

    def _start_blink(self) -> None:
        rng = self.rng
        self.blink_start = self.time
        self.blink_len = (rng.uniform(0.06, 0.1), rng.uniform(0.0, 0.06), rng.uniform(0.12, 0.2))
        self.blink_depth = 1.0 if rng.random() < 0.85 else rng.uniform(0.6, 0.9)  # some blinks are partial
        if rng.random() < 0.08:                    # an occasional double blink
            self.pending_blink = self.time + rng.uniform(0.3, 0.45)

    def _blinks(self, rate_k: float, pause_start: bool, glance: bool) -> float:
        s, rng, dt = self.style, self.rng, self.dt
        since = self.time - self.blink_start
        if self.pending_blink > 0 and self.time >= self.pending_blink:
            self.pending_blink = -1.0
            self._start_blink()
        elif since > s.blink_refractory_s:
            p = s.blink_per_s * rate_k * dt
            if pause_start:
                p += s.blink_at_pause * rate_k
            if glance:
                p += s.blink_at_glance * rate_k
            if rng.random() < p:
                self._start_blink()
        return self._blink_amount()

    # ------------------------------------------------------------------ one frame
    def step(self, mouth: MouthShape, prosody: Prosody, controls: Controls) -> MotionFrame:
        dt, rng, s = self.dt, self.rng, self.style
        emo = EMOTION_STYLES[controls.emotion]
        strength = controls.emotion_strength
        ms = controls.motion_scale
        energy_k = (1 + (emo.energy - 1) * strength) * ms
        tempo = (1 + (emo.tempo - 1) * strength)

        # --- speech activity, stressed syllables, phrase boundaries, speaking rate
        speaking = prosody.speaking
        starts_phrase = speaking and not self.prev_speaking and self.silent_for > 0.3
        ends_phrase = self.prev_speaking and not speaking
        self.prev_speaking = speaking
        self.silent_for = 0.0 if speaking else self.silent_for + dt
        self.energy += (prosody.loudness - self.energy) * min(1.0, dt / 0.3)
        rise = prosody.loudness - min(self.loud_hist)
        self.loud_hist = self.loud_hist[1:] + [prosody.loudness]
        stressed = speaking and rise > 0.18 and self.time - self.last_stress > 0.16
        if stressed:
            self.last_stress = self.time
        self.syllable_rate += ((1.0 / dt if stressed else 0.0) - self.syllable_rate) * min(1.0, dt / 2.0)
        rate_tempo = float(np.clip(self.syllable_rate / 3.0, 0.75, 1.35))   # faster talk, quicker motion
        accent = speaking and prosody.pitch_z > 0.9

        # --- head, in measured degrees
        if speaking:
            activity = 1.0
        else:
            activity = s.silence_floor + (1 - s.silence_floor) * float(np.exp(-self.silent_for / s.settle_s))
        if starts_phrase or (speaking and self.time >= self.next_posture):
            self.posture_target = rng.standard_normal(3) * np.array(s.posture_sigma)
            self.next_posture = self.time + rng.uniform(*s.posture_hold) / tempo
        if not speaking and self.silent_for > s.settle_s:
            self.posture_target *= float(np.exp(-dt / 1.5))              # drift back to rest in long pauses
        omega_p = s.posture_omega * tempo * rate_tempo
        posture = np.array([sp.step(float(t), omega_p, dt) for sp, t in zip(self.posture, self.posture_target)])
        theta = 1.0 / s.drift_tau * tempo
        sigma = np.array(s.drift_sigma)
        self.drift += -theta * self.drift * dt + sigma * np.sqrt(2 * theta * dt) * rng.standard_normal(3)
        if stressed:
            kick = s.nod_deg * (0.5 + rise) * (0.6 + 0.8 * rng.random()) * (1.4 if accent else 1.0)
            self.nod.velocity -= kick * s.nod_omega * np.e                # chin dips, peak ~kick degrees
        nod = self.nod.step(0.0, s.nod_omega * tempo * rate_tempo, dt)
        breathing = s.breathing_deg * np.sin(2 * np.pi * 0.25 * self.time)
        head = (posture * min(activity * 1.3, 1.0) + self.drift * activity) * energy_k
        head[1] += (nod + s.loud_pitch * self.energy) * energy_k + breathing * min(ms, 1.0)

        # --- controls: pose offset, distance and emotion ease in, never jump
        omega_c = 6.0
        off = np.array([sp.step(v, omega_c, dt) for sp, v in zip(self.pose_offset, controls.head_pose)])
        pitch_emotion = self.pitch_emotion.step(emo.pitch_offset * strength, 3.0, dt)
        scale = self.scale.step(1.0 / controls.head_distance, omega_c, dt)
        if controls.gaze is not None and not controls.gaze_camera:
            share = np.array(controls.gaze, float) * np.array(GAZE_HEAD_SHARE)
        else:
            share = np.zeros(2)
        head_gaze = np.array([sp.step(float(v), 4.0, dt) for sp, v in zip(self.head_gaze, share)])
        static = off.copy()                                 # what the controls put there, not the motion
        static[:2] += head_gaze
        static[1] += pitch_emotion
        pose = head + static

        # --- gaze: a target in the camera's frame, held while the head moves
        if controls.gaze_camera:
            target = np.zeros(2)
        elif controls.gaze is not None:
            target = np.array(controls.gaze, float)
        else:
            target = eye_from_rig(self.rest_gaze)           # the portrait's own gaze, held
        if self.base_gaze is None:                          # start on the target, then ease between targets
            for g, v in zip(self.gaze_base, target):
                g.value = float(v)
            self.base_gaze = target
        base = np.array([g.step(float(v), 8.0, dt) for g, v in zip(self.gaze_base, target)])
        glance = False
        look_ms = min(ms, 1.5)
        idle_glance = (not speaking and self.silent_for > 1.0 and self.time >= self.look_away_until
                       and rng.random() < s.idle_glance_per_s * look_ms * dt)
        if (starts_phrase and rng.random() < s.look_away_p * look_ms) or idle_glance:
            glance = True
            self.look_away_until = self.time + rng.uniform(*s.look_away_s)
            self.fixation = np.array([rng.choice([-1, 1]) * rng.uniform(*s.look_away_deg), rng.uniform(-6.0, 1.0)]) * look_ms
        elif self.time >= self.next_saccade and self.time >= self.look_away_until:
            self.fixation = np.clip(rng.normal(0, s.saccade_deg, 2), -2.5, 2.5) * min(ms, 1.0)
            self.next_saccade = self.time + rng.uniform(*s.saccade_every)
        # saccades are fast (critically damped, ~0.1 s); the counter-rotation against the
        # head (vestibulo-ocular reflex) is immediate
        aim = np.array([g.step(float(v), 35.0, dt) for g, v in zip(self.eye, base + self.fixation)])
        eye_rig = eye_to_rig(aim - s.vor * head[:2] - static[:2])   # a set pose is compensated fully

        # --- blinks
        blink = self._blinks(emo.blink_rate ** strength, ends_phrase, glance)

        # --- face: emotion, brows on pitch accents, mouth from lip sync
        face_target = {k: getattr(emo.face, k) * strength for k in self.face}
        face = {k: sp.step(face_target[k], 5.0, dt) for k, sp in self.face.items()}
        brow_pulse = max(0.0, prosody.pitch_z - 0.8) * 0.35 if speaking else 0.0
        brow = self.brow.step(min(brow_pulse, 0.5) * min(ms, 1.5), 12.0, dt)
        # an emotion's open mouth (surprise) gives way while talking, so the lip-sync's
        # closures (p, b, m) still close the lips; emotion never closes the mouth either
        talk = self.talking.step(1.0 if speaking else 0.0, 8.0, dt)
        jaw = mouth.jaw_open + face["jaw_open"] * (1.0 - talk) * (1.0 - min(mouth.jaw_open, 1.0))
        expression = Expression(
            jaw_open=float(np.clip(jaw, 0.0, 1.2)),
            lip_spread=mouth.lip_spread,
            lip_round=mouth.lip_round,
            lip_press=float(min(1.0, mouth.lip_press + face["lip_press"] * (1 - min(mouth.jaw_open, 1.0)))),
            smile=face["smile"],
            mouth_frown=face["mouth_frown"],
            brow_raise=face["brow_raise"] + brow,
            brow_frown=face["brow_frown"],
            brow_inner=face["brow_inner"],
            blink_left=blink,
            blink_right=blink,
            eye_open=float(face["eye_open"] - 0.15 * blink),   # the lids follow gaze pitch in the rig
            gaze_yaw=float(eye_rig[0] - self.rest_gaze[0]),
            gaze_pitch=float(eye_rig[1] - self.rest_gaze[1]),
        )
        self.time += dt
        rig_pose = head_to_rig(pose)
        return MotionFrame(
            yaw=float(rig_pose[0]),
            pitch=float(rig_pose[1]),
            roll=float(rig_pose[2]),
            tx=float(0.003 * self.drift[0] * energy_k),
            ty=float(0.002 * breathing),
            scale=float(scale),
            expression=expression,
        )


def still_frame(expression: Expression | None = None) -> MotionFrame:
    """The portrait at rest (mouth closed), for tests and previews."""
    return MotionFrame(expression=expression or Expression())


def with_expression(frame: MotionFrame, **changes) -> MotionFrame:
    return replace(frame, expression=replace(frame.expression, **changes))
