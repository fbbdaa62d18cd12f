"""The learned audio->mouth model, second generation: a small causal temporal convolution
network (TCN) over the normalised feature frames, numpy-only at run time.

Per 10 ms feature frame: the stream normaliser's 24 values (talkface.lipsync.model's
FrameNormaliser: cepstra, levels, voicing, speech weight) and the raw log-mel (40), the
same buffer rows the first-generation model reads; standardised, then

    h = tanh(W_in x + b_in)
    h = h + tanh(conv_k(h))      for each dilation d_k (kernel 3, causal: frames t-2d, t-d, t)
    y = W_out h + b_out          (opening, width change, round, press[, closure logit])

The output at frame t describes the mouth at frame t - LOOKAHEAD (the network hears 80 ms
ahead). Weights with a closure head (a fifth output, linear or a small tanh MLP on the last
layer) give the probability that the lips touch (trained on bilabial closures and on shut
real mouths); where it passes CLOSURE_GATE
the opening goes to zero and the press output to one (`mouth_rows`). Where the press output
is high (p, b, m), the lips shut fully (SHUT_PRESS). Each layer keeps the last 2*d frames of its input as state (zeros at the start, as
in training), so a stream and a whole clip give the same rows, and a frame costs a fixed
few hundred thousand multiply-adds. The rows then go through the same quantile map and
rig calibration as the first model (talkface.lipsync.model.Calibration).

Weights: talkface/weights/lipsync.npz with kind = "tcn" (trained by `talkface train lipsync`).
"""
from __future__ import annotations

import numpy as np

from talkface.analysis.audio import AudioFeatures
from talkface.lipsync.model import Calibration, FrameNormaliser, buffer_rows, silence_frame

KIND = "tcn"
SHUT_PRESS = (0.3, 0.45)   # press output over which the lips shut fully (the bilabial closure)
CLOSURE_GATE = (0.25, 0.45)  # closure probability over which the opening fades to zero
CLOSURE_KEYS = ("closure_W1", "closure_b1", "closure_w2", "closure_b2")   # (C, H), (H,), (H, 1), (1,)


def mouth_rows(y: np.ndarray) -> np.ndarray:
    """(n, 4) opening / width change / round / press from the network's raw outputs: with a
    closure head, its gate shuts the opening and presses the lips."""
    if y.shape[1] < 5:
        return y
    p = 1.0 / (1.0 + np.exp(-np.clip(y[:, 4], -30.0, 30.0)))
    gate = np.clip((p - CLOSURE_GATE[0]) / (CLOSURE_GATE[1] - CLOSURE_GATE[0]), 0.0, 1.0)
    out = y[:, :4].copy()
    out[:, 0] *= 1.0 - gate
    out[:, 3] = np.maximum(out[:, 3], gate)
    return out


class TemporalConvMouth:
    """MouthModel protocol: `stream()`, `lookahead_frames`; `measured_track` for evaluation."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = params
        self.mean = params["x_mean"].astype(np.float32)
        self.inv_std = (1.0 / params["x_std"]).astype(np.float32)
        self.w_in, self.b_in = params["W_in"].astype(np.float32), params["b_in"].astype(np.float32)
        self.dilations = tuple(int(d) for d in params["dilations"])
        self.convs = [(params[f"conv{i}_W"].astype(np.float32), params[f"conv{i}_b"].astype(np.float32))
                      for i in range(len(self.dilations))]
        self.w_out, self.b_out = params["W_out"].astype(np.float32), params["b_out"].astype(np.float32)
        # the closure head: a small MLP on the last layer (trained by talkface.training.lipsync_heads)
        self.closure = tuple(params[k].astype(np.float32) for k in CLOSURE_KEYS) if CLOSURE_KEYS[0] in params else None
        self.lookahead_frames = int(params["lookahead"])
        self.calibration = Calibration(params, shut=SHUT_PRESS) if "cal_jaw" in params else None
        self.pad = silence_frame()

    def layers(self, x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Raw outputs (n, 4 or 5) for n new buffer rows, and the layers' new state."""
        h, new_state = self.hidden(x, state)
        y = h @ self.w_out + self.b_out
        if self.closure is not None:
            w1, b1, w2, b2 = self.closure
            y = np.concatenate([y[:, :4], np.tanh(h @ w1 + b1) @ w2 + b2], axis=1)
        return y, new_state

    def hidden(self, x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The last layer's features (n, channels), which the outputs read linearly, and the new state."""
        h = np.tanh(((x - self.mean) * self.inv_std) @ self.w_in + self.b_in)
        new_state = []
        for (w, b), d, past in zip(self.convs, self.dilations, state):
            full = np.concatenate([past, h])
            n = len(h)
            z = full[:n] @ w[0] + full[d:d + n] @ w[1] + full[2 * d:2 * d + n] @ w[2] + b
            new_state.append(full[-2 * d:])
            h = h + np.tanh(z)
        return h, new_state

    def initial_state(self) -> list[np.ndarray]:
        width = self.w_in.shape[1]
        return [np.zeros((2 * d, width), np.float32) for d in self.dilations]

    def to_rig(self, y: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            return np.stack([np.clip(y[:, 0] / 0.37, 0, 1.2), np.clip(y[:, 1] / 0.2, 0, 1),
                             np.clip(y[:, 2], 0, 1), np.clip(y[:, 3], 0, 1)], axis=1).astype(np.float32)
        return self.calibration(y)

    def stream(self) -> "TemporalConvStream":
        return TemporalConvStream(self)

    def raw_track(self, features: AudioFeatures) -> np.ndarray:
        """The network's raw outputs (T, 4 or 5) for a whole clip, aligned with its frames."""
        x = np.concatenate([buffer_rows(features, FrameNormaliser()),
                            np.repeat(self.pad[None], self.lookahead_frames, axis=0)])
        y, _ = self.layers(x, self.initial_state())
        return y[self.lookahead_frames:].astype(np.float32)

    def measured_track(self, features: AudioFeatures) -> np.ndarray:
        """(T, 4) opening / width change / round / press in face units for a whole clip."""
        if len(features) == 0:
            return np.zeros((0, 4), np.float32)
        return mouth_rows(self.raw_track(features))


class TemporalConvStream:
    def __init__(self, model: TemporalConvMouth) -> None:
        self.model = model
        self.norm = FrameNormaliser()
        self.state = model.initial_state()
        self.skip = model.lookahead_frames   # the first outputs describe frames before the clip

    def _rows(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, 4), np.float32)
        y, self.state = self.model.layers(x, self.state)
        drop = min(self.skip, len(y))
        self.skip -= drop
        return self.model.to_rig(mouth_rows(y[drop:])) if len(y) > drop else np.zeros((0, 4), np.float32)

    def push(self, features: AudioFeatures) -> np.ndarray:
        return self._rows(buffer_rows(features, self.norm)) if len(features) else np.zeros((0, 4), np.float32)

    def flush(self) -> np.ndarray:
        return self._rows(np.repeat(self.model.pad[None], self.model.lookahead_frames, axis=0))


def is_tcn(params: dict[str, np.ndarray]) -> bool:
    return "kind" in params and str(params["kind"]) == KIND
