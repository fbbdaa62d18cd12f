"""`talkface train lipsync --heads-only`: fit the network's closure head and refit its
rounding head on its frozen last-layer features, per fold of the cross-validation and for
the final model.

The outputs of the temporal convolution network (talkface.lipsync.tcn) read its last layer,
so a head can be fitted without retraining the network (which takes hours of CPU on a
shared machine):

* the closure head ("the lips touch"): a small tanh MLP (CLOSURE_HIDDEN units) with a
  weighted binary cross-entropy, on the bilabial closures of the synthetic clips and the shut
  real mouths (talkface.data.lipsync_targets.CLOSED_IOD); synthetic closures weigh
  CLOSED_WEIGHT times more (they are short and rare) and the synthetic set SYNTHETIC_WEIGHT
  times the real one in all (only it knows where the bilabials are). A linear head separated bilabials from
  other phones less well (68 % against 86 % of bilabials over p = 0.5 in the held-out
  sentences of `eval bilabial`, at a like share of other phones);
* the rounding head: ridge regression on the synthetic clips' rounding (the only ones
  that know it), which the end-to-end training had let fade; then its quantile map
  (`rounding_map`, numpy only, also refitted alone by `--round-map-only`): the head hedges,
  so its output goes through the labels' quantiles before the rig.

Each fold's heads see only that fold's training speakers, so the held-out scores stay
disjoint by speaker. The quantile map is then refitted on the new held-out openings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.lipsync.tcn import TemporalConvMouth
from talkface.training.lipsync_tcn import Sequence

CLOSED_WEIGHT = 8.0     # synthetic bilabial closures against other synthetic frames, in the closure loss
SYNTHETIC_WEIGHT = 2.0  # the synthetic set against the real one, in all (real closed frames weigh as open
                        # ones: a quarter of real frames are shut, and an up-weighted head shut 35 % of them)
CLOSURE_HIDDEN = 32     # units of the closure MLP
CLOSURE_EPOCHS = 6
CLOSURE_BATCH = 1024
CLOSURE_LR = 3e-3
ROUND_L2 = 1.0          # ridge penalty of the rounding head (per 1000 frames)
MAX_FRAMES = 60_000     # frames per set the heads are fitted on (evenly subsampled)
ROUND_QUANTILES = np.linspace(0.0, 100.0, 21)   # percentiles of the rounding map


@dataclass(frozen=True)
class Design:
    h: np.ndarray        # (N, C) last-layer features
    y: np.ndarray        # (N, 5) targets (NaN where unknown)
    w: np.ndarray        # (N,) the set's weight per frame


def hidden(model: TemporalConvMouth, x: np.ndarray) -> np.ndarray:
    """Last-layer features of a sequence of buffer rows, aligned with its frames."""
    pad = np.repeat(model.pad[None], model.lookahead_frames, axis=0)
    h, _ = model.hidden(np.concatenate([x, pad]), model.initial_state())
    return h[model.lookahead_frames:]


def design(model: TemporalConvMouth, seqs: list[Sequence], weight: float, closed_weight: float) -> Design | None:
    """Features and targets of a set of sequences, which weighs `weight` in all; its closed
    frames weigh `closed_weight` times its others."""
    if not seqs:
        return None
    h = np.concatenate([hidden(model, s.x) for s in seqs])
    y = np.concatenate([s.y for s in seqs])
    keep = np.unique(np.linspace(0, len(h) - 1, min(len(h), MAX_FRAMES)).astype(int))
    w = 1.0 + (closed_weight - 1.0) * np.nan_to_num(y[keep, 4])
    return Design(h[keep], y[keep], w * weight / w.sum())


def _closure_mlp(h: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Weighted cross-entropy fit of the closure MLP (torch, CPU); its weights with the input
    standardisation folded into the first layer."""
    import torch

    torch.manual_seed(seed)
    mu, sd = h.mean(axis=0), h.std(axis=0) + 1e-3
    x, t, wt = (torch.from_numpy(a.astype(np.float32)) for a in ((h - mu) / sd, y, w / w.mean()))
    net = torch.nn.Sequential(torch.nn.Linear(h.shape[1], CLOSURE_HIDDEN), torch.nn.Tanh(), torch.nn.Linear(CLOSURE_HIDDEN, 1))
    opt = torch.optim.Adam(net.parameters(), CLOSURE_LR, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(CLOSURE_EPOCHS):
        for b in torch.randperm(len(x), generator=gen).split(CLOSURE_BATCH):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[b])[:, 0], t[b], weight=wt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    w1, b1 = net[0].weight.detach().numpy().T, net[0].bias.detach().numpy()
    w2, b2 = net[2].weight.detach().numpy().T, net[2].bias.detach().numpy()
    return {"closure_W1": (w1 / sd[:, None]).astype(np.float32), "closure_b1": (b1 - (mu / sd) @ w1).astype(np.float32),
            "closure_w2": w2.astype(np.float32), "closure_b2": b2.astype(np.float32)}


def _ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    reg = np.full(x.shape[1], l2)
    reg[-1] = 0.0
    return np.linalg.solve(x.T @ x + np.diag(reg), x.T @ y)


def fit_heads(params: dict[str, np.ndarray], synthetic: list[Sequence], real: list[Sequence],
              seed: int = 0) -> dict[str, np.ndarray]:
    """`params` with the closure head fitted and the rounding head refitted (see the module docstring)."""
    model = TemporalConvMouth(params)
    parts = [d for d in (design(model, synthetic, SYNTHETIC_WEIGHT, CLOSED_WEIGHT), design(model, real, 1.0, 1.0))
             if d is not None]
    h = np.concatenate([d.h for d in parts])
    y = np.concatenate([d.y for d in parts])
    w = np.concatenate([d.w for d in parts])
    known = np.isfinite(y[:, 4])
    closure = _closure_mlp(h[known], y[known, 4], w[known], seed)
    rnd = np.isfinite(y[:, 2])
    x = np.concatenate([h[rnd], np.ones((rnd.sum(), 1))], axis=1)
    rounding = _ridge(x, y[rnd, 2], ROUND_L2 * rnd.sum() / 1000.0)
    w_out, b_out = params["W_out"][:, :4].copy(), params["b_out"][:4].copy()
    w_out[:, 2], b_out[2] = rounding[:-1], rounding[-1]
    return {**params, "W_out": w_out.astype(np.float32), "b_out": b_out.astype(np.float32), **closure}


def rounding_map(params: dict[str, np.ndarray], synthetic: list[Sequence]) -> dict[str, np.ndarray]:
    """Quantiles of the rounding head's output over the synthetic clips' labelled frames
    against those of their rounding labels (talkface.lipsync.model.Calibration applies it)."""
    model = TemporalConvMouth(params)
    pred, label = [], []
    for s in synthetic:
        known = np.isfinite(s.y[:, 2])
        pred.append((hidden(model, s.x) @ model.w_out[:, 2] + model.b_out[2])[known])
        label.append(s.y[known, 2])
    qp = np.percentile(np.concatenate(pred), ROUND_QUANTILES)
    qp = np.maximum.accumulate(qp + np.arange(len(qp)) * 1e-6)   # strictly rising, for np.interp
    return {"q_round_pred": qp.astype(np.float32),
            "q_round_real": np.percentile(np.concatenate(label), ROUND_QUANTILES).astype(np.float32)}


def load_folds(path) -> dict[str, dict[str, np.ndarray]]:
    """held-out clip names ("a|b|c") -> that fold's parameters, from a *_folds.npz."""
    with np.load(path) as z:
        return {str(z[f"f{i}_held_out"]): {k[len(f"f{i}_"):]: z[k] for k in z.files
                                           if k.startswith(f"f{i}_") and k != f"f{i}_held_out"}
                for i in range(int(z["n_folds"]))}


def refit_all(cache_dir: str, params: dict, folds: dict, n_synth: int, seed: int, log=print):
    """Heads refitted per fold (scored on its held-out clips) and on everything; the new
    quantile map. Returns (final params, fold params, held-out rows)."""
    from talkface.data.cache import PreparedCache
    from talkface.data.lipsync_targets import real_clips
    from talkface.training.lipsync import _rows, quantile_map, score_held_out, synthetic_set
    from talkface.training.lipsync_tcn import sequence

    log(f"synthesising {n_synth} clips (seed {seed}: the ones the network was trained on) ...")
    synth = [sequence(_rows(f), y) for f, y in synthetic_set(n_synth, seed, log)]
    real = real_clips(PreparedCache(cache_dir), log)
    seqs = {c.name: sequence(_rows(c.features), c.targets) for c in real}
    new_folds, rows, held_preds = {}, [], []
    for i, (names, fold_params) in enumerate(folds.items()):
        held_names = set(names.split("|"))
        held = {c.speaker for c in real if c.name in held_names}
        log(f"fold {i + 1}: {len(held)} speakers held out")
        fitted = fit_heads(fold_params, synth, [seqs[c.name] for c in real if c.speaker not in held], seed + i + 1)
        score_held_out(TemporalConvMouth(fitted), [c for c in real if c.speaker in held], rows, held_preds, log)
        new_folds[names] = fitted
    final = fit_heads(params, synth, list(seqs.values()), seed)
    final.update(quantile_map(held_preds, log))
    final.update(rounding_map(final, synth))
    return final, new_folds, rows
