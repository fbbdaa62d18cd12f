"""Training the temporal convolution network (talkface.lipsync.tcn) with torch, on CPU,
and exporting its weights to numpy: torch is needed here only, never at run time
(`pip install torch==2.13.0`, the CPU build).

Batches are 4 s windows drawn from the real clips, or, with probability
`TcnSetup.synthetic_share`, from the synthetic clips (espeak-ng with known phonemes: they
alone teach rounding, pressing and the bilabials' full closure). The loss is the masked
MSE of the four mouth outputs, each in its typical unit; real frames in a clip's most-closed
quarter weigh `closed_weight` times more (closures are what viewers read as sync). A fifth
output, the closure logit (talkface.lipsync.tcn), learns "the lips touch" with a binary
cross-entropy: bilabial closures of the synthetic clips and the frames where a real mouth is
shut; closed frames weigh `closure_weight` times more (they are short and rare).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.lipsync.tcn import KIND

Y_SCALE = (0.1, 0.05, 0.25, 0.5)  # opening, width change (IOD), round, press: count alike (round
                                  # doubled: it is learned from the synthetic clips only)
N_OUT = 5                         # the four mouth values and the closure logit
WINDOW = 400                      # frames per training window (4 s)
BATCH = 16


@dataclass(frozen=True)
class TcnSetup:
    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)
    lookahead: int = 8            # frames (80 ms)
    steps: int = 1500
    lr: float = 3e-3
    synthetic_share: float = 0.3  # share of batches drawn from the synthetic clips
    closed_weight: float = 2.0
    input_noise: float = 0.1      # standard deviations, on the standardised inputs
    closure_weight: float = 4.0   # weight of closed frames in the closure loss (1 for open ones)
    closure_loss: float = 1.0     # the closure cross-entropy against the mouth MSE
    seed: int = 0


@dataclass(frozen=True)
class Sequence:
    x: np.ndarray   # (T, D) buffer rows (talkface.lipsync.model.buffer_rows)
    y: np.ndarray   # (T, 5) targets: opening, width change, round, press, lips closed (0/1); NaN where unknown
    w: np.ndarray   # (T,) frame weights


def sequence(x: np.ndarray, y: np.ndarray, closed_weight: float = 1.0) -> Sequence:
    op = y[:, 0]
    fin = np.isfinite(op)
    closed = fin & (op <= np.percentile(op[fin], 25)) if fin.any() else np.zeros(len(op), bool)
    return Sequence(x.astype(np.float32), y.astype(np.float32), np.where(closed, closed_weight, 1.0).astype(np.float32))


def _network(d_in: int, setup: TcnSetup):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(d_in, setup.channels)
            self.convs = nn.ModuleList([nn.Conv1d(setup.channels, setup.channels, 3, dilation=d) for d in setup.dilations])
            self.out = nn.Linear(setup.channels, N_OUT)

        def forward(self, x):   # (B, T, D) -> (B, T, N_OUT), causal
            h = torch.tanh(self.inp(x)).transpose(1, 2)
            for conv in self.convs:
                h = h + torch.tanh(conv(nn.functional.pad(h, (2 * conv.dilation[0], 0))))
            return self.out(h.transpose(1, 2))

    return Net()


def _batch(items: list[Sequence], mean, std, rng: np.random.Generator):
    xs, ys, ws = [], [], []
    for _ in range(BATCH):
        it = items[rng.integers(len(items))]
        a = int(rng.integers(0, max(1, len(it.x) - WINDOW)))
        x, y, w = (it.x[a:a + WINDOW] - mean) / std, it.y[a:a + WINDOW], it.w[a:a + WINDOW]
        pad = WINDOW - len(x)
        if pad:
            x = np.pad(x, ((0, pad), (0, 0)))
            y = np.pad(y, ((0, pad), (0, 0)), constant_values=np.nan)
            w = np.pad(w, (0, pad))
        xs.append(x)
        ys.append(y)
        ws.append(w)
    return np.stack(xs), np.stack(ys), np.stack(ws)


def fit_tcn(real: list[Sequence], synthetic: list[Sequence], setup: TcnSetup) -> dict[str, np.ndarray]:
    """Train one network; its weights as numpy arrays (talkface.lipsync.tcn's layout)."""
    import torch

    torch.manual_seed(setup.seed)
    torch.set_num_threads(1)   # small batches: a second thread gains little, and on a busy machine it spins
    rng = np.random.default_rng(setup.seed)
    allx = np.concatenate([s.x for s in real + synthetic])
    mean, std = allx.mean(axis=0), allx.std(axis=0) + 1e-3
    net = _network(allx.shape[1], setup)
    opt = torch.optim.Adam(net.parameters(), setup.lr / 1.5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, setup.lr, total_steps=setup.steps)
    la = setup.lookahead
    for _ in range(setup.steps):
        pool = synthetic if synthetic and (not real or rng.random() < setup.synthetic_share) else real
        x, y, w = (torch.from_numpy(a) for a in _batch(pool, mean, std, rng))
        pred = net(x + setup.input_noise * torch.randn_like(x))[:, la:]   # output t describes frame t - la
        loss = _loss(pred, y[:, :y.shape[1] - la], w[:, :w.shape[1] - la], setup)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return export(net, mean, std, setup)


def _loss(pred, y, w, setup: TcnSetup):
    """Masked, weighted MSE of the mouth values plus the closure's weighted cross-entropy."""
    import torch

    mouth, closed = y[..., :4], y[..., 4]
    known = torch.isfinite(mouth)
    err = torch.where(known, (pred[..., :4] - torch.nan_to_num(mouth)) / torch.tensor(Y_SCALE), torch.zeros_like(mouth))
    loss = (err ** 2 * w[..., None]).sum() / known.sum().clamp(min=1)
    seen = torch.isfinite(closed)
    target = torch.nan_to_num(closed)
    weight = torch.where(seen, 1.0 + (setup.closure_weight - 1.0) * target, torch.zeros_like(target))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(pred[..., 4], target, weight=weight, reduction="sum")
    return loss + setup.closure_loss * bce / seen.sum().clamp(min=1)


def export(net, mean: np.ndarray, std: np.ndarray, setup: TcnSetup) -> dict[str, np.ndarray]:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    out = {"kind": np.array(KIND), "x_mean": mean.astype(np.float32), "x_std": std.astype(np.float32),
           "W_in": sd["inp.weight"].T.copy(), "b_in": sd["inp.bias"], "W_out": sd["out.weight"].T.copy(),
           "b_out": sd["out.bias"], "dilations": np.array(setup.dilations), "lookahead": np.array(setup.lookahead)}
    for i in range(len(setup.dilations)):
        # torch Conv1d weight (out, in, k): tap k reads frame t - (2 - k) * d
        out[f"conv{i}_W"] = np.transpose(sd[f"convs.{i}.weight"], (2, 1, 0)).copy()
        out[f"conv{i}_b"] = sd[f"convs.{i}.bias"]
    return out
