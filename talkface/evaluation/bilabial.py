"""`talkface eval bilabial`: do the rendered lips close on p, b and m?

Real English clips (from a prepared cache, `--prepared`): pocketsphinx (an optional eval
dependency, requirements-eval.txt; its English model ships in the package) gives the times
of /p b m/. GRID clips say their sentence in their file name (e.g. grid-sbwe5n: "set blue
with e five now"): there pocketsphinx force-aligns that transcript, phone by phone. The
other clips carry no transcripts, so there its allphone recogniser (timed phones from the
audio alone, less reliable) gives them; the two are reported apart. Each clip's first frame is
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
import re
from pathlib import Path

import numpy as np

BILABIAL_SPHINX = {"P", "B", "M"}
SPAN_S = 0.03
TOLERANCE_IOD = 0.01
LEAD_SILENCE_S = 0.6
# Held out from the training corpus (talkface.training.lipsync.CORPUS: a test checks it); the
# sentences before 2026-12-05 repeated training sentences, so their 35 % was an in-sample figure.
SENTENCES = {
    "en": "Maybe my big brother will bring a map to the museum. Please pass the bread and butter, mom.",
    "de": "Meine Mutter backt am Montag einen Pflaumenkuchen. Bitte bring mir das blaue Buch.",
    "fr": "Mon petit frère mange du pain beurré le matin. Bonne promenade, papa, au bord de la mer.",
    "es": "Mi primo Pablo compra pan y membrillo cada mañana. Bebemos mate en el campo.",
    "it": "Il bambino mangia un panino con il burro. Mamma porta le mele al mercato.",
    "pt": "Minha mãe compra pão e bolo pela manhã. O menino bebe um copo de limonada.",
    "ru": "Папа принёс большую рыбу и много помидоров. Бабушка пекла пироги.",
    "pl": "Mój brat kupił piękny obraz w muzeum. Babcia piecze pyszne bułeczki.",
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


GRID_WORDS = ({"b": "bin", "l": "lay", "p": "place", "s": "set"},
              {"b": "blue", "g": "green", "r": "red", "w": "white"},
              {"a": "at", "b": "by", "i": "in", "w": "with"},
              None,   # the letter, said as itself
              {"z": "zero", **{str(i): w for i, w in enumerate("zero one two three four five six seven eight nine".split())}},
              {"a": "again", "n": "now", "p": "please", "s": "soon"})


def grid_sentence(name: str) -> str | None:
    """The sentence a GRID clip says, from the 6-letter code in its name (None: not a GRID clip)."""
    m = re.search(r"grid-([a-z0-9]{6})(?:_|$)", name)
    if not m:
        return None
    words = []
    for code, table in zip(m.group(1), GRID_WORDS):
        if table is not None and code not in table:
            return None
        words.append(code if table is None else table[code])
    return " ".join(words)


def aligned_bilabials(samples: np.ndarray, text: str) -> list[tuple[float, float, str]] | None:
    """(start, end, phone) of every /p b m/ in `text`, force-aligned to the audio (16 kHz) by
    pocketsphinx; None when the alignment does not reach the end of the text."""
    from pocketsphinx import Decoder

    raw = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
    decoder = Decoder(loglevel="FATAL")
    decoder.set_align_text(text)
    for _ in range(2):   # word alignment, then the phone-level pass
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
        if decoder.get_alignment() is None:
            hyp = decoder.hyp()
            if hyp is None or hyp.hypstr.split() != text.split():
                return None
            decoder.set_alignment()
    return [(ph.start / 100.0, (ph.start + ph.duration) / 100.0, ph.name)
            for word in decoder.get_alignment() for ph in word if ph.name in BILABIAL_SPHINX]


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
        sentence = grid_sentence(clip.name)
        timed = aligned_bilabials(audio.samples, sentence) if sentence else None
        sentence = sentence if timed is not None else None   # no transcript, or it did not align
        timed = timed if timed is not None else sphinx_bilabials(audio.samples)
        events = [e for e in timed if e[1] < audio.duration - 0.1 and e[0] > clip.times[0]]
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
        timing = "forced alignment" if sentence else "allphone"
        rows.append({"name": clip.name, "bilabials": len(events), "at_least_as_closed": ok, "model": source,
                     "timing": timing})
        log(f"{clip.name:40s} {ok:3d} of {len(events):3d} bilabials at least as closed as the real mouth  "
            f"[{source}; {timing}]")
    out = _shares(rows, "at_least_as_closed")
    out["by_timing"] = {t: _shares([r for r in rows if r["timing"] == t], "at_least_as_closed")
                        for t in ("forced alignment", "allphone")}
    return {"clips": rows, **out}


def _shares(rows: list[dict], key: str) -> dict:
    total, good = sum(r["bilabials"] for r in rows), sum(r[key] for r in rows)
    return {"bilabials": total, "share": good / total if total else None}


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
    return {"languages": rows, **_shares(rows, "lips_meet")}


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
        for timing, part in (v or {}).get("by_timing", {}).items():
            if part["share"] is not None:
                print(f"  {timing}: {part['share']:.1%} of {part['bilabials']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0
