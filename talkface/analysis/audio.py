"""Audio stage: decode any audio file to 16 kHz mono, and turn samples into
per-10-ms feature frames (log-mel bands, loudness, pitch).

The feature extractor is incremental: the file pipeline and the live stream push
samples through the same `FeatureExtractor`, so both see identical features.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkface.errors import AudioError, TooLongError  # noqa: F401  (AudioError re-exported: the name stays importable here)

SAMPLE_RATE = 16000
HOP = 160            # 10 ms: features run at 100 Hz whatever the video frame rate
WINDOW = 400         # 25 ms analysis window
N_FFT = 512
N_MELS = 40
FEATURE_RATE = SAMPLE_RATE / HOP
MIN_DURATION_S = 0.05
MAX_DURATION_S = 15 * 60.0



@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @classmethod
    def silence(cls, seconds: float, sample_rate: int = SAMPLE_RATE) -> "Audio":
        return cls(np.zeros(int(round(seconds * sample_rate)), np.float32), sample_rate)


@dataclass(frozen=True)
class AudioFeatures:
    """Feature frames at FEATURE_RATE; frame k covers samples [k*HOP, k*HOP+WINDOW)."""

    log_mel: np.ndarray   # (T, N_MELS) float32, natural log of mel power
    rms_db: np.ndarray    # (T,) float32, frame loudness in dBFS
    pitch_hz: np.ndarray  # (T,) float32, 0 where unvoiced

    def __len__(self) -> int:
        return len(self.rms_db)

    @staticmethod
    def concatenate(parts: list["AudioFeatures"]) -> "AudioFeatures":
        if not parts:
            return AudioFeatures(np.zeros((0, N_MELS), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))
        return AudioFeatures(
            np.concatenate([p.log_mel for p in parts]),
            np.concatenate([p.rms_db for p in parts]),
            np.concatenate([p.pitch_hz for p in parts]),
        )


def frame_time(k: np.ndarray | int) -> np.ndarray | float:
    """Centre time in seconds of feature frame k."""
    return (np.asarray(k) * HOP + WINDOW / 2) / SAMPLE_RATE


def load_audio(path: str | Path, max_duration: float = MAX_DURATION_S, rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream of any file FFmpeg reads (wav, mp3, m4a, flac, ogg, mp4...)
    into mono float32 at `rate` (16 kHz for analysis; a higher rate for the output track)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise AudioError(f"no audio stream in {path}")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = []
            total = 0
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    data = out.to_ndarray().reshape(-1)
                    chunks.append(data)
                    total += len(data)
                if total > (max_duration + 1) * rate:
                    raise TooLongError(f"audio is longer than the {max_duration:g} s limit: {path}")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except Exception as exc:  # FFmpeg's errors are many and specific; the user needs one line
        raise AudioError(f"cannot read audio {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return checked_audio(samples, rate, str(path), rate=rate)


def checked_audio(samples: np.ndarray, sample_rate: int, name: str = "audio", rate: int = SAMPLE_RATE) -> Audio:
    """Validate and resample raw samples to `rate` (the pipeline's 16 kHz by default)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:  # (n, channels) as soundfile gives it
        samples = samples.mean(axis=1)
    if sample_rate != rate and len(samples):
        samples = resample(samples, sample_rate, rate)
    if len(samples) < MIN_DURATION_S * rate:
        raise AudioError(f"audio is empty or shorter than {MIN_DURATION_S * 1000:.0f} ms: {name}")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"audio contains invalid samples: {name}")
    return Audio(np.clip(samples, -1.0, 1.0), rate)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(samples, rate_out // g, rate_in // g).astype(np.float32)


def _mel_filterbank() -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    mels = np.linspace(hz_to_mel(60.0), hz_to_mel(7600.0), N_MELS + 2)
    hz = mel_to_hz(mels)
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    fb = np.zeros((N_MELS, len(bins)), np.float32)
    for i in range(N_MELS):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        up = (bins - lo) / (mid - lo)
        down = (hi - bins) / (hi - mid)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
    return fb


_MEL_FB = _mel_filterbank()
_HANN = np.hanning(WINDOW).astype(np.float32)
_PITCH_MIN_HZ, _PITCH_MAX_HZ = 70.0, 600.0


def _pitch(frames: np.ndarray) -> np.ndarray:
    """Autocorrelation pitch per frame (0 when unvoiced). Coarse, but cheap and causal:
    it only feeds prosody (nods, brows), never the lips."""
    x = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(x, 2 * N_FFT, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :WINDOW]
    lag_lo = int(SAMPLE_RATE / _PITCH_MAX_HZ)
    lag_hi = int(SAMPLE_RATE / _PITCH_MIN_HZ)
    lag_hi = min(lag_hi, WINDOW - 1)
    energy = ac[:, 0] + 1e-9
    # normalise for the shrinking overlap at long lags
    norm = ac[:, lag_lo:lag_hi] / (energy[:, None] * (1.0 - np.arange(lag_lo, lag_hi) / WINDOW)[None, :])
    best = norm.argmax(axis=1)
    strength = norm[np.arange(len(norm)), best]
    f0 = SAMPLE_RATE / (best + lag_lo)
    voiced = (strength > 0.45) & (energy > WINDOW * 1e-6)
    return np.where(voiced, f0, 0.0).astype(np.float32)


def compute_frames(frames: np.ndarray) -> AudioFeatures:
    """Features for a batch of raw windows, shape (T, WINDOW)."""
    if len(frames) == 0:
        return AudioFeatures.concatenate([])
    windowed = frames * _HANN
    power = np.abs(np.fft.rfft(windowed, N_FFT, axis=1)) ** 2
    log_mel = np.log(power @ _MEL_FB.T + 1e-8).astype(np.float32)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    rms_db = (20 * np.log10(rms + 1e-6)).astype(np.float32)
    return AudioFeatures(log_mel, rms_db, _pitch(frames))


class FeatureExtractor:
    """Incremental feature extraction: push samples in chunks of any size, get the
    feature frames that became complete. Identical output to one big push."""

    def __init__(self) -> None:
        self._buffer = np.zeros(0, np.float32)
        self.frames_emitted = 0

    def push(self, samples: np.ndarray) -> AudioFeatures:
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        n = (len(self._buffer) - WINDOW) // HOP + 1 if len(self._buffer) >= WINDOW else 0
        if n <= 0:
            return AudioFeatures.concatenate([])
        idx = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
        feats = compute_frames(self._buffer[idx])
        self._buffer = self._buffer[n * HOP:]
        self.frames_emitted += n
        return feats

    def flush(self) -> AudioFeatures:
        """Pad the tail with silence so the last samples get a frame too."""
        if len(self._buffer) == 0:
            return AudioFeatures.concatenate([])
        pad = WINDOW - HOP + (-len(self._buffer)) % HOP
        out = self.push(np.zeros(pad, np.float32))
        self._buffer = np.zeros(0, np.float32)
        return out


def extract_features(audio: Audio) -> AudioFeatures:
    ex = FeatureExtractor()
    return AudioFeatures.concatenate([ex.push(audio.samples), ex.flush()])
