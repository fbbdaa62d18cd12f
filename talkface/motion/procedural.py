"""Procedural motion: head, gaze, blinks and brows from hand-built rules driven by the
voice's prosody and a seeded random process (the fallback to the learned motion).

Head: a per-phrase posture (a new one at phrase starts and every few seconds of speech,
reached smoothly), a slow wander, chin dips on stressed syllables (bigger on pitch
accents), the chin lifting with vocal effort, breathing; faster speech moves it quicker;
all of it settling to a small residue in pauses. Eyes: fixational saccades and glances
away as phrases start (the generator holds the gaze target and counter-rotates the eyes).
Blinks: a background hazard plus blinks clustered at pauses and glances, a refractory
time, occasional double blinks. Brows rise on pitch accents.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.motion.frames import Dynamics, DynamicsContext, Prosody, Spring, springs_step
from talkface.motion.prosody import SpeechEvents

STRESS_BOOST = 1.4          # a stressed syllable on a pitch accent nods this much more
ACTIVITY_GAIN = 1.3         # posture follows activity, saturating
REST_DECAY_S = 1.5          # the posture target fades to rest in long pauses
BREATHING_HZ = 0.25
IDLE_GLANCE_AFTER_S = 1.0   # silence before idle glances may start
SACCADE_LIMIT_DEG = 2.5
LOOK_AWAY_PITCH_DEG = (-6.0, 1.0)
BROW_ACCENT_Z = 0.8         # pitch (z) above which the brows rise
BROW_GAIN, BROW_MAX = 0.35, 0.5
BROW_OMEGA = 12.0           # 1/s
TX_PER_DEG, TY_PER_DEG = 0.003, 0.002   # head shift per degree of wander / breathing
PARTIAL_BLINK_P = 0.15
DOUBLE_BLINK_P = 0.08


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


class Blinker:
    """Blink shapes: a fast close, a short hold, a slower open; some partial, some double."""

    def __init__(self, rng: np.random.Generator, dt: float) -> None:
        self.rng, self.dt = rng, dt
        self.time = 0.0
        self.start = -10.0
        self.lengths = (0.08, 0.03, 0.15)   # close, hold, open (s)
        self.depth = 1.0
        self.pending = -1.0

    @property
    def since(self) -> float:
        return self.time - self.start

    def begin(self) -> None:
        rng = self.rng
        self.start = self.time
        self.lengths = (rng.uniform(0.06, 0.1), rng.uniform(0.0, 0.06), rng.uniform(0.12, 0.2))
        self.depth = 1.0 if rng.random() < 1.0 - PARTIAL_BLINK_P else rng.uniform(0.6, 0.9)
        if rng.random() < DOUBLE_BLINK_P:
            self.pending = self.time + rng.uniform(0.3, 0.45)

    def step(self, hazard: float, refractory_s: float) -> float:
        """Advance one frame; a blink starts with probability `hazard` (or a pending double)."""
        if self.pending > 0 and self.time >= self.pending:
            self.pending = -1.0
            self.begin()
        elif self.since > refractory_s and self.rng.random() < hazard:
            self.begin()
        amount = self.amount()
        self.time += self.dt
        return amount

    def amount(self) -> float:
        t = self.since
        c, h, o = self.lengths
        if t < 0 or t > c + h + o:
            return 0.0
        if t < c:
            a = np.sin(t / c * np.pi / 2)
        elif t < c + h:
            a = 1.0
        else:
            a = np.cos((t - c - h) / o * np.pi / 2) ** 2
        return float(a * self.depth)


class ProceduralDynamics:
    """One `step` per frame; same seed, same inputs: same output."""

    def __init__(self, dt: float, rng: np.random.Generator, style: MotionStyle = DEFAULT_STYLE) -> None:
        self.dt, self.rng, self.style = dt, rng, style
        self.vor = style.vor
        self.time = 0.0
        self.drift = np.zeros(3)
        self.posture = [Spring(), Spring(), Spring()]
        self.posture_target = np.zeros(3)
        self.next_posture = 0.0
        self.nod = Spring()
        self.brow = Spring()
        self.fixation = np.zeros(2)
        self.next_saccade = rng.uniform(*style.saccade_every)
        self.look_away_until = -1.0
        self.blinker = Blinker(rng, dt)

    def step(self, prosody: Prosody, ev: SpeechEvents, ctx: DynamicsContext) -> Dynamics:
        head, breathing = self._head(ev, ctx)
        glance = self._gaze(ev, ctx)
        s = self.style
        hazard = s.blink_per_s * ctx.blink_rate * self.dt
        hazard += (s.blink_at_pause * ev.ends_phrase + s.blink_at_glance * glance) * ctx.blink_rate
        blink = self.blinker.step(hazard, s.blink_refractory_s)
        pulse = max(0.0, prosody.pitch_z - BROW_ACCENT_Z) * BROW_GAIN if ev.speaking else 0.0
        brow = self.brow.step(min(pulse, BROW_MAX) * min(ctx.motion_scale, 1.5), BROW_OMEGA, self.dt)
        self.time += self.dt
        shift = (TX_PER_DEG * self.drift[0] * ctx.energy, TY_PER_DEG * breathing)
        return Dynamics(head=head, gaze=self.fixation.copy(), blink=blink, brow=brow, shift=shift)

    def _head(self, ev: SpeechEvents, ctx: DynamicsContext) -> tuple[np.ndarray, float]:
        s, dt, rng = self.style, self.dt, self.rng
        activity = 1.0 if ev.speaking else s.silence_floor + (1 - s.silence_floor) * float(np.exp(-ev.silent_for / s.settle_s))
        if ev.starts_phrase or (ev.speaking and self.time >= self.next_posture):
            self.posture_target = rng.standard_normal(3) * np.array(s.posture_sigma)
            self.next_posture = self.time + rng.uniform(*s.posture_hold) / ctx.tempo
        if not ev.speaking and ev.silent_for > s.settle_s:
            self.posture_target *= float(np.exp(-dt / REST_DECAY_S))
        posture = springs_step(self.posture, self.posture_target, s.posture_omega * ctx.tempo * ev.rate_tempo, dt)
        theta = ctx.tempo / s.drift_tau
        self.drift += -theta * self.drift * dt + np.array(s.drift_sigma) * np.sqrt(2 * theta * dt) * rng.standard_normal(3)
        if ev.stressed:
            kick = s.nod_deg * (0.5 + ev.rise) * (0.6 + 0.8 * rng.random()) * (STRESS_BOOST if ev.accent else 1.0)
            self.nod.velocity -= kick * s.nod_omega * np.e              # chin dips, peak ~kick degrees
        nod = self.nod.step(0.0, s.nod_omega * ctx.tempo * ev.rate_tempo, dt)
        breathing = s.breathing_deg * np.sin(2 * np.pi * BREATHING_HZ * self.time)
        head = (posture * min(activity * ACTIVITY_GAIN, 1.0) + self.drift * activity) * ctx.energy
        head[1] += (nod + s.loud_pitch * ev.energy) * ctx.energy + breathing * min(ctx.motion_scale, 1.0)
        return head, breathing

    def _gaze(self, ev: SpeechEvents, ctx: DynamicsContext) -> bool:
        """Fixational saccades and glances away; True when a glance away starts."""
        s, rng = self.style, self.rng
        idle = (not ev.speaking and ev.silent_for > IDLE_GLANCE_AFTER_S and self.time >= self.look_away_until
                and rng.random() < s.idle_glance_per_s * ctx.look * self.dt)
        if (ev.starts_phrase and rng.random() < s.look_away_p * ctx.look) or idle:
            self.look_away_until = self.time + rng.uniform(*s.look_away_s)
            side = rng.choice([-1, 1]) * rng.uniform(*s.look_away_deg)
            self.fixation = np.array([side, rng.uniform(*LOOK_AWAY_PITCH_DEG)]) * ctx.look
            return True
        if self.time >= self.next_saccade and self.time >= self.look_away_until:
            self.fixation = np.clip(rng.normal(0, s.saccade_deg, 2), -SACCADE_LIMIT_DEG, SACCADE_LIMIT_DEG) * min(ctx.motion_scale, 1.0)
            self.next_saccade = self.time + rng.uniform(*s.saccade_every)
        return False
