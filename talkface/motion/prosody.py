"""From audio features to what the voice does: per-frame prosody (speaker-normalised
loudness, speaking, pitch) and the events motion reacts to (phrases starting and ending,
stressed syllables, the speaking rate). Causal: one update per video frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.motion.frames import Prosody

NOISE_FLOOR_INIT_DB = -45.0       # the floor starts at most here (the first frame may be speech)
FLOOR_FALL, FLOOR_RISE = 0.3, 0.002     # per frame: the floor follows quiet frames fast, loud ones slowly
PEAK_RISE, PEAK_FALL = 0.3, 0.003
MIN_RANGE_DB = 20.0               # the peak stays at least this far above the floor
LOUD_MARGIN_DB = 6.0              # loudness 0 up to this far above the floor
SPEAKING_LOUDNESS = 0.2
HANGOVER_S = 0.25                 # still "speaking" this long after the voice drops
VOICED_LOUDNESS = 0.1
PITCH_REF_HZ = 100.0
PITCH_ADAPT = 0.02                # per voiced frame

PHRASE_GAP_S = 0.3                # silence before speech that makes it a new phrase
ENERGY_TAU_S = 0.3
STRESS_RISE = 0.18                # loudness rise over 3 frames that marks a stressed syllable
STRESS_GAP_S = 0.16
RATE_TAU_S = 2.0
NORMAL_SYLLABLE_RATE = 3.0        # stressed syllables per second
RATE_TEMPO_RANGE = (0.75, 1.35)
ACCENT_PITCH_Z = 0.9


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
            self.noise_floor = min(rms_db, NOISE_FLOOR_INIT_DB)
            self.started = True
        self.noise_floor += (rms_db - self.noise_floor) * (FLOOR_FALL if rms_db < self.noise_floor else FLOOR_RISE)
        self.peak += (rms_db - self.peak) * (PEAK_RISE if rms_db > self.peak else PEAK_FALL)
        self.peak = max(self.peak, self.noise_floor + MIN_RANGE_DB)
        span = self.peak - self.noise_floor - LOUD_MARGIN_DB
        loud = float(np.clip((rms_db - self.noise_floor - LOUD_MARGIN_DB) / span, 0.0, 1.0))
        self.hangover = int(HANGOVER_S / dt) if loud > SPEAKING_LOUDNESS else max(0, self.hangover - 1)
        return Prosody(loudness=loud, speaking=self.hangover > 0, pitch_z=self._pitch_z(pitch_hz, loud))

    def _pitch_z(self, pitch_hz: float, loud: float) -> float:
        if pitch_hz <= 0 or loud <= VOICED_LOUDNESS:
            return 0.0
        semis = 12 * np.log2(pitch_hz / PITCH_REF_HZ)
        if self.pitch_mean == 0.0:
            self.pitch_mean = semis
        self.pitch_mean += (semis - self.pitch_mean) * PITCH_ADAPT
        self.pitch_var += ((semis - self.pitch_mean) ** 2 - self.pitch_var) * PITCH_ADAPT
        return float((semis - self.pitch_mean) / np.sqrt(max(self.pitch_var, 1.0)))


@dataclass(frozen=True)
class SpeechEvents:
    speaking: bool
    starts_phrase: bool
    ends_phrase: bool
    silent_for: float      # seconds since the voice stopped (0 while speaking)
    energy: float          # loudness smoothed over ENERGY_TAU_S
    rise: float            # loudness rise over the last frames
    stressed: bool         # a stressed syllable starts
    accent: bool           # ... on a pitch accent
    rate_tempo: float      # faster talk, quicker motion (1 = normal)


class SpeechTracker:
    """Phrases, stressed syllables and speaking rate from the per-frame prosody (causal)."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.time = 0.0
        self.prev_speaking = False
        self.silent_for = 10.0
        self.energy = 0.0
        self.loud_hist = [0.0, 0.0, 0.0]
        self.last_stress = -10.0
        self.syllable_rate = NORMAL_SYLLABLE_RATE

    def update(self, prosody: Prosody) -> SpeechEvents:
        dt, speaking = self.dt, prosody.speaking
        starts = speaking and not self.prev_speaking and self.silent_for > PHRASE_GAP_S
        ends = self.prev_speaking and not speaking
        self.prev_speaking = speaking
        self.silent_for = 0.0 if speaking else self.silent_for + dt
        self.energy += (prosody.loudness - self.energy) * min(1.0, dt / ENERGY_TAU_S)
        rise = prosody.loudness - min(self.loud_hist)
        self.loud_hist = self.loud_hist[1:] + [prosody.loudness]
        stressed = speaking and rise > STRESS_RISE and self.time - self.last_stress > STRESS_GAP_S
        if stressed:
            self.last_stress = self.time
        self.syllable_rate += ((1.0 / dt if stressed else 0.0) - self.syllable_rate) * min(1.0, dt / RATE_TAU_S)
        self.time += dt
        return SpeechEvents(speaking=speaking, starts_phrase=starts, ends_phrase=ends, silent_for=self.silent_for,
                            energy=self.energy, rise=rise, stressed=stressed,
                            accent=speaking and prosody.pitch_z > ACCENT_PITCH_Z,
                            rate_tempo=float(np.clip(self.syllable_rate / NORMAL_SYLLABLE_RATE, *RATE_TEMPO_RANGE)))
