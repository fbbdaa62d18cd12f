"""Lip sync: audio features -> mouth shape (jaw open, lip spread, rounding, press).

A model is streamable: `model.stream()` returns a stateful object that takes feature
frames as they arrive and gives mouth rows once its bounded look-ahead is available, so
the file pipeline and the live stream share it.

`EnergyMouth` is the first mapping: loudness opens the jaw, the spectrum's balance spreads
or rounds the lips. It is a documented baseline, replaced by the learned model
(talkface/lipsync_model.py, weights in talkface/weights/lipsync.npz, trained by
`talkface train lipsync`, measured by `talkface eval lipsync`) where its weights ship.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from talkface.analysis.audio import HOP, N_MELS, SAMPLE_RATE, AudioFeatures

MOUTH_COLUMNS = ("jaw_open", "lip_spread", "lip_round", "lip_press")
SHUT_JAW = 0.005  # rig jaw_open under which a mouth row has the lips shut (a bilabial's closure);
                  # chosen on the training sentences' bilabials (talkface.training.lipsync.CORPUS)


def frame_span(k: int, fps: float) -> tuple[int, int]:
    """Mouth rows [lo, hi) a video frame centred on feature frame k shows: the whole frame
    period (4 rows at 25 fps), at least 3, so that no row falls between two frames."""
    n = max(3, int(np.ceil(SAMPLE_RATE / (HOP * fps) - 1e-6)))
    lo = k - n // 2
    return lo, lo + n


def frame_row(rows: np.ndarray) -> np.ndarray:
    """One video frame's mouth from the rows of its span: their mean; but where the lips shut
    within the span, the shut row. A bilabial's closure (20-80 ms) is often shorter than a
    frame (40 ms at 25 fps), and a mean with its open neighbours leaves the lips apart."""
    i = int(np.argmin(rows[:, 0]))
    return rows[i].copy() if rows[i, 0] < SHUT_JAW else rows.mean(axis=0)


class MouthStream(Protocol):
    def push(self, features: AudioFeatures) -> np.ndarray:
        """Rows (n, 4) for the feature frames that became final."""

    def flush(self) -> np.ndarray:
        """Rows for the remaining frames at the end of the audio."""


class MouthModel(Protocol):
    lookahead_frames: int  # feature frames (10 ms) the model waits for

    def stream(self) -> MouthStream: ...


def predict_track(model: MouthModel, features: AudioFeatures) -> np.ndarray:
    """Mouth rows for a whole clip, one per feature frame."""
    s = model.stream()
    rows = [s.push(features), s.flush()]
    return np.concatenate([r for r in rows if len(r)]) if any(len(r) for r in rows) else np.zeros((0, 4), np.float32)


@dataclass(frozen=True)
class EnergyMouth:
    lookahead_frames: int = 3

    def stream(self) -> "_EnergyStream":
        return _EnergyStream(self.lookahead_frames)


_LOW = slice(2, 14)      # ~100-900 Hz: first formant region, strong for open and round vowels
_HIGH = slice(24, N_MELS)  # ~2-7.6 kHz: second formants of spread vowels and fricatives


class _EnergyStream:
    def __init__(self, lookahead: int) -> None:
        self.lookahead = lookahead
        self.pending: list[np.ndarray] = []
        self.floor = None
        self.peak = -20.0
        self.open_s = 0.0

    def _row(self, mel: np.ndarray, rms_db: float) -> np.ndarray:
        if self.floor is None:
            self.floor = min(rms_db, -50.0)
        self.floor += (rms_db - self.floor) * (0.2 if rms_db < self.floor else 0.001)
        self.peak += (rms_db - self.peak) * (0.2 if rms_db > self.peak else 0.002)
        span = max(self.peak - self.floor - 8.0, 12.0)
        loud = np.clip((rms_db - self.floor - 8.0) / span, 0.0, 1.0)
        tilt = float(np.mean(mel[_HIGH]) - np.mean(mel[_LOW]))  # > 0: bright (ee, s), < 0: dark (oo, aa)
        target = loud ** 0.8
        self.open_s += (target - self.open_s) * (0.6 if target > self.open_s else 0.35)
        spread = np.clip((tilt + 4.0) / 4.0, 0.0, 1.0) * loud
        rnd = np.clip((-tilt - 6.0) / 4.0, 0.0, 1.0) * loud
        press = 0.3 * (1.0 - min(1.0, loud * 3))
        return np.array([0.85 * self.open_s, 0.6 * spread, 0.7 * rnd, press], np.float32)

    def push(self, features: AudioFeatures) -> np.ndarray:
        rows = [self._row(features.log_mel[i], float(features.rms_db[i])) for i in range(len(features))]
        self.pending.extend(rows)
        # this baseline needs no look-ahead, but honours the declared delay so timing is uniform
        ready = max(0, len(self.pending) - self.lookahead)
        out, self.pending = self.pending[:ready], self.pending[ready:]
        return np.array(out, np.float32).reshape(-1, 4)

    def flush(self) -> np.ndarray:
        out, self.pending = self.pending, []
        return np.array(out, np.float32).reshape(-1, 4)


def default_model() -> MouthModel:
    """The best shipped model: the trained one when its weights are in the package."""
    try:
        from talkface.lipsync.shipped import load_trained
    except ImportError:
        return EnergyMouth()
    model = load_trained()
    return model if model is not None else EnergyMouth()
