"""The learned audio->mouth model: a small numpy MLP over a window of normalised
spectral frames, streamable with a fixed 80 ms look-ahead.

Per 10 ms feature frame (talkface.analysis.audio's log-mel and rms_db, unchanged):

1. `FrameNormaliser` (causal, per stream): loudness relative to a running speech peak
   and a running noise floor, a soft speech-activity weight, and the spectral shape
   (log-mel minus its mean over bands, minus a running mean of the shape over speech
   frames: channel/speaker normalisation), compressed to 20 cepstral coefficients, and
   whether the frame is voiced. Nothing in it depends on the language.
2. A window of those frame vectors (24 frames back to 6 ahead) feeds an MLP (tanh hidden
   layers, 96 and 48 units; the shipped model averages two trained from different seeds)
   that predicts the mouth measured on real faces: inner-lip opening and mouth-width
   change (inter-ocular units, the quantities `landmarks.mouth_opening` / `mouth_width`
   measure), plus lip rounding and pressing learned from synthetic speech with known
   phonemes.
3. A linear branch trained on real speakers only (ridge regression from raw log-mel and
   its deltas, -80..+40 ms; the real videos and re-voiced copies of them) is blended into
   the opening where there is sound and the MLP hears speech (the MLP knows that noise,
   hum and breaths are not).
4. The outputs are smoothed over +-2 frames (real lips move smoothly): 6 + 2 = 8 frames
   (80 ms) of look-ahead in all.
5. A quantile map takes the predicted opening to the real videos' distribution (real lips
   shut fully and open wide; a regression hedges), then a calibration measured by
   rendering (tracking a sweep of rig coefficients through the renderer) maps opening and
   width to the rig's jaw_open / lip_spread, and a narrower mouth than at rest to lip_round,
   added to the rounding output taken through its own quantile map (synthetic labels).

Weights live in talkface/weights/lipsync.npz (trained by `talkface train lipsync`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from talkface.analysis.audio import N_MELS, AudioFeatures

WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "lipsync.npz"
N_CEPS = 20
LOOKAHEAD = 8  # feature frames: 80 ms
OFFSETS = (-24, -18, -14, -11, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6)  # MLP input frames
SMOOTH = (1.0, 2.0, 3.0, 2.0, 1.0)  # symmetric smoothing of the MLP's outputs
HISTORY = -min(OFFSETS)
FRAME_DIM = N_CEPS + 4  # cepstra, level re peak, level re floor, voiced, speech weight (last)
SILENCE_DB = -100.0


def _dct_matrix(n_in: int = N_MELS, n_out: int = N_CEPS) -> np.ndarray:
    k = np.arange(1, n_out + 1)[:, None]  # c0 (level) is carried separately
    n = np.arange(n_in)[None, :]
    return (np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))).astype(np.float32)


_DCT = _dct_matrix()


class FrameNormaliser:
    """Causal per-stream normalisation of feature frames (see the module docstring)."""

    def __init__(self) -> None:
        self.floor = -60.0
        self.peak = -25.0
        self.cmn = np.zeros(N_MELS, np.float64)
        self.cmn_weight = 0.0

    def __call__(self, features: AudioFeatures) -> np.ndarray:
        out = np.empty((len(features), FRAME_DIM), np.float32)
        mel = features.log_mel.astype(np.float64)
        shape_all = mel - mel.mean(axis=1, keepdims=True)
        voiced = (features.pitch_hz > 0).astype(np.float32)
        for i, db in enumerate(np.maximum(features.rms_db.astype(np.float64), SILENCE_DB)):
            # noise floor: falls fast, rises slowly; speech peak: rises fast, falls slowly
            self.floor += (db - self.floor) * (0.25 if db < self.floor else 0.006)
            self.floor = max(self.floor, -90.0)
            self.peak += (db - self.peak) * (0.25 if db > self.peak else 0.002)
            self.peak = max(self.peak, self.floor + 15.0)
            w = min(1.0, max(0.0, (db - self.floor - 6.0) / 12.0))
            shape = shape_all[i]
            if w > 0:
                a = 0.01 * w
                self.cmn_weight += (1.0 - self.cmn_weight) * a
                self.cmn += (shape - self.cmn) * a
            # until enough speech has been heard, subtract only what has been seen
            centred = shape - self.cmn * self.cmn_weight / max(self.cmn_weight, 0.3) if self.cmn_weight > 0 else shape
            out[i, :N_CEPS] = _DCT @ centred / 4.0
            out[i, N_CEPS] = max(-3.0, (db - self.peak) / 20.0)
            out[i, N_CEPS + 1] = min(3.0, (db - self.floor) / 20.0)
            out[i, N_CEPS + 2] = voiced[i]
            out[i, N_CEPS + 3] = w
        return out


def silence_frame() -> np.ndarray:
    """The buffered vector of digital silence (context padding): normalised frame + raw log-mel."""
    from talkface.analysis.audio import compute_frames

    feats = compute_frames(np.zeros((1, 400), np.float32))
    return np.concatenate([FrameNormaliser()(feats)[0], feats.log_mel[0]]).astype(np.float32)


def buffer_rows(features: AudioFeatures, norm: "FrameNormaliser") -> np.ndarray:
    """What a stream buffers per feature frame: the normalised frame, then the raw log-mel
    (the linear branch's input)."""
    return np.concatenate([norm(features), features.log_mel.astype(np.float32)], axis=1)


RIDGE_OFFSETS = (-8, -4, 0, 2, 4)  # the linear branch's frames (each a 3-frame mean, with deltas)
RIDGE_REACH = 2                    # frames beyond the offsets that the mean and delta read
GATE_DB = (1.0, 4.0)               # the linear branch fades in between these levels over the noise floor
GATE_OPEN = (0.02, 0.06)           # ... and between these MLP openings (IOD)
PRESS_GAIN = 2.0                   # press output -> rig lip_press (see Calibration)
ROUND_WHEN_SHUT = 0.75             # most rig lip_round that pressed lips stay shut at (built-in portrait: 0.8 parts them)


def ridge_inputs(buf: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Linear-branch inputs at buffer rows `rows`: log-mel and its delta, each averaged over
    3 frames, at RIDGE_OFFSETS (400 values)."""
    mel = buf[:, FRAME_DIM:]
    p = rows[:, None] + np.array(RIDGE_OFFSETS)[None, :]
    m = (mel[p - 1] + mel[p] + mel[p + 1]) / 3.0
    d = (mel[p + 2] + mel[p + 1] - mel[p - 1] - mel[p - 2]) / 3.0
    return np.concatenate([m, d], axis=2).reshape(len(rows), -1)


def stack_context(frames: np.ndarray, pad: np.ndarray, start: int, stop: int, offsets=OFFSETS) -> np.ndarray:
    """Model inputs for rows start..stop-1 of `frames` (which must hold row stop-1+max(offsets);
    rows before 0 are `pad`)."""
    history = -min(offsets)
    idx = np.arange(start, stop)[:, None] + np.array(offsets)[None, :]
    padded = np.concatenate([np.repeat(pad[None], history, axis=0), frames])
    return padded[idx + history].reshape(stop - start, -1)


class MLP:
    """One MLP, or an ensemble of same-shaped MLPs whose weights are stacked on a leading
    axis (W{i}: (members, in, out)) and whose outputs are averaged: members trained from
    different seeds err differently, and with an hour of real video the variance between
    seeds is as large as the differences between designs."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.mean = params["x_mean"].astype(np.float32)
        self.scale = (1.0 / params["x_std"]).astype(np.float32)
        n = int(params["n_layers"])
        self.layers = [(params[f"W{i}"].astype(np.float32), params[f"b{i}"].astype(np.float32)) for i in range(n)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        h = (x - self.mean) * self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + (b[:, None, :] if w.ndim == 3 else b)   # (members, n, out) once stacked
            if i < len(self.layers) - 1:
                h = np.tanh(h)
        return h.mean(axis=0) if h.ndim == 3 else h


def stack_members(members: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One parameter set holding an ensemble of MLPs trained on the same inputs (same
    normalisation, same shapes): their weights stacked for `MLP`."""
    if len(members) == 1:
        return dict(members[0])
    out = dict(members[0])
    for i in range(int(out["n_layers"])):
        for k in (f"W{i}", f"b{i}"):
            out[k] = np.stack([m[k] for m in members])
    out["n_members"] = np.array(len(members))
    return out


class Calibration:
    """Measured-on-faces (opening, width change in IOD) -> rig coefficients, from a render sweep."""

    def __init__(self, params: dict[str, np.ndarray], shut: tuple[float, float] | None = None) -> None:
        self.jaw = params["cal_jaw"]          # rig jaw_open values swept
        self.jaw_open = params["cal_jaw_open"]  # tracked opening (IOD) they render to, minus closed
        self.spread = params["cal_spread"]
        self.spread_width = params["cal_spread_width"]  # tracked width change (IOD)
        self.round = params["cal_round"]
        self.round_width = params["cal_round_width"]
        self.gain = float(params["cal_gain"]) if "cal_gain" in params else 1.0
        # bilabial closure (optional): where the press output (learned from phonemes: 1 on p, b, m)
        # rises from shut[0] to shut[1], the jaw closes fully whatever the opening says
        self.shut = shut

        # predicted -> real opening by quantiles (held-out predictions vs the real videos): the
        # model hedges, so its closures are shallow and its peaks low; real lips shut and open wide
        self.q_pred = params["q_pred"] if "q_pred" in params else None
        self.q_real = params["q_real"] if "q_real" in params else None
        # predicted -> labelled rounding by quantiles (synthetic speech, the only data that knows
        # it): the rounding head hedges too (0.13 on /i e/, 0.22 on /u o w/), so without the map
        # every mouth was a little rounded and no rounded vowel visibly so
        self.q_round = (params["q_round_pred"], params["q_round_real"]) if "q_round_pred" in params else None

    def __call__(self, y: np.ndarray) -> np.ndarray:
        opening = y[:, 0]
        if self.q_pred is not None:
            opening = np.interp(opening, self.q_pred, self.q_real)
        opening = np.maximum(opening, 0.0) * self.gain
        jaw = np.interp(opening, self.jaw_open, self.jaw)
        shut = np.zeros(len(y)) if self.shut is None else \
            np.clip((y[:, 3] - self.shut[0]) / (self.shut[1] - self.shut[0]), 0.0, 1.0)
        jaw = jaw * (1.0 - shut)
        dw = y[:, 1] * self.gain
        # a wider mouth than at rest: spread the lips; narrower: round them (below)
        spread = np.interp(np.maximum(dw, 0.0), self.spread_width, self.spread)
        rnd = y[:, 2] if self.q_round is None else np.interp(y[:, 2], *self.q_round)
        # a narrower mouth than at rest (width learned from real faces) renders as the rounding
        # the render sweep measured for that narrowing; it used to be dropped
        rnd = np.clip(rnd + np.interp(np.maximum(-dw, 0.0), -self.round_width, self.round), 0.0, 1.0)
        # strong rounding parts the lips (the "oo" hole), pressed or not: where a closure shuts the
        # jaw, rounding stays below that, so a bilabial still closes
        rnd = np.minimum(rnd, 1.0 - shut * (1.0 - ROUND_WHEN_SHUT))
        # the press output is small (about 0.15-0.2 on m, b, p): scaled up, it presses the lips
        # together where the jaw is nearly closed
        press = np.clip(y[:, 3] * PRESS_GAIN, 0.0, 1.0) * np.clip(1.0 - 4.0 * jaw, 0.0, 1.0)
        return np.stack([jaw, spread, rnd, press], axis=1).astype(np.float32)


class LearnedMouth:
    """MouthModel protocol: `stream()`, `lookahead_frames`.

    The MLP sees frames up to max(offsets) ahead; its outputs are then smoothed with a
    short symmetric kernel (real lips move smoothly), which needs len(kernel)//2 more:
    lookahead_frames is the sum (at most 8 = 80 ms)."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = params
        self.mlp = MLP(params)
        self.calibration = Calibration(params) if "cal_jaw" in params else None
        self.offsets = tuple(int(v) for v in params["offsets"]) if "offsets" in params else OFFSETS
        kernel = np.asarray(params["smooth"], np.float64) if "smooth" in params else np.ones(1)
        self.kernel = (kernel / kernel.sum()).astype(np.float32)
        self.half = len(self.kernel) // 2
        self.ahead = max(self.offsets)
        self.history = -min(self.offsets)
        self.lookahead_frames = self.ahead + self.half
        if self.lookahead_frames > LOOKAHEAD:
            raise ValueError(f"look-ahead {self.lookahead_frames} frames is over the {LOOKAHEAD} allowed")
        self.pad = silence_frame()
        self.ridge = None
        if "r_w" in params:   # linear branch trained on real speakers, blended into the opening
            self.ridge = (params["r_mean"].astype(np.float32), (1.0 / params["r_std"]).astype(np.float32),
                          params["r_w"].astype(np.float32), float(params["r_gain"]), float(params["r_center"]),
                          float(params["r_alpha"]))
            self.history = max(self.history, -min(RIDGE_OFFSETS) + RIDGE_REACH)
            if max(RIDGE_OFFSETS) + RIDGE_REACH > self.ahead:
                raise ValueError("the linear branch reads beyond the MLP's look-ahead")

    def rows(self, buf: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Unsmoothed outputs for buffer rows `local` (buffer = buffer_rows, padded as needed)."""
        idx = local[:, None] + np.array(self.offsets)[None, :]
        y = self.mlp(buf[idx, :FRAME_DIM].reshape(len(local), -1))
        if self.ridge is not None:
            mean, inv_std, w, gain, center, alpha = self.ridge
            x = np.clip((ridge_inputs(buf, local) - mean) * inv_std, -5.0, 5.0)
            lin = center + gain * (x @ w)
            # only where there is sound (1..4 dB over the noise floor and up): silence keeps the MLP's
            above_floor = 20.0 * buf[local, N_CEPS + 1]
            gate = np.clip((above_floor - GATE_DB[0]) / (GATE_DB[1] - GATE_DB[0]), 0.0, 1.0)
            # and only where the MLP hears speech (it learned that noise, hum and breaths are not)
            gate *= np.clip((y[:, 0] - GATE_OPEN[0]) / (GATE_OPEN[1] - GATE_OPEN[0]), 0.0, 1.0)
            y[:, 0] += alpha * gate * (lin - y[:, 0])
        return y

    def to_rig(self, y: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            return np.stack([np.clip(y[:, 0] / 0.37, 0, 1.2), np.clip(y[:, 1] / 0.2, 0, 1),
                             np.clip(y[:, 2], 0, 1), np.clip(y[:, 3], 0, 1)], axis=1).astype(np.float32)
        return self.calibration(y)

    def smooth(self, y: np.ndarray) -> np.ndarray:
        """'valid' smoothing: rows half..len-half-1 of y."""
        n = len(y) - 2 * self.half
        out = np.zeros((max(n, 0), y.shape[1]), np.float32)
        for k, c in enumerate(self.kernel):
            out += c * y[k:k + n]
        return out

    def stream(self) -> "LearnedStream":
        return LearnedStream(self)

    def measured_track(self, features: AudioFeatures) -> np.ndarray:
        """(T, 4) opening / width change / round / press in face units for a whole clip (batch)."""
        n = len(features)
        if n == 0:
            return np.zeros((0, 4), np.float32)
        buf = np.concatenate([np.repeat(self.pad[None], self.history, axis=0), buffer_rows(features, FrameNormaliser()),
                              np.repeat(self.pad[None], self.lookahead_frames, axis=0)])
        y = self.rows(buf, np.arange(n + self.half) + self.history)
        y = np.concatenate([np.repeat(y[:1], self.half, axis=0), y])
        return self.smooth(y)


class LearnedStream:
    def __init__(self, model: LearnedMouth) -> None:
        self.model = model
        self.norm = FrameNormaliser()
        # normalised frames; frames[0] is absolute frame `offset` (negative: start-of-stream padding)
        self.frames = np.repeat(model.pad[None], model.history, axis=0)
        self.offset = -model.history
        self.ys = np.zeros((0, 4), np.float32)  # raw MLP rows; ys[0] is absolute row `y_offset`
        self.y_offset = -model.half
        self.y_done = 0        # MLP rows computed
        self.done = 0          # rows emitted
        self.total = None      # frames in the clip, known at flush

    def _emit(self) -> np.ndarray:
        m = self.model
        stop = self.offset + len(self.frames) - m.ahead
        if self.total is not None:
            stop = min(stop, self.total + m.half)
        if stop > self.y_done:
            y = m.rows(self.frames, np.arange(self.y_done, stop) - self.offset)
            if self.y_done == 0:   # the rows before the clip repeat its first row
                y = np.concatenate([np.repeat(y[:1], m.half, axis=0), y])
            self.ys = np.concatenate([self.ys, y])
            self.y_done = stop
        final = self.y_done - m.half if self.total is None else min(self.y_done - m.half, self.total)
        if final <= self.done:
            return np.zeros((0, 4), np.float32)
        lo = self.done - m.half - self.y_offset
        out = m.smooth(self.ys[lo:final + m.half - self.y_offset])
        self.done = final
        # keep what the next rows need
        drop_y = self.done - m.half - self.y_offset
        if drop_y > 0:
            self.ys = self.ys[drop_y:]
            self.y_offset += drop_y
        drop = self.y_done - m.history - self.offset
        if drop > 0:
            self.frames = self.frames[drop:]
            self.offset += drop
        return m.to_rig(out)

    def push(self, features: AudioFeatures) -> np.ndarray:
        if len(features):
            self.frames = np.concatenate([self.frames, buffer_rows(features, self.norm)])
        return self._emit()

    def flush(self) -> np.ndarray:
        self.total = self.offset + len(self.frames)
        self.frames = np.concatenate([self.frames, np.repeat(self.model.pad[None], self.model.lookahead_frames, axis=0)])
        return self._emit()


def load_params(path: str | Path = WEIGHTS) -> dict[str, np.ndarray] | None:
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
