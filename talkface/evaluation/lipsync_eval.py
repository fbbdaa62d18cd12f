"""`talkface eval lipsync`: lip sync from audio alone against the real mouth in real videos.

For every video: the real mouth per frame (talkface.analysis.tracking, cached outside the repo:
inner-lip opening and mouth width over the inter-ocular distance, at the frame
timestamps, so variable frame rates are safe); the model's prediction from the video's
own audio at the same times; and two baselines:

* energy: the RMS loudness envelope (50 ms moving average);
* ridge: ridge regression from 40 log-mel bands + deltas, stacked +-2 video frames,
  trained leave-one-video-out (same-footage videos held out together); its regularisation
  (lambda 300) is the best of a sweep on these videos, so if anything it flatters the baseline.

Scores: Pearson r of the opening at the best lag within +-2 video frames (and that lag),
r of the width, closed agreement (real and predicted opening each thresholded at its own
25th percentile; share of frames where both agree), and, as a diagnostic, r within +-0.4 s
(some clips' own audio is that far out of sync with their video). With the shipped fold models, each
video is predicted by a model that never saw it (leave-one-video-out); `--render`
animates the video's first frame with its own audio and scores the rendered mouth.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from talkface.errors import InputError
from talkface.lipsync.metrics import at_frames, best_lag_r, closed_agreement, shifted
from talkface.lipsync.real_clips import real_mouth

VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
MIN_RENDER_FRAMES = 10   # usable video frames a rendered span needs to be scored
KEYS = ("r_open", "lag", "r_width", "closed_agreement", "baseline_r_open", "ridge_r_open", "rendered_r_open", "r_open_wide",
        "quiet_closed")


# ------------------------------------------------------------------ metrics
def quiet_closed(real: np.ndarray, energy: np.ndarray) -> float:
    """Share of the quietest quarter of frames (energy envelope) in which the real mouth is
    closed (its opening in its lowest quarter): how far silence predicts a closed mouth on
    this clip, a ceiling on what any audio-only model can reach in closed agreement."""
    ok = np.isfinite(real) & np.isfinite(energy)
    a, e = real[ok], energy[ok]
    quiet = e <= np.percentile(e, 25)
    return float(np.mean(a[quiet] <= np.percentile(a, 25))) if quiet.any() else float("nan")


def energy_envelope(feats) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(feats.rms_db.astype(np.float64), 5)


def ridge_features(feats, times: np.ndarray) -> np.ndarray:
    """40 log-mel bands + deltas at each video frame, stacked +-2 video frames."""
    mel = feats.log_mel.astype(np.float64)
    delta = np.gradient(mel, axis=0) * 2
    per = at_frames(np.concatenate([mel, delta], axis=1), times)
    n = len(per)
    idx = np.clip(np.arange(n)[:, None] + np.arange(-2, 3)[None, :], 0, n - 1)
    return per[idx].reshape(n, -1)


def ridge_fit_predict(train: list[tuple[np.ndarray, np.ndarray]], x_test: np.ndarray, lam: float = 300.0) -> np.ndarray:
    x = np.concatenate([a for a, _ in train])
    y = np.concatenate([b for _, b in train])
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mu) / sd
    w = np.linalg.solve(xs.T @ xs + lam * len(xs) / 100 * np.eye(xs.shape[1]), xs.T @ (y - y.mean()))
    return ((x_test - mu) / sd) @ w + y.mean()


# ------------------------------------------------------------------ models per video
def fold_model_for(name: str, weights: Path | None = None):
    """The fold model (shipped beside the weights) that never saw video `name`, or None."""
    from talkface.lipsync.model import WEIGHTS, load_params
    from talkface.lipsync.shipped import from_params

    weights = Path(weights) if weights else WEIGHTS
    path = weights.with_name(weights.stem + "_folds.npz")
    if not path.is_file():
        return None
    main = load_params(weights) or {}
    with np.load(path) as z:
        for i in range(int(z["n_folds"])):
            held = str(z[f"f{i}_held_out"]).split("|")
            if name in held:
                params = {k[len(f"f{i}_"):]: z[k] for k in z.files if k.startswith(f"f{i}_") and k != f"f{i}_held_out"}
                params.update({k: v for k, v in main.items() if k.startswith(("cal_", "q_"))})
                return from_params(params)
    return None


def trained_on(name: str, weights: Path | None = None) -> bool:
    from talkface.lipsync.model import WEIGHTS

    rec = (Path(weights) if weights else WEIGHTS).with_suffix(".json")
    if not rec.is_file():
        return False
    return name in json.loads(rec.read_text()).get("data", {}).get("real_videos", [])


def predict_opening_width(model, feats) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature-frame predicted opening and width change (face units where the model has them)."""
    if hasattr(model, "measured_track"):
        y = model.measured_track(feats)
        return y[:, 0], y[:, 1]
    from talkface.lipsync.mouth import predict_track

    rows = predict_track(model, feats)
    return rows[:, 0], rows[:, 1] - rows[:, 2]


# ------------------------------------------------------------------ rendering
def rendered_opening(face, model, audio, times: np.ndarray) -> np.ndarray:
    """Animate `face` (a FaceModel) with `audio` through `model`; the tracked rendered opening
    (IOD) at `times` (seconds on the audio's clock)."""
    from talkface.analysis.tracking import track_frames
    from talkface.engine import Animator, GenerateOptions, generate

    options = GenerateOptions(fps=25.0, watermark_id=None)
    frames = [f.image for f in generate(face, audio, options, animator=Animator(face, options, mouth_model=model))]
    tr = track_frames(frames, times=np.arange(len(frames)) / 25.0, name="rendered")
    op = tr.mouth_opening()
    ok = np.isfinite(op)
    return np.interp(times, tr.times[ok], op[ok]) if ok.sum() > 1 else np.full(len(times), np.nan)


def render_opening(path: Path, model, audio, times: np.ndarray) -> np.ndarray:
    """Animate the video's first frame with its own audio; the tracked rendered opening at
    `times` (seconds on the audio's clock)."""
    import av

    from talkface.analysis.portrait import analyse
    from talkface.engine import FaceModel

    with av.open(str(path)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return rendered_opening(FaceModel(analyse(first, name=path.stem)), model, audio, times)


# ------------------------------------------------------------------ plotting
def plot(path: Path, name: str, times, real, pred, base, ridge, rendered, scores: dict) -> None:
    import cv2

    w, h, m = 1400, 330, 40
    img = np.full((h, w, 3), 255, np.uint8)
    t0, t1 = float(times[0]), float(times[-1]) + 1e-6

    def z(v):
        v = np.asarray(v, np.float64)
        ok = np.isfinite(v)
        if ok.sum() < 2:
            return None
        return (v - np.nanmean(v)) / (np.nanstd(v) + 1e-9)

    def line(v, colour, thick=1):
        v = z(v)
        if v is None:
            return
        x = m + (np.asarray(times) - t0) / (t1 - t0) * (w - 2 * m)
        y = h / 2 + 20 - np.clip(v, -3, 3) * (h - 2 * m - 40) / 6
        ok = np.isfinite(y)
        pts = np.stack([x[ok], y[ok]], 1).astype(np.int32)
        cv2.polylines(img, [pts], False, colour, thick, cv2.LINE_AA)

    for s in range(int(t0), int(t1) + 1):
        x = int(m + (s - t0) / (t1 - t0) * (w - 2 * m))
        cv2.line(img, (x, 40), (x, h - 10), (225, 225, 225), 1)
        cv2.putText(img, f"{s}s", (x + 2, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (150, 150, 150), 1, cv2.LINE_AA)
    line(base, (180, 180, 255))
    line(ridge, (120, 200, 120))
    if rendered is not None:
        line(rendered, (230, 160, 60))
    line(pred, (220, 40, 40), 2)
    line(real, (20, 20, 20), 2)
    text = (f"{name}  r_open {scores['r_open']:.2f} (lag {scores['lag']})  ridge {scores['ridge_r_open']:.2f}  "
            f"energy {scores['baseline_r_open']:.2f}  closed {scores['closed_agreement']:.2f}"
            + (f"  rendered {scores['rendered_r_open']:.2f}" if scores.get("rendered_r_open") is not None else ""))
    cv2.putText(img, text, (m, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    legend = [("real", (20, 20, 20)), ("model", (220, 40, 40)), ("energy", (180, 180, 255)), ("ridge", (120, 200, 120)),
              ("rendered", (230, 160, 60))]
    for i, (label, colour) in enumerate(legend):
        cv2.putText(img, label, (m + i * 90, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img[:, :, ::-1])


# ------------------------------------------------------------------ command
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", help="folder of real talking-face videos with their own audio")
    p.add_argument("--prepared", dest="cache_prepared",
                   help="a prepared cache (`talkface data prepare`): score every lip-sync clip in it with the fold model "
                        "that never saw its speaker (cross-validation disjoint by speaker)")
    p.add_argument("--render-seconds", type=float, default=20.0, help="with --prepared --render: seconds rendered per clip")
    p.add_argument("--json", help="write the per-video and mean scores here")
    p.add_argument("--plot", help="folder for one PNG per video (real vs predicted vs baselines)")
    p.add_argument("--render", action="store_true", help="also animate each video's first frame and score the render")
    p.add_argument("--cache", help="folder for tracked landmarks (default ~/.cache/talkface/lipsync)")
    p.add_argument("--weights", help="model weights (default: the shipped talkface/weights/lipsync.npz)")
    p.add_argument("--model", choices=("auto", "shipped", "energy"), default="auto",
                   help="auto: per video, the shipped fold model that never saw it (else the shipped model); "
                        "shipped: the shipped model everywhere; energy: the energy baseline mouth")


def evaluate(videos: list[Path], model_choice: str = "auto", render: bool = False, plot_dir: Path | None = None,
             cache: str | None = None, weights: str | None = None, log=print) -> dict:
    from talkface.analysis.audio import extract_features, load_audio
    from talkface.lipsync.mouth import EnergyMouth, default_model

    data = []
    for p in videos:
        m = real_mouth(p, cache)
        if np.isfinite(m["opening"]).sum() < 10:
            log(f"{p.stem:30s} skipped: a face was tracked in fewer than 10 frames")
            continue
        audio = load_audio(p)
        feats = extract_features(audio)
        data.append((p, m, audio, feats))
    # ridge baseline, leave-one-speaker-out (clips of the same person held out together)
    from talkface.data.speakers import SpeakerTable

    if not data:
        raise InputError("no video with a trackable face")

    names = [p.stem for p, *_ in data]
    speakers = SpeakerTable()
    group = {n: tuple(m for m in names if speakers.speaker(m) == speakers.speaker(n)) for n in names}
    rfeat = {p.stem: (ridge_features(f, m["times"]), m["opening"]) for p, m, _, f in data}
    if weights:
        from talkface.lipsync.shipped import load_trained

        shipped = load_trained(weights)
        if shipped is None:
            raise InputError(f"weights not found: {weights}")
    else:
        shipped = default_model()
    results = []
    for p, m, audio, feats in data:
        name = p.stem
        times, real_open = m["times"], m["opening"]
        real_width = m["width"]
        if model_choice == "energy":
            model, source = EnergyMouth(), "energy"
        else:
            model = fold_model_for(name, weights) if model_choice == "auto" else None
            source = "fold (held out)" if model is not None else "shipped"
            model = model or shipped
            if source == "shipped" and trained_on(name, weights):
                source = "shipped (TRAINED ON THIS VIDEO: not a held-out figure)"
        po, pw = predict_opening_width(model, feats)
        pred_open, pred_width = at_frames(po, times), at_frames(pw, times)
        r_open, lag = best_lag_r(real_open, pred_open)
        # diagnostic only: the same within +-0.4 s, for clips whose own audio and video are out of sync
        fps = 1.0 / float(np.median(np.diff(times))) if len(times) > 1 else 25.0
        r_wide, lag_wide = best_lag_r(real_open, pred_open, max_lag=int(round(0.4 * fps)))
        r_width, _ = best_lag_r(real_width, pred_width)
        agree = closed_agreement(real_open, shifted(pred_open, lag))
        base = at_frames(energy_envelope(feats), times)
        base_r, _ = best_lag_r(real_open, base)
        train = [rfeat[n] for n in names if n not in group[name]]
        ridge = ridge_fit_predict(train, rfeat[name][0]) if train else np.full(len(times), np.nan)
        ridge_r, _ = best_lag_r(real_open, ridge)
        rendered_r, rendered = None, None
        if render:
            rendered = render_opening(p, model, audio, times)
            rendered_r, _ = best_lag_r(real_open, rendered)
        row = {"name": name, "r_open": r_open, "lag": lag, "r_width": r_width, "closed_agreement": agree,
               "baseline_r_open": base_r, "ridge_r_open": ridge_r, "rendered_r_open": rendered_r, "model": source,
               "r_open_wide": r_wide, "lag_wide_s": round(lag_wide / fps, 3), "quiet_closed": quiet_closed(real_open, base)}
        results.append(row)
        log(f"{name:30s} r_open {r_open:5.2f} (lag {lag:+d})  r_width {r_width:5.2f}  closed {agree:.2f}  "
            f"energy {base_r:5.2f}  ridge {ridge_r:5.2f}" + (f"  rendered {rendered_r:5.2f}" if render else "")
            + f"  (within 0.4 s: {r_wide:4.2f} at {lag_wide / fps:+.2f} s; closed when quiet {row['quiet_closed']:.2f})"
            + f"  [{source}]")
        if plot_dir is not None:
            plot_dir.mkdir(parents=True, exist_ok=True)
            plot(plot_dir / f"{name}.png", name, times, real_open, shifted(pred_open, lag), base, ridge, rendered, row)
    return _summarise(results, render, log)


def _summarise(results: list[dict], render: bool, log) -> dict:
    """Means over the clips, printed, with how many beat the energy baseline."""
    mean = {}
    for k in KEYS:
        vals = [r[k] for r in results if r[k] is not None and np.isfinite(r[k])]
        mean[k] = float(np.mean(vals)) if vals else None
    above = sum(1 for r in results if r["r_open"] > r["baseline_r_open"])
    def f(v):
        return "  n/a" if v is None else f"{v:5.2f}"

    log(f"{'mean':30s} r_open {f(mean['r_open'])}  r_width {f(mean['r_width'])}  closed {f(mean['closed_agreement'])}  "
        f"energy {f(mean['baseline_r_open'])}  ridge {f(mean['ridge_r_open'])}"
        + (f"  rendered {f(mean['rendered_r_open'])}" if render else "") + f"  (above energy on {above}/{len(results)})")
    return {"videos": results, "mean": mean, "above_energy": above}


def _clip_model(name: str, shipped, weights: str | None):
    model = fold_model_for(name, weights)
    if model is not None:
        return model, "fold (speaker held out)"
    return shipped, "shipped (TRAINED ON THIS CLIP: not a held-out figure)" if trained_on(name, weights) else "shipped"


def render_scores(prepared, clip, model, po: np.ndarray, pw: np.ndarray, render_seconds: float, log) -> dict:
    """The rendered r over the clip's first `render_seconds` (its first frame animated with its own
    audio) and the model's r on the same span; NaN with a logged reason where that span holds
    fewer than MIN_RENDER_FRAMES usable frames (a clip whose first seconds were all rejected) or
    its first frame has no face to animate."""
    from talkface.analysis.audio import Audio, load_audio
    from talkface.analysis.portrait import PortraitError
    from talkface.lipsync.metrics import score_clip

    audio = load_audio(prepared.meta["source"])
    audio = Audio(audio.samples[:int(render_seconds * audio.sample_rate)], audio.sample_rate)
    early = clip.times < min(render_seconds, audio.duration) - 0.1
    skipped = {"rendered_r_open": float("nan"), "r_open_rendered_span": float("nan")}
    if early.sum() < MIN_RENDER_FRAMES:
        log(f"{clip.name}: not rendered (only {int(early.sum())} usable frames in its first {render_seconds:g} s; "
            f"the rest were rejected)")
        return skipped
    try:
        rendered = render_opening(Path(prepared.meta["source"]), model, audio, clip.times[early])
    except PortraitError as exc:   # e.g. a title card as the first frame: nothing to animate
        log(f"{clip.name}: not rendered ({exc})")
        return skipped
    early_open = score_clip(clip.times[early], clip.opening[early], clip.width[early], po, pw)
    return {"rendered_r_open": best_lag_r(clip.opening[early], rendered)[0], "r_open_rendered_span": early_open["r_open"]}


def evaluate_cache(cache_dir: str, render: bool = False, render_seconds: float = 20.0, weights: str | None = None,
                   log=print) -> dict:
    """Every lip-sync clip of a prepared cache, each predicted by the shipped fold model that
    never saw its speaker: r_open, closed agreement, r_width, and with `render` the rendered
    r over the clip's first `render_seconds` (its first frame animated with its own audio)."""
    from talkface.data.cache import PreparedCache
    from talkface.data.lipsync_targets import real_clip
    from talkface.lipsync.metrics import score_clip
    from talkface.lipsync.shipped import load_trained

    shipped = load_trained(weights) if weights else default_model_or_error()
    rows = []
    for prepared in PreparedCache(cache_dir).clips(use="lipsync"):
        clip = real_clip(prepared)
        if clip is None:
            log(f"{prepared.name}: skipped (fewer than 10 usable frames with a measured mouth)")
            continue
        model, source = _clip_model(clip.name, shipped, weights)
        po, pw = predict_opening_width(model, clip.features)
        row = {"name": clip.name, "speaker": clip.speaker, "model": source,
               **score_clip(clip.times, clip.opening, clip.width, po, pw), "rendered_r_open": None}
        if render:
            row.update(render_scores(prepared, clip, model, po, pw, render_seconds, log))
        rows.append(row)
        log(f"{clip.name:40s} r_open {row['r_open']:5.2f}  closed {row['closed_agreement']:.2f}  r_width {row['r_width']:5.2f}"
            + (f"  rendered {row['rendered_r_open']:5.2f} (model {row['r_open_rendered_span']:5.2f} same span)" if render else "")
            + f"  [{source}]")
    if not rows:
        raise InputError(f"no lip-sync clips in {cache_dir}")
    keys = ("r_open", "closed_agreement", "r_width") + (("rendered_r_open", "r_open_rendered_span") if render else ())
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    log("mean over clips: " + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    return {"clips": rows, "mean": mean, "speakers": len({r["speaker"] for r in rows})}


def default_model_or_error():
    from talkface.lipsync.shipped import load_trained

    model = load_trained()
    if model is None:
        raise InputError("no trained lip-sync weights installed")
    return model


def run(args: argparse.Namespace) -> int:
    if args.cache_prepared:
        out = evaluate_cache(args.cache_prepared, args.render, args.render_seconds, args.weights,
                             log=lambda s: print(s, flush=True))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        return 0
    if not args.videos:
        raise InputError("give --videos FOLDER or --prepared CACHE")
    folder = Path(args.videos)
    if not folder.is_dir():
        raise InputError(f"videos folder not found: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXT)
    if not videos:
        raise InputError(f"no videos in {folder}")
    out = evaluate(videos, args.model, args.render, Path(args.plot) if args.plot else None, args.cache, args.weights,
                   log=lambda s: print(s, flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0

