"""`talkface train lipsync`: train the audio->mouth MLP (talkface/lipsync_model.py).

Data:
* real talking-face videos (--videos): the mouth tracked on every frame
  (talkface.analysis.tracking, cached) is the target, interpolated to the 100 Hz feature frames;
  inner-lip opening and mouth-width change, both in inter-ocular units.
* re-voiced copies of the real videos (for the linear branch): the same audio resampled
  (another pitch, formants and tempo, the face targets time-scaled with it), through
  another room, channel and noise; more voices saying real speech with real mouths.
* synthetic speech (talkface.analysis.speech, espeak-ng, many languages) with known phoneme
  timing: phoneme -> viseme targets (opening, width change, rounding, pressing) with
  coarticulation smoothing, augmented (voice variant, speaking rate, pitch, resampling
  that shifts pitch and formants, reverb, band limits, noise and babble, gain, breaths,
  pauses) so the model transfers to real voices.

Steps: (1) an MLP on synthetic data alone, whose predictions estimate each real video's
audio-to-face offset (some clips are 0.1-0.35 s out of sync); (2) per fold, an ensemble of
MLPs (seeds) on synthetic + offset-corrected real data (real opening and width scaled per
speaker), then a ridge branch on raw log-mel fitted to the real videos and their re-voiced
copies; (3) a quantile map from the held-out predictions to the real openings; (4) the
final model on everything; (5) the rig calibration, measured by rendering
(`--calibrate-only` redoes just this after rig or renderer changes).

Every held-out figure is leave-one-video-out (videos of the same footage held out
together); the per-fold models are shipped beside the main one (lipsync_folds.npz) so
`talkface eval lipsync` can score each real video with a model that never saw it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from talkface.analysis.audio import AudioFeatures

# Same footage in two files: always on the same side of a split.
SAME_FOOTAGE = ({"video_woman_frontal_03", "video_woman_hdtf_06"},)

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
    """(n_frames, 4) opening / width change / round / press at the 100 Hz feature frames.
    Coarticulation: weakly specified consonants take the mouth of the surrounding vowels; a
    Gaussian blur (30 ms) smooths transitions; the mouth leads the sound by `lead_s`."""
    from scipy.ndimage import gaussian_filter1d

    from talkface.analysis.audio import frame_time

    t = frame_time(np.arange(n_frames)) + lead_s
    raw = np.zeros((n_frames, 4))
    strength = np.ones(n_frames)
    bilabial = np.zeros(n_frames, bool)
    for p in phonemes:
        lo, hi = np.searchsorted(t, [p.start * time_scale, p.end * time_scale])
        o, w, r, pr, s = viseme(p.phoneme)
        raw[lo:hi] = (o, w, r, pr)
        strength[lo:hi] = s
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
    return out.astype(np.float32)


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
    y = np.zeros((len(feats), 4), np.float32)
    y[:, 3] = 0.15
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


# ------------------------------------------------------------------ real videos
REAL_OPEN_MEDIAN, REAL_OPEN_STD, REAL_WIDTH_STD = 0.11, 0.06, 0.03  # IOD: typical of the real videos


def real_clip(path: Path, cache: str | None = None):
    """(features, targets (T,4) with NaN where unknown, name) for one real video."""
    from talkface.analysis.audio import extract_features, frame_time, load_audio
    from talkface.evaluation.lipsync_eval import real_mouth

    m = real_mouth(path, cache)
    feats = extract_features(load_audio(path))
    t = frame_time(np.arange(len(feats)))
    ok = np.isfinite(m["opening"]) & np.isfinite(m["width"])
    y = np.full((len(feats), 4), np.nan, np.float32)
    inside = (t >= m["times"][ok][0]) & (t <= m["times"][ok][-1])
    # speakers differ in how wide they open: bring each video to a common scale (the
    # scores are correlations, and the rig wants one typical amplitude)
    op, wd = m["opening"][ok], m["width"][ok]
    op = REAL_OPEN_MEDIAN + (op - np.median(op)) / (np.std(op) + 1e-6) * REAL_OPEN_STD
    wd = (wd - np.median(wd)) / (np.std(wd) + 1e-6) * REAL_WIDTH_STD
    y[inside, 0] = np.interp(t[inside], m["times"][ok], op)
    y[inside, 1] = np.interp(t[inside], m["times"][ok], wd)
    return feats, y, path.stem


@dataclass(frozen=True)
class Revoiced:
    """A real video's audio played at another rate (pitch, formants and tempo shift together,
    as if another vocal tract spoke it), through another room, channel and noise; its face
    targets time-scaled alongside. Eight speakers are few: this multiplies the voices the
    model hears saying real speech with real mouths, not espeak's. Used by the linear
    branch (held-out r +0.005..0.01, closed agreement +0.01); given to the MLP as well they
    changed nothing (0.310 -> 0.310), so the MLP goes without."""

    features: "AudioFeatures"
    targets: np.ndarray   # (T, 4) like real_clip's, NaN where unknown
    name: str             # the video it came from: held out with it
    rate: float           # playback rate (> 1: faster, higher)


def revoiced_set(real: list, videos: Path, copies: int, seed: int) -> list[Revoiced]:
    from talkface.analysis.audio import SAMPLE_RATE, checked_audio, extract_features, frame_time, load_audio, resample

    rng = np.random.default_rng(seed + 7)   # a stream of its own: the synthetic clips' stay as they were
    out = []
    for _, y, name in real:
        original = load_audio(Path(videos) / f"{name}.mp4").samples.astype(np.float64)
        t_video = frame_time(np.arange(len(y)))
        for _ in range(copies):
            rate = rng.uniform(0.86, 1.16)   # a little wider than the synthetic voices' range
            x = resample(original, int(round(SAMPLE_RATE * rate)), SAMPLE_RATE).astype(np.float64)
            x = _room_and_channel(x, rng, SAMPLE_RATE)
            if rng.random() < 0.35:
                x = _add_noise(x, rng, float(np.std(x)), rng.uniform(5, 30))
            feats = extract_features(checked_audio(_random_gain(x, rng), SAMPLE_RATE))
            t = frame_time(np.arange(len(feats))) * rate   # frame k here plays the video's time t
            targets = np.full((len(feats), 4), np.nan, np.float32)
            for j in range(2):
                ok = np.isfinite(y[:, j])
                inside = (t >= t_video[ok][0]) & (t <= t_video[ok][-1])
                targets[inside, j] = np.interp(t[inside], t_video[ok], y[ok, j])
            out.append(Revoiced(feats, targets, name, float(rate)))
    return out


def groups_of(names: list[str]) -> list[list[str]]:
    groups, seen = [], set()
    for n in names:
        if n in seen:
            continue
        g = [n]
        for same in SAME_FOOTAGE:
            if n in same:
                g = sorted(x for x in names if x in same)
        seen.update(g)
        groups.append(g)
    return groups


# ------------------------------------------------------------------ model fitting
def design(feats, y=None, shift: int = 0):
    """Stacked model inputs for one clip (fresh stream normaliser), and targets shifted by
    `shift` frames (positive: the face lags the audio)."""
    from talkface.lipsync.model import FRAME_DIM, LOOKAHEAD, FrameNormaliser, silence_frame, stack_context

    pad = silence_frame()[:FRAME_DIM]
    frames = np.concatenate([FrameNormaliser()(feats), np.repeat(pad[None], LOOKAHEAD, axis=0)])  # >= max(OFFSETS)
    x = stack_context(frames, pad, 0, len(feats))
    if y is not None and shift:
        y = np.roll(y, -shift, axis=0)
        if shift > 0:
            y[-shift:] = np.nan
        else:
            y[:-shift] = np.nan
    return x, y


def fit_mlp(x: np.ndarray, y: np.ndarray, w: np.ndarray, hidden=(96, 48), epochs: int = 12, seed: int = 0,
            lr: float = 2e-3, l2: float = 1e-4, batch: int = 256, noise: float = 0.1, log=None) -> dict:
    """Masked, weighted MSE (NaN targets are ignored) with Adam."""
    rng = np.random.default_rng(seed)
    x_mean = x.mean(axis=0)
    x_std = x.std(axis=0) + 1e-3
    xs = ((x - x_mean) / x_std).astype(np.float32)
    mask = np.isfinite(y).astype(np.float32) * w[:, None].astype(np.float32)
    yt = np.nan_to_num(y).astype(np.float32)
    y_scale = np.array([0.1, 0.05, 0.5, 0.5], np.float32)  # make the four outputs count alike
    sizes = [x.shape[1], *hidden, y.shape[1]]
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [(rng.standard_normal((a, b)) * np.sqrt(1.0 / a)).astype(np.float32), np.zeros(b, np.float32)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    n = len(xs)
    n_layers = len(sizes) - 1
    for epoch in range(epochs):
        order = rng.permutation(n)
        rate = lr * (0.5 * (1 + np.cos(np.pi * epoch / epochs)))
        total = 0.0
        for s in range(0, n, batch):
            idx = order[s:s + batch]
            h = [xs[idx] + rng.normal(0, noise, (len(idx), xs.shape[1])).astype(np.float32)]
            for i in range(n_layers):
                z = h[-1] @ params[2 * i] + params[2 * i + 1]
                h.append(np.tanh(z) if i < n_layers - 1 else z)
            err = (h[-1] - yt[idx]) / y_scale
            mk = mask[idx]
            total += float((err ** 2 * mk).sum())
            g = 2 * err * mk / y_scale / max(1.0, float(mk.sum()) / y.shape[1])
            grads = [None] * len(params)
            for i in reversed(range(n_layers)):
                grads[2 * i] = h[i].T @ g + l2 * params[2 * i]
                grads[2 * i + 1] = g.sum(axis=0)
                if i:
                    g = (g @ params[2 * i].T) * (1 - h[i] ** 2)
            step += 1
            for j, (p, gr) in enumerate(zip(params, grads)):
                m[j] = 0.9 * m[j] + 0.1 * gr
                v[j] = 0.999 * v[j] + 0.001 * gr * gr
                p -= rate * (m[j] / (1 - 0.9 ** step)) / (np.sqrt(v[j] / (1 - 0.999 ** step)) + 1e-8)
        if log:
            log(f"    epoch {epoch + 1}/{epochs} loss {total / max(1.0, mask.sum()):.4f}")
    from talkface.lipsync.model import OFFSETS, SMOOTH

    out = {"x_mean": x_mean.astype(np.float32), "x_std": x_std.astype(np.float32), "n_layers": np.array(n_layers),
           "offsets": np.array(OFFSETS), "smooth": np.array(SMOOTH, np.float32)}
    for i in range(n_layers):
        out[f"W{i}"], out[f"b{i}"] = params[2 * i], params[2 * i + 1]
    return out


def _stack(clips, shifts=None):
    xs, ys = [], []
    for i, (feats, y) in enumerate(clips):
        x, yy = design(feats, y, 0 if shifts is None else shifts[i])
        xs.append(x)
        ys.append(yy)
    return np.concatenate(xs), np.concatenate(ys)


def best_shift(model_params: dict, feats, y, max_shift: int = 12) -> int:
    """Frames by which the real face lags the audio, by the model's own prediction."""
    from talkface.lipsync.model import MLP

    x, _ = design(feats)
    p = MLP(model_params)(x)[:, 0]
    best, best_r = 0, -2.0
    ok = np.isfinite(y[:, 0])
    for s in range(-max_shift, max_shift + 1):
        a = y[:, 0]
        b = np.roll(p, s)
        sel = ok.copy()
        if s > 0:
            sel[:s] = False
        elif s < 0:
            sel[s:] = False
        r = np.corrcoef(a[sel], b[sel])[0, 1]
        if r > best_r:
            best, best_r = s, r
    return best


RIDGE_LAMBDA = 300.0   # relative to 1 % of the training rows; 100 scored alike (0.336 vs 0.333) but, fitted
                       # to speech alone, it pulled sung vowels a quarter more shut
RIDGE_ALPHA = 0.7      # share of the linear branch in the opening while speaking


def fit_ridge(clips, mlp_params: dict, lam: float = RIDGE_LAMBDA, alpha: float = RIDGE_ALPHA) -> dict:
    """The linear branch: ridge regression from raw log-mel (+deltas) context to the real opening,
    on real videos only; scaled to the MLP's spread so the blend keeps the MLP's units."""
    from talkface.lipsync.model import FrameNormaliser, LearnedMouth, buffer_rows, ridge_inputs

    model = LearnedMouth(mlp_params)
    xs, ys, ps = [], [], []
    for feats, y in clips:
        h = model.history
        buf = np.concatenate([np.repeat(model.pad[None], h, axis=0), buffer_rows(feats, FrameNormaliser()),
                              np.repeat(model.pad[None], model.lookahead_frames, axis=0)])
        rows = np.arange(len(feats)) + h
        ok = np.isfinite(y[:, 0])
        xs.append(ridge_inputs(buf, rows)[ok])
        ys.append(y[ok, 0])
        ps.append(model.rows(buf, rows)[ok, 0])
    x, y, pm = np.concatenate(xs).astype(np.float64), np.concatenate(ys), np.concatenate(ps)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs_ = (x - mean) / std
    w = np.linalg.solve(xs_.T @ xs_ + lam * len(xs_) / 100 * np.eye(xs_.shape[1]), xs_.T @ (y - y.mean()))
    lin = xs_ @ w
    return {"r_mean": mean.astype(np.float32), "r_std": std.astype(np.float32), "r_w": w.astype(np.float32),
            "r_gain": np.array(pm.std() / (lin.std() + 1e-9)), "r_center": np.array(pm.mean()),
            "r_alpha": np.array(alpha)}


@dataclass(frozen=True)
class TrainSetup:
    n_synth: int = 240         # espeak clips
    seed: int = 0
    epochs: int = 14
    members: int = 2           # MLPs (seeds) averaged per model: held-out r varied by 0.03 between seeds
    revoiced: int = 4          # re-voiced copies of each real video, for the linear branch (Revoiced)
    real_weight: float = 10.0  # per frame, synthetic frames weigh 1 (3 -> 10: held-out r 0.310 -> 0.327)


def train_all(videos: Path | None, setup: TrainSetup, cache: str | None, folds: bool, log=print):
    t0 = time.time()
    log(f"synthesising {setup.n_synth} clips ...")
    synth = synthetic_set(setup.n_synth, setup.seed, log)
    log(f"  {sum(len(f) for f, _ in synth) / 100:.0f} s of synthetic speech ({time.time() - t0:.0f} s)")
    real, revoiced = [], []
    if videos is not None:
        for p in sorted(Path(videos).glob("*.mp4")):
            real.append(real_clip(p, cache))
        log(f"  {len(real)} real videos, {sum(len(f) for f, _, _ in real) / 100:.0f} s")
        revoiced = revoiced_set(real, videos, setup.revoiced, setup.seed)
        log(f"  {len(revoiced)} re-voiced copies, {sum(len(r.features) for r in revoiced) / 100:.0f} s")
    xs_s, ys_s = _stack(synth)

    def fit(held_out: set[str]):
        train = [r for r in real if r[2] not in held_out]
        train_rev = [r for r in revoiced if r.name not in held_out]
        xr, yr = _stack([(f, y) for f, y, _ in train], [shifts[r[2]] for r in train])
        x, y = np.concatenate([xs_s, xr]), np.concatenate([ys_s, yr])
        w = np.concatenate([np.ones(len(xs_s)), np.full(len(xr), setup.real_weight)]).astype(np.float32)
        from talkface.lipsync.model import stack_members

        params = stack_members([fit_mlp(x, y, w, epochs=setup.epochs, seed=setup.seed + k, noise=0.3)
                                for k in range(setup.members)])
        # the linear branch on the videos' own alignment (trained on shifted targets it scored lower)
        params.update(fit_ridge([(f, y) for f, y, _ in train] + [(r.features, r.targets) for r in train_rev], params))
        return params

    log("stage 1: synthetic only (to align the real videos' audio and video)")
    base = fit_mlp(xs_s, ys_s, np.ones(len(xs_s), np.float32), epochs=setup.epochs, seed=setup.seed, noise=0.3)
    shifts = {name: best_shift(base, f, y, max_shift=35) for f, y, name in real}
    log("  face-vs-audio shifts (10 ms frames): " + ", ".join(f"{k}={v}" for k, v in shifts.items()))
    fold_models = {}
    if folds and real:
        for g in groups_of([name for _, _, name in real]):
            log(f"fold: holding out {', '.join(g)}")
            fold_models["|".join(g)] = fit(set(g))
    qmap = {}
    if fold_models:
        qmap = quantile_map(fold_models, real, Path(videos), cache, log)
    log("final model: all data")
    final = fit(set()) if real else base
    final.update(qmap)
    return final, fold_models, base, shifts, {"synthetic_clips": len(synth),
                                              "synthetic_seconds": round(sum(len(f) for f, _ in synth) / 100, 1),
                                              "real_videos": [r[2] for r in real],
                                              "real_seconds": round(sum(len(f) for f, _, _ in real) / 100, 1),
                                              "revoiced_copies": len(revoiced),
                                              "revoiced_seconds": round(sum(len(r.features) for r in revoiced) / 100, 1),
                                              "train_seconds": round(time.time() - t0, 1)}


def quantile_map(fold_models: dict, real: list, videos: Path, cache: str | None, log=print) -> dict:
    """Quantiles of the held-out predicted opening (each video by the fold model that never
    saw it) against those of the real raw opening (IOD, closed = 0), pooled over the videos."""
    from talkface.evaluation.lipsync_eval import real_mouth
    from talkface.lipsync.model import LearnedMouth

    preds, reals = [], []
    for held, params in fold_models.items():
        model = LearnedMouth(params)
        for feats, y, name in real:
            if name in held.split("|"):
                ok = np.isfinite(y[:, 0])
                preds.append(model.measured_track(feats)[ok, 0])
        for name in held.split("|"):
            reals.append(real_mouth(videos / f"{name}.mp4", cache)["opening"])
    q = np.linspace(0, 100, 21)
    qp = np.percentile(np.concatenate(preds), q)
    qr = np.maximum(np.percentile(np.concatenate([r[np.isfinite(r)] for r in reals]), q), 0.0)
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
    from talkface.engine import FaceModel
    from talkface.motion.generator import Expression, still_frame
    from talkface.analysis.portrait import Portrait, mesh_points

    face = FaceModel(Portrait.builtin())

    def measure(name, values):
        op, wd = [], []
        for v in values:
            motion = still_frame(Expression(**{name: float(v)}))
            pts = mesh_points(face.renderer.render(face.rig.targets(motion)))
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
    p.add_argument("--videos", help="folder of real talking-face videos with their own audio (targets)")
    p.add_argument("--synthetic", type=int, default=240, help="synthetic espeak clips; default 240")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--members", type=int, default=TrainSetup.members, help="MLPs (seeds) averaged per model")
    p.add_argument("--revoice", type=int, default=TrainSetup.revoiced,
                   help="re-voiced copies (rate, room, channel, noise) of each real video")
    p.add_argument("--no-folds", action="store_true", help="skip the leave-one-video-out fold models")
    p.add_argument("--calibrate-only", action="store_true",
                   help="keep the trained weights, only re-measure the rig calibration (after rig/render changes)")
    p.add_argument("--cache", help="tracking cache folder (default ~/.cache/talkface/lipsync)")
    p.add_argument("-o", "--output", default=None, help="weights file (default: talkface/weights/lipsync.npz)")


def _recalibrate(out: Path) -> int:
    from talkface.lipsync.model import load_params

    params = load_params(out)
    if params is None:
        raise ValueError(f"no weights to calibrate: {out}")
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


def run(args: argparse.Namespace) -> int:
    from talkface.lipsync.model import WEIGHTS

    out = Path(args.output) if args.output else WEIGHTS
    if args.calibrate_only:
        return _recalibrate(out)
    if args.videos and not any(Path(args.videos).glob("*.mp4")):
        raise ValueError(f"no .mp4 videos in {args.videos}")
    if args.synthetic < 1:
        raise ValueError("--synthetic must be at least 1")
    out.parent.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.members < 1 or args.revoice < 0:
        raise ValueError("--members must be at least 1 and --revoice at least 0")
    setup = TrainSetup(n_synth=args.synthetic, seed=args.seed, epochs=args.epochs, members=args.members,
                       revoiced=args.revoice)
    final, fold_models, _, shifts, info = train_all(Path(args.videos) if args.videos else None, setup, args.cache,
                                                    not args.no_folds, log)
    log("calibrating to the rig by rendering ...")
    cal = calibrate(log)
    np.savez_compressed(out, **final, **cal)
    if fold_models:
        fold = {}
        for i, (held, params) in enumerate(fold_models.items()):
            fold[f"f{i}_held_out"] = np.array(held)
            for k, v in params.items():
                fold[f"f{i}_{k}"] = v
        fold["n_folds"] = np.array(len(fold_models))
        np.savez_compressed(out.with_name(out.stem + "_folds.npz"), **fold)
    record = {"command": "talkface train lipsync " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "talkface train lipsync",
              "args": {k: v for k, v in vars(args).items() if k != "func"},
              "data": info, "face_audio_shifts_frames": shifts,
              "languages": sorted(CORPUS), "sung_languages": sorted(SUNG),
              "setup": asdict(setup),
              "model": f"{setup.members} MLPs (tanh, hidden (96, 48), seeds {setup.seed}..{setup.seed + setup.members - 1}) "
                       "averaged, inputs 16 offsets x 23 normalised frame features (+6 frames ahead), "
                       "outputs smoothed over +-2 frames; opening blended with a ridge branch on raw log-mel "
                       f"(+deltas, lambda {RIDGE_LAMBDA:g}) trained on the real videos and their {setup.revoiced} "
                       "re-voiced copies each; look-ahead 8 frames",
              "weights": out.name, "fold_weights": out.stem + "_folds.npz" if fold_models else None}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(str(out))
    return 0
