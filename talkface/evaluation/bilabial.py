"""`talkface eval bilabial`: do the rendered lips close on p, b and m?

Real English clips (from a prepared cache, `--prepared`): pocketsphinx (an optional eval
dependency, requirements-eval.txt; its English model ships in the package) gives the times
of /p b m/. The clips carry no transcripts, so this uses its allphone recogniser (timed
phones from the audio alone) rather than forced alignment. Each clip's first frame is
animated with its own audio (the first `--seconds`), through the fold model that never saw
its speaker where one ships; at each bilabial, the rendered mouth counts as at least as
closed as the real one when its smallest opening in the phone's span (+-30 ms) is no larger
than the real one's plus TOLERANCE_IOD (the tracker's noise).

Synthetic speech in several languages (espeak-ng, with its own phoneme timing): rendered on
the built-in portrait; the lips meet on a bilabial when the smallest rendered opening in its
span is within TOLERANCE_IOD of the closed mouth at rest (the opening in the leading silence).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

BILABIAL_SPHINX = {"P", "B", "M"}
SPAN_S = 0.03
TOLERANCE_IOD = 0.01
LEAD_SILENCE_S = 0.6
SENTENCES = {
    "en": "Bob bought a big blue boat, but Peter preferred the map. My mom made pumpkin pie.",
    "de": "Mein Bruder möchte morgen mit dem Bus nach München. Papa baut ein Boot.",
    "fr": "Bonjour, je m'appelle Pierre et j'aime beaucoup la musique. Papa mange une pomme.",
    "es": "Buenos días, me llamo María y vivo en una casa muy bonita. Mi padre bebe poco.",
    "it": "Mio padre mangia la pizza con il pomodoro e il basilico. Buona Pasqua, bambini.",
    "pt": "Bom dia, o meu nome é Paulo e moro em Lisboa. Vamos beber um café.",
    "ru": "Мама мыла раму, а папа пил молоко. Бабушка пекла пироги.",
    "pl": "Bardzo lubię pić mleko i jeść bułki. Mama ma psa.",
}


def sphinx_bilabials(samples: np.ndarray) -> list[tuple[float, float, str]]:
    """(start, end, phone) of every /p b m/ pocketsphinx's allphone recogniser finds (16 kHz audio)."""
    try:
        from pocketsphinx import Config, Decoder, get_model_path
    except ImportError:
        raise ValueError("eval bilabial needs pocketsphinx: pip install -r requirements-eval.txt") from None
    config = Config(allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"), lw=2.0,
                    beam=1e-20, pbeam=1e-20, loglevel="FATAL")
    decoder = Decoder(config)
    decoder.start_utt()
    decoder.process_raw((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    return [(s.start_frame / 100.0, (s.end_frame + 1) / 100.0, s.word) for s in decoder.seg() if s.word in BILABIAL_SPHINX]


def _span_min(times: np.ndarray, values: np.ndarray, start: float, end: float) -> float:
    sel = (times >= start - SPAN_S) & (times <= end + SPAN_S) & np.isfinite(values)
    return float(values[sel].min()) if sel.any() else float("nan")


def real_clips(cache_dir: str, seconds: float, log=print) -> dict:
    """Per English lip-sync clip: bilabials found, and how many the rendered mouth closes at least as far as the real one."""
    from talkface.analysis.audio import Audio, load_audio
    from talkface.analysis.portrait import PortraitError
    from talkface.data.cache import PreparedCache
    from talkface.data.lipsync_targets import real_clip
    from talkface.evaluation.lipsync_eval import _clip_model, default_model_or_error, render_opening

    shipped, rows = default_model_or_error(), []
    for prepared in PreparedCache(cache_dir).clips(use="lipsync"):
        clip = real_clip(prepared)
        if clip is None or not _english(prepared.meta):
            continue
        audio = load_audio(prepared.meta["source"])
        audio = Audio(audio.samples[:int(seconds * audio.sample_rate)], audio.sample_rate)
        events = [e for e in sphinx_bilabials(audio.samples) if e[1] < audio.duration - 0.1 and e[0] > clip.times[0]]
        if not events:
            continue
        model, source = _clip_model(clip.name, shipped, None)
        early = clip.times < audio.duration
        try:
            rendered = render_opening(Path(prepared.meta["source"]), model, audio, clip.times[early])
        except PortraitError as exc:   # a first frame without a face: nothing to animate
            log(f"{clip.name}: not rendered ({exc})")
            continue
        ok = 0
        for start, end, _ in events:
            real = _span_min(clip.times, clip.opening, start, end)
            ren = _span_min(clip.times[early], rendered, start, end)
            ok += int(np.isfinite(real) and np.isfinite(ren) and ren <= real + TOLERANCE_IOD)
        rows.append({"name": clip.name, "bilabials": len(events), "at_least_as_closed": ok, "model": source})
        log(f"{clip.name:40s} {ok:3d} of {len(events):3d} bilabials at least as closed as the real mouth  [{source}]")
    total, good = sum(r["bilabials"] for r in rows), sum(r["at_least_as_closed"] for r in rows)
    return {"clips": rows, "bilabials": total, "share": good / total if total else None}


def _english(meta: dict) -> bool:
    """English clips: the shared videos and train_videos' English ones (per their manifests), fetched speech clips marked English."""
    source = Path(meta["source"])
    manifest = source.parent / "MANIFEST.tsv"
    for candidate in (manifest, source.parent.parent / "MANIFEST.tsv"):
        if candidate.is_file():
            for line in candidate.read_text(encoding="utf-8").splitlines():
                cells = line.split("\t")
                if cells and Path(cells[0]).stem == source.stem:
                    return any(c.strip().lower().startswith(("english", "en")) for c in cells[1:8])
    return False


def synthetic(languages: list[str], log=print) -> dict:
    """Per language: espeak-ng speech on the built-in portrait; bilabials where the rendered lips meet."""
    from talkface.analysis.audio import checked_audio
    from talkface.analysis.portrait import Portrait
    from talkface.analysis.speech import speak
    from talkface.engine import FaceModel
    from talkface.evaluation.lipsync_eval import default_model_or_error, rendered_opening

    face, model, rows = FaceModel(Portrait.builtin()), default_model_or_error(), []
    for lang in languages:
        spoken = speak(SENTENCES[lang], voice=lang, rate_wpm=150)
        lead = np.zeros(int(LEAD_SILENCE_S * spoken.sample_rate), np.float32)
        audio = checked_audio(np.concatenate([lead, spoken.samples]), spoken.sample_rate)
        times = np.arange(0.0, audio.duration, 0.01)
        opening = rendered_opening(face, model, audio, times)
        rest = float(np.nanmedian(opening[times < LEAD_SILENCE_S - 0.2]))
        events = [p for p in spoken.phonemes if p.phoneme[:1] in "pbm"]
        met = sum(int(_span_min(times, opening, p.start + LEAD_SILENCE_S, p.end + LEAD_SILENCE_S) <= rest + TOLERANCE_IOD)
                  for p in events)
        rows.append({"language": lang, "bilabials": len(events), "lips_meet": met})
        log(f"{lang}: lips meet on {met} of {len(events)} bilabials")
    total, good = sum(r["bilabials"] for r in rows), sum(r["lips_meet"] for r in rows)
    return {"languages": rows, "bilabials": total, "share": good / total if total else None}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prepared", help="prepared cache (`talkface data prepare`): score its English lip-sync clips")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of each real clip rendered; default 10")
    p.add_argument("--languages", default=",".join(SENTENCES), help=f"espeak-ng languages; default {','.join(SENTENCES)}")
    p.add_argument("--json", help="write the figures here")


def run(args: argparse.Namespace) -> int:
    langs = [x for x in args.languages.split(",") if x]
    unknown = [x for x in langs if x not in SENTENCES]
    if unknown:
        raise ValueError(f"no test sentence for {', '.join(unknown)}; choose from {', '.join(SENTENCES)}")
    out = {"synthetic": synthetic(langs, log=lambda s: print(s, flush=True)) if langs else None}
    if args.prepared:
        out["real"] = real_clips(args.prepared, args.seconds, log=lambda s: print(s, flush=True))
    for k, v in out.items():
        if v and v["share"] is not None:
            print(f"{k}: {v['share']:.1%} of {v['bilabials']} bilabials")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0
