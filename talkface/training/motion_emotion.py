"""What an emotion changes in real head, gaze, blink and brow motion, measured on the
emotion-labelled clips of the prepared cache (MEAD footage, via EAMM and SPECTRE), and
the per-emotion factors the learned motion applies (`MotionModel.emotion`).

Per clip (usable frames, 25 fps): head-pose std (head), share of time looking away from
the camera (look), blinks per minute (blink), brow-height std (brow). Each labelled
emotion's means are compared with a baseline of neutral clips from the same kind of
footage: MEAD has no neutral clip in the cache, so the baseline is the neutral studio
read-speech clips (STUDIO_CORPORA: GRID, frontal, read sentences, like MEAD). The log
ratios are shrunk towards the rig's hand-set style (generator.EMOTION_STYLES: energy and
blink rate; look and brow 0) with PRIOR_CLIPS pseudo-clips: with one to three clips per
emotion the data moves the factors, the prior keeps a single odd clip from deciding.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from talkface.motion.controls import EMOTIONS
from talkface.motion.learned import EMOTION_FACTORS, MODEL_FPS

STUDIO_CORPORA = ("grid", "mead")   # clip names of studio read speech (the baseline's kind of footage)
PRIOR_CLIPS = 2.0                   # weight of the rig's style, in clips
AWAY_FLOOR = 0.02                   # look-away share floor (studio clips look at the camera ~all the time)
BLINK_PSEUDO = 1.0                  # blinks added to each group's count (short clips often have none)
MIN_CLIP_S = 2.0
BLINK_MARGIN = 5                    # frames either side of a blink left out of the brow's std
FACTOR_LIMIT = 2.5                  # no emotion scales a figure by more than this (or less than its inverse)


def clip_figures(prep) -> dict:
    """One prepared clip's head std, look-away share, blinks and minutes, brow std."""
    from talkface.motion.metrics import blink_frames, clip_stats
    from talkface.training.motion import real_series

    series = real_series(prep)
    st = clip_stats(series, MODEL_FPS)
    near_blink = np.zeros(len(series), bool)
    for f in blink_frames(series[:, 3], MODEL_FPS):       # a blink pulls the brow down with the lid
        near_blink[max(f - BLINK_MARGIN, 0): f + BLINK_MARGIN + 1] = True
    brow = prep.clip.brow[prep.valid][~near_blink]
    return {"seconds": st["seconds"], "head": st["pose_std_deg"], "away": 1.0 - st["gaze_camera_share"],
            "blinks": st["blinks"], "brow": float(np.nanstd(brow) * 100.0)}


def group_figures(rows: list[dict]) -> dict:
    minutes = sum(r["seconds"] for r in rows) / 60.0
    return {"clips": len(rows), "seconds": round(minutes * 60, 1),
            "head": float(np.mean([r["head"] for r in rows])),
            "away": max(float(np.mean([r["away"] for r in rows])), AWAY_FLOOR),
            "blink": (sum(r["blinks"] for r in rows) + BLINK_PSEUDO) / max(minutes, 1e-6),
            "brow": float(np.mean([r["brow"] for r in rows]))}


def prior(emotion: str) -> np.ndarray:
    """The rig's hand-set style as log factors (head energy, look 0, blink rate, brow 0)."""
    from talkface.motion.generator import EMOTION_STYLES

    style = EMOTION_STYLES[emotion]
    return np.log([style.energy, 1.0, style.blink_rate, 1.0])


def emotion_effects(table: dict[str, list[dict]]) -> tuple[np.ndarray, dict]:
    """(len(EMOTIONS), len(EMOTION_FACTORS)) log factors, row per controls.EMOTIONS
    (neutral 0), and the record: per emotion the measured figures, the raw and shrunk factors."""
    base = group_figures(table.get("baseline", []))
    effects = np.zeros((len(EMOTIONS), len(EMOTION_FACTORS)))
    record: dict = {"baseline": base, "emotions": {}}
    for name, rows in sorted(table.items()):
        if name == "baseline" or not rows:
            continue
        fig = group_figures(rows)
        measured = np.log([fig[k] / base[k] for k in ("head", "away", "blink", "brow")])
        entry = {"figures": fig, "measured_log_factors": measured.round(3).tolist()}
        if name in EMOTIONS:
            w = len(rows) / (len(rows) + PRIOR_CLIPS)
            shrunk = w * measured + (1 - w) * prior(name)
            effects[EMOTIONS.index(name)] = np.clip(shrunk, -np.log(FACTOR_LIMIT), np.log(FACTOR_LIMIT))
            entry["shipped_factors"] = np.exp(effects[EMOTIONS.index(name)]).round(3).tolist()
        record["emotions"][name] = entry
    record["factors"] = list(EMOTION_FACTORS)
    return effects, record


def labelled_table(cache: str | Path) -> dict[str, list[dict]]:
    """Per emotion label (and 'baseline'), the figures of every usable clip, audio or not."""
    from talkface.training.motion import load_clip, prepare

    folder = Path(cache)
    metas = json.loads((folder / "index.json").read_text())["clips"].values()
    table: dict[str, list[dict]] = {}
    for m in metas:
        emotion = m.get("emotion")
        studio = any(c in m["clip"].lower() for c in STUDIO_CORPORA)
        if m.get("rejected") or not m.get("use_motion") or not (emotion or studio):
            continue
        clip = load_clip(folder / m["file"], m, need_audio=False)
        if clip is None:
            continue
        prep = prepare(clip)
        if prep.valid.sum() < MIN_CLIP_S * MODEL_FPS:
            continue
        row = dict(clip_figures(prep), clip=m["clip"], speaker=str(m["speaker"]))
        table.setdefault(emotion or "baseline", []).append(row)
    return table
