"""`talkface train lipsync --cache CACHE`: train the audio->mouth MLP (talkface.lipsync.model).

Data:
* real talking-face clips from the prepared cache (`talkface data prepare`, talkface.data):
  the tracked mouth at the offset-corrected alignment is the target (inner-lip opening and
  mouth-width change, inter-ocular units, one common scale per clip), usable stretches only
  (talkface.data.lipsync_targets);
* synthetic speech (talkface.analysis.speech, espeak-ng, many languages) with known phoneme
  timing: phoneme -> viseme targets (opening, width change, rounding, pressing) with
  coarticulation smoothing, augmented (voice variant, speaking rate, pitch, resampling
  that shifts pitch and formants, reverb, band limits, noise and babble, gain, breaths,
  pauses) so the model transfers to real voices; it alone teaches rounding and pressing,
  and the crisp closures of bilabials.

Steps: (1) per fold of the cross-validation (disjoint by speaker: every clip of a person
held out together), an ensemble of MLPs (seeds) on synthetic + real data, real frames in
each clip's most-closed quarter weighted up; then a ridge branch on raw log-mel fitted to
the real clips; the held-out clips are scored; (2) a quantile map from the held-out
predictions to the real openings; (3) the final model on everything; (4) the rig
calibration, measured by rendering (`--calibrate-only` redoes just this after rig or
renderer changes). The fold models ship beside the main one (lipsync_folds.npz) so
`talkface eval lipsync` scores each real clip with a model that never saw its speaker.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from talkface.errors import InputError
from talkface.training.lipsync_tcn import TcnSetup

# A few sentences per language; espeak voices speak them (ja in kana: the ja voice cannot read kanji).
CORPUS = {
    "en": ["Hello there, my name is Anna and I am happy to meet you today.",
           "Bob bought a big blue boat, but Peter preferred the map.",
           "We will see how the weather looks tomorrow morning, maybe it rains.",
           "Oh, you should have told me about the moon and the music room.",
           "I think that every child needs a little time to play outside."],
    "de": ["Guten Tag, wie geht es Ihnen heute? Schöne Grüße aus Berlin.",
           "Mein Bruder möchte morgen mit dem Bus nach München fahren."],
    "fr": ["Bonjour, je m'appelle Pierre et j'aime beaucoup la musique.",
           "Nous voulons partir tôt pour voir le beau paysage au bord de l'eau."],
    "es": ["Buenos días, me llamo María y vivo en una casa muy bonita.",
           "Mañana vamos a la playa con mis amigos para bailar."],
    "it": ["Buongiorno, come stai? Oggi il mare è bellissimo.",
           "Mio padre mangia la pizza con il pomodoro e il basilico."],
    "pt": ["Bom dia, o meu nome é Paulo e moro em Lisboa.",
           "Vamos beber um café na praça depois do trabalho."],
    "ru": ["Привет, как дела? Меня зовут Борис, я живу в Москве.",
           "Мама мыла раму, а папа пил молоко."],
    "cmn": ["你好，我叫小明，很高兴认识你。", "今天天气很好，我们一起去公园吧。", "妈妈买了一本书和两个苹果。"],
    "ja": ["こんにちは、わたしのなまえはたなかです。", "きょうはとてもいいてんきですね。", "おはようございます、またあした。"],
    "ko": ["안녕하세요, 만나서 반갑습니다.", "오늘 날씨가 정말 좋네요."],
    "hi": ["नमस्ते, आप कैसे हैं? मेरा नाम राम है।", "मुझे भारतीय खाना बहुत पसंद है।"],
    "ar": ["مرحبا، كيف حالك اليوم؟", "أنا أحب القراءة والموسيقى."],
    "tr": ["Merhaba, benim adım Mehmet ve İstanbul'da yaşıyorum.", "Bugün hava çok güzel, parka gidelim."],
    "pl": ["Dzień dobry, mam na imię Piotr i mieszkam w Warszawie.", "Bardzo lubię pić mleko i jeść bułki."],
    "nl": ["Goedemorgen, ik ben Bram en ik woon in Amsterdam.", "Wij fietsen morgen naar de boerderij."],
    "sv": ["Hej, jag heter Björn och bor i Stockholm.", "Vi åker till sjön på sommaren."],
    "vi": ["Xin chào, tôi tên là Minh, rất vui được gặp bạn."],
    "id": ["Selamat pagi, nama saya Budi dan saya tinggal di Bandung."],
    "sw": ["Habari yako? Jina langu ni Baraka, ninaishi Mombasa."],
    "el": ["Καλημέρα, με λένε Μαρία και μένω στην Αθήνα."],
}
# Sung-like material: long open vowels at slow rates.
SUNG = {"en": ["Oh la la la, ah ah, oh oh, mmm la la la la.", "Ooh baby baby, ah yeah, la da dee da."],
        "it": ["O sole mio, sta nfronte a te.", "Ah ah ah, la la la, mamma mia."],
        "es": ["Ay ay ay ay, canta y no llores.", "La la la, amor, amor."]}
VARIANTS = ("", "+f2", "+f3", "+f4", "+m2", "+m3", "+m4", "+f1")


# ------------------------------------------------------------------ phonemes -> visemes
_BILABIAL = set("pbm")
_VOWEL_OPEN = {"a": 0.26, "A": 0.27, "&": 0.24, "{": 0.24, "V": 0.22, "6": 0.2, "e": 0.17, "E": 0.2, "3": 0.16,
               "@": 0.13, "i": 0.09, "I": 0.1, "o": 0.19, "O": 0.22, "0": 0.22, "u": 0.08, "U": 0.1, "y": 0.08,
               "Y": 0.1, "W": 0.12, "8": 0.12, "9": 0.15}
_VOWEL_WIDTH = {"a": 0.02, "A": 0.0, "&": 0.04, "{": 0.04, "e": 0.05, "E": 0.04, "i": 0.07, "I": 0.05, "3": 0.02,
                "o": -0.05, "O": -0.04, "0": -0.03, "u": -0.09, "U": -0.07, "y": -0.08, "Y": -0.06, "W": -0.05, "8": -0.04}
_VOWEL_ROUND = {"o": 0.7, "O": 0.5, "0": 0.4, "u": 1.0, "U": 0.8, "y": 0.9, "Y": 0.8, "W": 0.6, "8": 0.6, "9": 0.5}


def viseme(ph: str) -> tuple[float, float, float, float, float]:
    """(opening IOD, width change IOD, round 0..1, press 0..1, strength 0..1) for an espeak mnemonic.
    Strength: how much the phoneme dictates the mouth (vowels, labials) vs. takes it from its neighbours."""
    if not ph or ph.startswith("_"):
        return 0.0, 0.0, 0.0, 0.15, 1.0
    c = ph[0]
    if c in _VOWEL_OPEN:
        if ph.startswith("a#"):
            return 0.17, 0.02, 0.0, 0.0, 1.0
        return _VOWEL_OPEN[c], _VOWEL_WIDTH.get(c, 0.0), _VOWEL_ROUND.get(c, 0.0), 0.0, 1.0
    if c in _BILABIAL:
        return 0.0, -0.01, 0.0, 1.0, 1.0
    if c == "w":
        return 0.04, -0.08, 0.9, 0.0, 1.0
    if c in "fv":
        return 0.025, 0.0, 0.0, 0.4, 0.9
    if c == "B":
        return 0.04, 0.0, 0.2, 0.3, 0.7
    if ph.startswith(("S", "Z", "tS", "dZ", "s.", "z.", "ts.", "tS;", "S;", "C")):
        return 0.06, -0.04, 0.5, 0.0, 0.7
    if c in "TD":
        return 0.07, 0.01, 0.0, 0.0, 0.6
    if c in "sz" or ph.startswith(("ts", "dz")):
        return 0.05, 0.03, 0.0, 0.0, 0.6
    if c in "rR":
        return 0.08, -0.02, 0.25, 0.0, 0.4
    if c in "kgxXhNqQG?":
        return 0.11, 0.0, 0.0, 0.0, 0.3
    if c == "j":
        return 0.07, 0.04, 0.0, 0.0, 0.5
    return 0.08, 0.0, 0.0, 0.0, 0.4   # t d n l and the rest: tongue sounds, jaw follows the vowels


def phoneme_targets(phonemes, n_frames: int, time_scale: float = 1.0, lead_s: float = 0.02) -> np.ndarray:
    """(n_frames, 5) opening / width change / round / press / lips closed at the 100 Hz feature
    frames. Coarticulation: weakly specified consonants take the mouth of the surrounding
    vowels; a Gaussian blur (30 ms) smooths transitions; the mouth leads the sound by `lead_s`.
    Lips closed is 1 in the core of a bilabial, 0 in other speech, unknown (NaN) in pauses
    (real people often keep their lips apart there)."""
    from scipy.ndimage import gaussian_filter1d

    from talkface.analysis.audio import frame_time

    t = frame_time(np.arange(n_frames)) + lead_s
    raw = np.zeros((n_frames, 4))
    strength = np.ones(n_frames)
    bilabial = np.zeros(n_frames, bool)
    speech = np.zeros(n_frames, bool)
    for p in phonemes:
        lo, hi = np.searchsorted(t, [p.start * time_scale, p.end * time_scale])
        o, w, r, pr, s = viseme(p.phoneme)
        raw[lo:hi] = (o, w, r, pr)
        strength[lo:hi] = s
        speech[lo:hi] = not p.phoneme.startswith("_")
        if p.phoneme[:1] in _BILABIAL:
            core = max(1, (hi - lo) // 4)
            bilabial[lo + core:hi - core] = True
    # neighbours' mouth (strength-weighted blur), blended into weakly specified frames
    wsum = gaussian_filter1d(strength, 6) + 1e-6
    context = gaussian_filter1d(raw * strength[:, None], 6, axis=0) / wsum[:, None]
    mixed = raw * strength[:, None] + context * (1 - strength[:, None])
    out = gaussian_filter1d(mixed, 3.0, axis=0)
    out[bilabial, 0] = np.minimum(out[bilabial, 0], 0.005)
    out[bilabial, 3] = np.maximum(out[bilabial, 3], 0.8)
    closed = np.where(speech, bilabial.astype(np.float64), np.nan)
    return np.concatenate([out, closed[:, None]], axis=1).astype(np.float32)


# ------------------------------------------------------------------ augmentation
def _colored_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(3)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec)) + 1.0
    spec = spec / f ** (0.0, 0.5, 1.0)[kind]
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-9)


def _reverb(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.15, 0.7)
    n = int(rt60 * sr)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 1.0 / rng.uniform(0.1, 0.6)
    y = fftconvolve(x, ir)[:len(x)]
    return y / (np.max(np.abs(y)) + 1e-9) * np.max(np.abs(x))


def _band(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    lo = rng.uniform(80, 400)
    hi = rng.uniform(3000, 7000)
    return sosfilt(butter(4, [lo, hi], btype="band", fs=sr, output="sos"), x)


def _room_and_channel(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Sometimes a room (reverb), sometimes a narrow channel (phone, laptop microphone)."""
    if rng.random() < 0.35:
        x = _reverb(x, rng, sr)
    if rng.random() < 0.3:
        x = _band(x, rng, sr)
    return x


def _add_noise(x: np.ndarray, rng: np.random.Generator, speech_std: float, snr_db: float) -> np.ndarray:
    return x + _colored_noise(len(x), rng) * speech_std * 10 ** (-snr_db / 20)


def _random_gain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Peak-normalised, then a recording level between -30 and -1 dBFS."""
    return (x / (np.max(np.abs(x)) + 1e-9) * 10 ** (rng.uniform(-30, -1) / 20)).astype(np.float32)


def synth_clip(text: str, lang: str, rng: np.random.Generator, babble: list[np.ndarray], sung: bool = False):
    """One augmented synthetic clip: (16 kHz samples, targets at 100 Hz)."""
    from talkface.analysis.audio import SAMPLE_RATE, resample
    from talkface.analysis.speech import speak

    voice = lang + VARIANTS[rng.integers(len(VARIANTS))]
    rate = int(rng.uniform(80, 110)) if sung else int(rng.uniform(110, 250))
    pitch = int(rng.uniform(15, 85))
    try:
        spoken = speak(text, voice=voice, rate_wpm=rate, pitch=pitch)
    except Exception:
        spoken = speak(text, voice=lang, rate_wpm=rate, pitch=pitch)
    # resampling by a factor shifts pitch and formants together and changes the tempo
    factor = rng.uniform(0.88, 1.14)
    x = resample(spoken.samples, int(round(spoken.sample_rate * factor)), SAMPLE_RATE).astype(np.float64)
    time_scale = 1.0 / factor
    pre, post = rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8)
    if rng.random() < 0.25:  # a long lead-in: whatever noise there is, heard before anyone speaks
        pre = rng.uniform(1.0, 3.0)
    pre_n, post_n = int(pre * SAMPLE_RATE), int(post * SAMPLE_RATE)
    peak = np.max(np.abs(x)) + 1e-9
    x = np.concatenate([np.zeros(pre_n), x, np.zeros(post_n)])
    breaths = []
    if rng.random() < 0.4:  # an audible in-breath before speaking: the mouth stays closed
        n = int(rng.uniform(0.2, 0.45) * SAMPLE_RATE)
        start = max(0, pre_n - n - int(0.05 * SAMPLE_RATE))
        b = _colored_noise(n, rng) * np.hanning(n) * peak * 10 ** (rng.uniform(-38, -22) / 20)
        from scipy.signal import butter, sosfilt
        b = sosfilt(butter(2, [500, 4000], btype="band", fs=SAMPLE_RATE, output="sos"), b)
        x[start:start + n] += b
        breaths.append((start, start + n))
    x = _room_and_channel(x, rng, SAMPLE_RATE)
    u = rng.random()
    if u < 0.35:
        x = _add_noise(x, rng, np.std(x[pre_n:len(x) - post_n]), rng.uniform(0, 30))
    elif u < 0.55 and babble:  # other voices in the background (cafe)
        snr = rng.uniform(3, 20)
        bg = np.zeros(len(x))
        for _ in range(rng.integers(1, 4)):
            b = babble[rng.integers(len(babble))]
            bg += np.roll(np.resize(b, len(x)), rng.integers(0, len(x)))
        x = x + bg / (np.std(bg) + 1e-9) * np.std(x[pre_n:len(x) - post_n]) * 10 ** (-snr / 20)
    from talkface.analysis.audio import checked_audio, extract_features

    feats = extract_features(checked_audio(_random_gain(x, rng), SAMPLE_RATE))
    shifted = [type(p)(p.start + pre / time_scale, p.end + pre / time_scale, p.phoneme) for p in spoken.phonemes]
    y = phoneme_targets(shifted, len(feats), time_scale=time_scale)
    return feats, y


def noise_clip(rng: np.random.Generator):
    """Background alone (hiss, rumble, hum, fan): the mouth stays closed."""
    from talkface.analysis.audio import SAMPLE_RATE, checked_audio, extract_features

    n = int(rng.uniform(2.0, 4.0) * SAMPLE_RATE)
    x = _colored_noise(n, rng)
    if rng.random() < 0.4:
        t = np.arange(n) / SAMPLE_RATE
        f0 = rng.choice([50.0, 60.0, 100.0, 120.0])
        x = x * rng.uniform(0.1, 1.0) + sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    if rng.random() < 0.3:
        x = _band(x, rng, SAMPLE_RATE)
    x = x / (np.max(np.abs(x)) + 1e-9) * 10 ** (rng.uniform(-45, -10) / 20)
    feats = extract_features(checked_audio(x.astype(np.float32), SAMPLE_RATE))
    y = np.zeros((len(feats), 5), np.float32)
    y[:, 3] = 0.15
    y[:, 4] = np.nan   # lips closed: unknown without speech (see phoneme_targets)
    return feats, y


def synthetic_set(n_clips: int, seed: int, log=print) -> list[tuple]:
    from talkface.analysis.audio import SAMPLE_RATE, resample
    from talkface.analysis.speech import speak

    rng = np.random.default_rng(seed)
    babble = []
    for lang, texts in list(CORPUS.items())[:6]:
        s = speak(" ".join(texts), voice=lang)
        babble.append(resample(s.samples, s.sample_rate, SAMPLE_RATE).astype(np.float64))
    items = [(lang, t, False) for lang, ts in CORPUS.items() for t in ts] + \
            [(lang, t, True) for lang, ts in SUNG.items() for t in ts]
    out = []
    for i in range(n_clips):
        lang, text, sung = items[i % len(items)] if i < len(items) else items[rng.integers(len(items))]
        try:
            out.append(synth_clip(text, lang, rng, babble, sung))
        except Exception as exc:  # a voice espeak lacks: skip it, say so
            log(f"  skipped {lang}: {exc}")
    for _ in range(max(1, n_clips // 12)):
        out.append(noise_clip(rng))
    return out


# ------------------------------------------------------------------ training
@dataclass(frozen=True)
class TrainSetup:
    n_synth: int = 240         # espeak clips
    folds: int = 5             # cross-validation folds, disjoint by speaker
    tcn: TcnSetup = TcnSetup()  # the network and its training


def _rows(feats) -> np.ndarray:
    from talkface.lipsync.model import FrameNormaliser, buffer_rows

    return buffer_rows(feats, FrameNormaliser())


def train_all(cache_dir: str, setup: TrainSetup, folds: bool, log=print):
    """Synthetic clips + the cache's real clips: per speaker-disjoint fold a model and its
    held-out scores, the quantile map from those held-out predictions, and the final model."""
    from talkface.data.cache import PreparedCache
    from talkface.data.lipsync_targets import real_clips, speaker_folds
    from talkface.lipsync.tcn import TemporalConvMouth
    from talkface.training.lipsync_heads import rounding_map
    from talkface.training.lipsync_tcn import fit_tcn, sequence

    t0 = time.time()
    log(f"synthesising {setup.n_synth} clips ...")
    synth = [sequence(_rows(f), y) for f, y in synthetic_set(setup.n_synth, setup.tcn.seed, log)]
    log(f"  {sum(len(s.x) for s in synth) / 100:.0f} s of synthetic speech ({time.time() - t0:.0f} s)")
    real = real_clips(PreparedCache(cache_dir), log)
    seqs = {c.name: sequence(_rows(c.features), c.targets, setup.tcn.closed_weight) for c in real}

    def fit(held: set[str], seed_offset: int):
        train = [seqs[c.name] for c in real if c.speaker not in held]
        return fit_tcn(train, synth, replace(setup.tcn, seed=setup.tcn.seed + seed_offset))

    fold_models, rows, held_preds = {}, [], []
    for i, held in enumerate(speaker_folds(real, setup.folds) if folds and real else []):
        log(f"fold {i + 1}: holding out {len(held)} speakers ({time.time() - t0:.0f} s)")
        params = fit(held, i + 1)
        names = score_held_out(TemporalConvMouth(params), [c for c in real if c.speaker in held], rows, held_preds, log)
        fold_models["|".join(names)] = params
    qmap = quantile_map(held_preds, log) if held_preds else {}
    log(f"final model: all data ({time.time() - t0:.0f} s)")
    final = fit(set(), 0)
    final.update(qmap)
    final.update(rounding_map(final, synth))
    info = {"cache": str(cache_dir), "synthetic_clips": len(synth),
            "synthetic_seconds": round(sum(len(s.x) for s in synth) / 100, 1),
            "real_clips": [c.name for c in real], "real_speakers": len({c.speaker for c in real}),
            "real_seconds": round(sum(float(np.isfinite(c.targets[:, 0]).sum()) for c in real) / 100, 1),
            "train_seconds": round(time.time() - t0, 1)}
    return final, fold_models, rows, info


def score_held_out(model, clips: list, rows: list[dict], held_preds: list, log=print) -> list[str]:
    """Score `clips` (none of whose speakers `model` saw): appends to `rows` and `held_preds`;
    returns their names. The opening scored is the one the rig gets (closure gate applied);
    `held_preds` gets the network's opening before the gate, which the quantile map is fitted
    to (a gated zero maps to zero anyway, and the gate shuts the jaw through the press column)."""
    from talkface.lipsync.metrics import at_frames, best_lag_r, score_clip
    from talkface.lipsync.tcn import mouth_rows

    for c in clips:
        raw = model.raw_track(c.features)
        y = mouth_rows(raw)
        rows.append({"name": c.name, "speaker": c.speaker, **score_clip(c.times, c.opening, c.width, y[:, 0], y[:, 1]),
                     "r_open_ungated": best_lag_r(c.opening, at_frames(raw[:, 0], c.times))[0]})
        held_preds.append((c, raw[:, 0]))
        log(f"  {c.name:40s} r_open {rows[-1]['r_open']:5.2f}  closed {rows[-1]['closed_agreement']:.2f}"
            f"  (ungated r_open {rows[-1]['r_open_ungated']:5.2f})")
    return [c.name for c in clips]


def quantile_map(held_preds: list, log=print) -> dict:
    """Quantiles of the held-out predicted opening (each clip by the fold model that never
    saw its speaker) against those of the real raw opening (IOD), pooled over the clips."""
    from talkface.lipsync.metrics import at_frames

    preds = np.concatenate([at_frames(p, c.times) for c, p in held_preds])
    reals = np.concatenate([c.opening for c, _ in held_preds])
    q = np.linspace(0, 100, 21)
    qp = np.percentile(preds, q)
    qr = np.maximum(np.percentile(reals[np.isfinite(reals)], q), 0.0)
    qp = np.maximum.accumulate(qp + np.arange(len(q)) * 1e-6)
    log("  opening quantiles, predicted -> real: " + " ".join(f"{a:.3f}->{b:.3f}" for a, b in zip(qp[::4], qr[::4])))
    return {"q_pred": qp.astype(np.float32), "q_real": qr.astype(np.float32)}


# ------------------------------------------------------------------ calibration
def calibrate(log=print) -> dict[str, np.ndarray]:
    """Render a sweep of jaw_open / lip_spread / lip_round on the built-in portrait, measure
    each frame with the face mesh (one still image at a time, so no tracking state carries
    over), and keep the least-squares line through the origin of opening / width change
    (IOD) per unit of each coefficient."""
    from talkface.analysis import landmarks as lm
    from talkface.analysis.portrait import Portrait, mesh_points
    from talkface.engine import FaceModel
    from talkface.motion.generator import Expression, still_frame

    face = FaceModel(Portrait.builtin())

    def measure(name, values):
        op, wd = [], []
        for v in values:
            motion = still_frame(Expression(**{name: float(v)}))
            pts = mesh_points(face.render(motion))
            op.append(lm.mouth_opening(pts) if pts is not None else np.nan)
            wd.append(lm.mouth_width(pts) if pts is not None else np.nan)
        return np.array(op), np.array(wd)

    def slope(x, y):
        ok = np.isfinite(y)
        return float(np.dot(x[ok], y[ok]) / np.dot(x[ok], x[ok]))

    jaw = np.linspace(0.0, 1.2, 13)
    op, _ = measure("jaw_open", jaw)
    spread = np.linspace(0.0, 1.0, 6)
    _, wd_s = measure("lip_spread", spread)
    rnd = np.linspace(0.0, 1.0, 6)
    _, wd_r = measure("lip_round", rnd)
    op, wd_s, wd_r = op - op[0], wd_s - wd_s[0], wd_r - wd_r[0]
    log("  jaw_open -> opening: " + " ".join(f"{a:.1f}:{b:.3f}" for a, b in zip(jaw, op)))
    log("  lip_spread -> width: " + " ".join(f"{a:.1f}:{b:+.3f}" for a, b in zip(spread, wd_s)))
    log("  lip_round -> width: " + " ".join(f"{a:.1f}:{b:+.3f}" for a, b in zip(rnd, wd_r)))
    k_open, k_spread, k_round = slope(jaw[1:], op[1:]), slope(spread[1:], wd_s[1:]), slope(rnd[1:], wd_r[1:])
    if not (k_open > 0.05 and k_spread > 0.01):
        raise RuntimeError(f"calibration failed: opening {k_open:.3f} / width {k_spread:.3f} IOD per unit")
    log(f"  fitted: opening {k_open:.3f} IOD per jaw_open, width {k_spread:+.3f} per lip_spread, "
        f"{k_round:+.3f} per lip_round")
    return {"cal_jaw": jaw, "cal_jaw_open": k_open * jaw, "cal_spread": spread, "cal_spread_width": k_spread * spread,
            "cal_round": rnd, "cal_round_width": k_round * rnd}


# ------------------------------------------------------------------ command
def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TcnSetup()
    p.add_argument("--cache", help="prepared real clips (`talkface data prepare ... --out CACHE`): the real targets")
    p.add_argument("--synthetic", type=int, default=TrainSetup.n_synth, help="synthetic espeak clips; default 240")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps per network; default {d.steps}")
    p.add_argument("--channels", type=int, default=d.channels, help=f"network width; default {d.channels}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-share", type=float, default=d.synthetic_share,
                   help=f"share of batches from the synthetic clips; default {d.synthetic_share}")
    p.add_argument("--closed-weight", type=float, default=d.closed_weight,
                   help=f"weight of real frames in a clip's most-closed quarter; default {d.closed_weight}")
    p.add_argument("--folds", type=int, default=TrainSetup.folds, help="cross-validation folds, disjoint by speaker")
    p.add_argument("--no-folds", action="store_true", help="skip the cross-validation fold models")
    p.add_argument("--calibrate-only", action="store_true",
                   help="keep the trained weights, only re-measure the rig calibration (after rig/render changes)")
    p.add_argument("--heads-only", action="store_true",
                   help="keep the trained network (and its folds), refit only its linear closure and rounding heads "
                        "on its frozen features, and re-score the cross-validation")
    p.add_argument("--round-map-only", action="store_true",
                   help="keep the trained weights, refit only the rounding head's quantile map on the synthetic clips "
                        "(numpy only)")
    p.add_argument("-o", "--output", default=None, help="weights file (default: talkface/weights/lipsync.npz)")


def _recalibrate(out: Path) -> int:
    from talkface.lipsync.model import load_params

    params = load_params(out)
    if params is None:
        raise InputError(f"no weights to calibrate: {out}")
    cal = calibrate(lambda m: print(m, file=sys.stderr, flush=True))
    params.update(cal)
    np.savez_compressed(out, **params)
    record = out.with_suffix(".json")
    if record.is_file():
        rec = json.loads(record.read_text())
        rec["calibration"] = {"command": "talkface train lipsync --calibrate-only",
                              "opening_per_jaw_open": round(float(cal["cal_jaw_open"][-1] / cal["cal_jaw"][-1]), 4),
                              "width_per_lip_spread": round(float(cal["cal_spread_width"][-1]), 4),
                              "width_per_lip_round": round(float(cal["cal_round_width"][-1]), 4)}
        record.write_text(json.dumps(rec, indent=1) + "\n")
    print(str(out))
    return 0


def synthetic_round_map(params: dict, n_synth: int, seed: int, log=print) -> dict[str, np.ndarray]:
    """The rounding head's quantile map, on the synthetic clips of `seed` (the network's own)."""
    from talkface.training.lipsync_heads import rounding_map
    from talkface.training.lipsync_tcn import sequence

    log(f"synthesising {n_synth} clips (seed {seed}) for the rounding map ...")
    out = rounding_map(params, [sequence(_rows(f), y) for f, y in synthetic_set(n_synth, seed, log)])
    log("  rounding quantiles, predicted -> labelled: "
        + " ".join(f"{a:.3f}->{b:.2f}" for a, b in zip(out["q_round_pred"][12::2], out["q_round_real"][12::2])))
    return out


def _refit_round_map(out: Path) -> int:
    from talkface.lipsync.model import load_params

    params, record_path = load_params(out), out.with_suffix(".json")
    if params is None or not record_path.is_file():
        raise InputError(f"--round-map-only needs trained weights and their record: {out}")
    rec = json.loads(record_path.read_text())
    params.update(synthetic_round_map(params, int(rec["setup"]["n_synth"]), int(rec["setup"]["tcn"]["seed"]),
                                      lambda m: print(m, file=sys.stderr, flush=True)))
    np.savez_compressed(out, **params)
    rec["rounding_map"] = {"command": "talkface train lipsync --round-map-only",
                           "predicted": [round(float(v), 4) for v in params["q_round_pred"]],
                           "labelled": [round(float(v), 4) for v in params["q_round_real"]]}
    record_path.write_text(json.dumps(rec, indent=1, default=str) + "\n")
    print(str(out))
    return 0


def _refit_heads(out: Path, cache: str | None) -> int:
    from talkface.lipsync.model import load_params
    from talkface.training import lipsync_heads as heads
    from talkface.training.lipsync_heads import load_folds, refit_all

    params, folds_path, record_path = load_params(out), out.with_name(out.stem + "_folds.npz"), out.with_suffix(".json")
    if params is None or not folds_path.is_file() or not record_path.is_file() or not cache:
        raise InputError(f"--heads-only needs --cache and trained weights with their folds and record: {out}")
    rec = json.loads(record_path.read_text())

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    final, folds, rows = refit_all(cache, params, load_folds(folds_path), int(rec["setup"]["n_synth"]),
                                   int(rec["setup"]["tcn"]["seed"]), log)
    summary = cv_summary(rows)
    log(f"cross-validation, disjoint by speaker: {summary}")
    np.savez_compressed(out, **final)
    _save_folds(folds_path, folds)
    rec["cross_validation_before_heads"] = rec.get("cross_validation_before_heads", rec["cross_validation"])
    rec["cross_validation"] = {**rec["cross_validation"], "mean": summary, "clips": rows}
    rec["heads"] = {"command": "talkface train lipsync " + " ".join(sys.argv[3:]), "seconds": round(time.time() - t0, 1),
                    "what": "closure head (a small MLP, 5th output) fitted and rounding head (ridge) refitted on the "
                            "frozen network's last layer, per fold and final (talkface.training.lipsync_heads)",
                    **{k.lower(): getattr(heads, k) for k in ("CLOSED_WEIGHT", "SYNTHETIC_WEIGHT", "CLOSURE_HIDDEN",
                                                              "CLOSURE_EPOCHS", "ROUND_L2")}}
    record_path.write_text(json.dumps(rec, indent=1, default=str) + "\n")
    print(str(out))
    return 0


def cv_summary(rows: list[dict]) -> dict:
    """Means over the held-out clips (each clip once, scored by the fold that never saw its speaker)."""
    def mean(k):
        v = [r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])]
        return round(float(np.mean(v)), 4) if v else None

    return {"clips": len(rows), "speakers": len({r["speaker"] for r in rows}),
            **{k: mean(k) for k in ("r_open", "r_width", "closed_agreement")}}


def _save_folds(path: Path, fold_models: dict) -> None:
    fold = {"n_folds": np.array(len(fold_models))}
    for i, (held, params) in enumerate(fold_models.items()):
        fold[f"f{i}_held_out"] = np.array(held)
        fold.update({f"f{i}_{k}": v for k, v in params.items()})
    np.savez_compressed(path, **fold)


def run(args: argparse.Namespace) -> int:
    from talkface.lipsync.model import WEIGHTS

    out = Path(args.output) if args.output else WEIGHTS
    if args.calibrate_only:
        return _recalibrate(out)
    if args.heads_only:
        return _refit_heads(out, args.cache)
    if args.round_map_only:
        return _refit_round_map(out)
    if not args.cache:
        raise InputError("--cache is required: the folder `talkface data prepare` wrote")
    if args.synthetic < 1 or args.steps < 1 or args.channels < 1 or args.folds < 2:
        raise InputError("--synthetic, --steps and --channels must be at least 1, --folds at least 2")
    try:
        import torch  # noqa: F401  # training only: the shipped model runs on numpy
    except ImportError:
        raise InputError("training needs torch: pip install torch==2.13.0 (the CPU build)") from None
    out.parent.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    setup = TrainSetup(n_synth=args.synthetic, folds=args.folds,
                       tcn=TcnSetup(channels=args.channels, steps=args.steps, seed=args.seed,
                                    synthetic_share=args.synthetic_share, closed_weight=args.closed_weight))
    final, fold_models, rows, info = train_all(args.cache, setup, not args.no_folds, log)
    log("calibrating to the rig by rendering ...")
    cal = calibrate(log)
    np.savez_compressed(out, **final, **cal)
    if fold_models:
        _save_folds(out.with_name(out.stem + "_folds.npz"), fold_models)
    summary = cv_summary(rows) if rows else None
    if summary:
        log(f"cross-validation, disjoint by speaker: {summary}")
    record = {"command": "talkface train lipsync " + " ".join(sys.argv[3:]),
              "data": info, "setup": asdict(setup),
              "languages": sorted(CORPUS), "sung_languages": sorted(SUNG),
              "model": f"causal temporal convolution network (talkface.lipsync.tcn): {setup.tcn.channels} channels, "
                       f"dilations {list(setup.tcn.dilations)}, kernel 3, residual tanh; inputs 24 normalised frame "
                       f"features + 40 raw log-mel per 10 ms; look-ahead {setup.tcn.lookahead} frames; numpy at run time",
              "cross_validation": {"disjoint_by": "speaker", "folds": len(fold_models), "mean": summary, "clips": rows},
              "weights": out.name, "fold_weights": out.stem + "_folds.npz" if fold_models else None}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(str(out))
    return 0
