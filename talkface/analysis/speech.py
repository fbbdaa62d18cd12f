"""Offline text-to-speech with phoneme timing.

Uses the espeak-ng shared library and voice data shipped inside the PyPI
package ``espeakng-loader`` through ctypes, so it needs no system espeak and
no subprocess. The phoneme timings drive the mouth shapes of the talking face.
"""

from __future__ import annotations

import ctypes
import difflib
import os
import threading
from dataclasses import dataclass

import numpy as np

from talkface.errors import SpeechError  # noqa: F401  (re-exported: the name stays importable here)

__all__ = ["PhonemeEvent", "SpeechError", "SpokenText", "list_voices", "speak"]



@dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme and the time span it occupies in the audio."""

    start: float  # seconds
    end: float  # seconds
    phoneme: str  # espeak phoneme mnemonic without stress mark, e.g. "a", "m", "_:" for pause


# eq=False: the generated __eq__/__hash__ would compare/hash the numpy array,
# which raises; identity semantics are what a result object needs.
@dataclass(frozen=True, eq=False)
class SpokenText:
    """Synthesised speech and its phoneme timeline."""

    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int  # espeak's native rate (22050)
    phonemes: tuple[PhonemeEvent, ...]


# --- espeak-ng API (speak_lib.h, API revision 12) -----------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # like retrieval mode, but espeak_Synth returns when done
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # without it a data error calls exit(1) and kills the server
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_EE_OK = 0
_BUFFER_MS = 250  # audio per callback; bigger means fewer trips into Python
_RATE_RANGE = (80, 450)  # espeakRATE_MINIMUM .. espeakRATE_MAXIMUM
_PITCH_RANGE = (0, 100)
_STRESS_MARKS = "',"  # espeak prefixes stressed vowels with ' (primary) or , (secondary)
_COMMON_VOICES = ("en", "en-us", "de", "fr", "es", "it", "ru", "ja", "zh")


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),  # WORD and SENTENCE events
        ("name", ctypes.c_char_p),  # MARK and PLAY events
        ("string", ctypes.c_char * 8),  # PHONEME events: mnemonic packed in place, not a pointer
    ]


class _Event(ctypes.Structure):
    # 40 bytes on 64-bit Linux: six 4-byte ints, then the pointer and the union,
    # both 8-byte aligned (id at offset 32).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this espeak_Synth call
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        # A list of (priority byte, NUL-terminated code) pairs ending in an empty
        # string, so it must stay a raw pointer: c_char_p would stop at the first NUL.
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def _parse_languages(ptr: int | None) -> list[str]:
    codes = []
    while ptr:
        if ctypes.string_at(ptr, 1) == b"\0":  # priority byte 0 never occurs: end of list
            break
        code = ctypes.string_at(ptr + 1)
        if not code:
            break
        codes.append(code.decode("utf-8", "replace"))
        ptr += 2 + len(code)
    return codes


class _Espeak:
    """The loaded library and the state of the synthesis in progress.

    espeak-ng keeps all of its state in globals, so there is exactly one of
    these per process and every method must be called with _LOCK held.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader

            data_path = espeakng_loader.get_data_path()
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except (ImportError, OSError, RuntimeError) as exc:
            raise SpeechError(f"cannot load espeak-ng: {exc}") from exc
        self._declare(lib)
        self._lib = lib
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            _BUFFER_MS,
            data_path.encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            raise SpeechError(f"espeak-ng failed to initialise with data at {data_path}")
        self.sample_rate = int(rate)
        # Keep the ctypes thunk alive for as long as the library may call it.
        self._callback = _SynthCallback(self._on_synth)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._error: BaseException | None = None

        # Lookups are case-insensitive: lower-case key -> espeak's own spelling.
        self.languages: dict[str, str] = {}  # language code -> code
        self._names: dict[str, str] = {}  # voice name or identifier -> identifier
        voices = lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            v = voices[i].contents
            ident = v.identifier.decode()
            for code in _parse_languages(v.languages):
                self.languages.setdefault(code.lower(), code)
            self._names[ident.lower()] = ident
            self._names[v.name.decode("utf-8", "replace").lower()] = ident
            i += 1
        if not self.languages:
            # With DONT_EXIT espeak_Initialize "succeeds" even if the data is unusable.
            raise SpeechError(f"espeak-ng found no voices in {data_path}")
        variants_dir = os.path.join(data_path, "voices", "!v")
        variants = os.listdir(variants_dir) if os.path.isdir(variants_dir) else []
        self._variants = {f.lower(): f for f in variants}  # "+f3", "+m2", ...
        self._by_language: dict[str, str] = {}  # language code -> identifier, filled on use

    @staticmethod
    def _declare(lib: ctypes.CDLL) -> None:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int

    def _on_synth(self, wav, n_samples, events) -> int:
        # An exception escaping a ctypes callback is only printed, so keep it
        # and abort synthesis (return 1) instead.
        try:
            if wav and n_samples > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
            if events:
                i = 0
                while events[i].type != _EVENT_LIST_TERMINATED:
                    ev = events[i]
                    if ev.type == _EVENT_PHONEME:
                        # c_char*8 .value stops at the NUL, or takes all 8 bytes if there is none.
                        self._events.append((ev.audio_position, ev.id.string.decode("utf-8", "replace")))
                    i += 1
            return 0
        except BaseException as exc:  # noqa: BLE001 - re-raised by synthesize()
            self._error = exc
            return 1

    def _resolve(self, voice: str) -> str | None:
        """Voice identifier (with "+variant") for a language code, voice name or identifier."""
        base, plus, variant = voice.strip().lower().partition("+")
        if plus:
            if variant not in self._variants:
                return None
            variant = "+" + self._variants[variant]
        if base in self.languages:
            if base not in self._by_language:
                # espeak ranks the voices for a language; take its first choice.
                code = ctypes.create_string_buffer(self.languages[base].encode())
                spec = _Voice(languages=ctypes.addressof(code))  # `code` outlives the call
                found = self._lib.espeak_ListVoices(ctypes.byref(spec))
                if not found[0]:
                    return None
                self._by_language[base] = found[0].contents.identifier.decode()
            return self._by_language[base] + variant
        # Only names espeak listed reach SetVoiceByName, which would otherwise
        # also open arbitrary file paths.
        ident = self._names.get(base)
        return None if ident is None else ident + variant

    def select_voice(self, voice: str) -> None:
        ident = self._resolve(voice)
        if ident is None or self._lib.espeak_SetVoiceByName(ident.encode()) != _EE_OK:
            raise SpeechError(f"unknown voice {voice!r} (try one of: {', '.join(self._suggest(voice))})")

    def _suggest(self, voice: str) -> list[str]:
        close = difflib.get_close_matches(voice.strip().lower(), self.languages, n=4)
        common = [c for c in _COMMON_VOICES if c in self.languages and c not in close]
        return close + common

    def synthesize(self, text: str, rate_wpm: int, pitch: int) -> SpokenText:
        lib = self._lib
        # Parameters persist across voice changes in espeak; set them every call
        # so one request never inherits another's settings.
        if lib.espeak_SetParameter(_PARAM_RATE, rate_wpm, 0) != _EE_OK:
            raise SpeechError(f"espeak-ng rejected rate {rate_wpm}")
        if lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0) != _EE_OK:
            raise SpeechError(f"espeak-ng rejected pitch {pitch}")
        # Re-register every time: other code in the process (e.g. a phonemizer)
        # may share this library and swap the callback.
        lib.espeak_SetSynthCallback(self._callback)
        self._chunks, self._events, self._error = [], [], None
        data = text.encode("utf-8", "replace") + b"\0"
        try:
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if self._error is not None:
                raise SpeechError(f"speech callback failed: {self._error!r}") from self._error
            if status != _EE_OK:
                raise SpeechError(f"espeak-ng synthesis failed (status {status})")
            chunks, events = self._chunks, self._events
        finally:
            self._chunks, self._events, self._error = [], [], None
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        samples = pcm.astype(np.float32) / np.float32(32768.0)
        phonemes = _timeline(events, len(samples) / self.sample_rate)
        if not any(not p.phoneme.startswith("_") for p in phonemes):
            raise SpeechError(f"nothing speakable in text {text[:40]!r}")
        return SpokenText(samples=samples, sample_rate=self.sample_rate, phonemes=phonemes)


def _timeline(events: list[tuple[int, str]], duration: float) -> tuple[PhonemeEvent, ...]:
    """Turn (ms, mnemonic) marks into spans that tile the audio."""
    marks = []
    for ms, name in events:
        # "(en)"/"(ja)" mark a language switch (e.g. kanji read by the English
        # voice), not a sound: drop them so the previous phoneme covers the gap.
        if not name or name.startswith("("):
            continue
        # Stress belongs to the vowel, not to its identity: "'aI" -> "aI".
        marks.append((min(ms / 1000.0, duration), name.lstrip(_STRESS_MARKS) or name))
    marks.sort(key=lambda m: m[0])  # stable: keeps espeak's order for equal times
    spans = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else duration
        # Below the 1 ms resolution of espeak's marks there is nothing to show:
        # a mark immediately replaced, or the final "_" at the very end.
        if end - start >= 0.001:
            spans.append(PhonemeEvent(start=start, end=end, phoneme=name))
    if spans and spans[-1].end < duration:  # the dropped final mark: last span runs to the end
        spans[-1] = PhonemeEvent(start=spans[-1].start, end=duration, phoneme=spans[-1].phoneme)
    return tuple(spans)


_LOCK = threading.Lock()  # espeak-ng is one global state machine: one caller at a time
_ENGINE: _Espeak | None = None


def _engine() -> _Espeak:
    """The process-wide engine, created on first use (call with _LOCK held)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE


def _check_int(name: str, value: int, bounds: tuple[int, int]) -> int:
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or not bounds[0] <= value <= bounds[1]:
        raise SpeechError(f"{name} must be an integer in {bounds[0]}..{bounds[1]}, got {value!r}")
    return int(value)


def speak(text: str, voice: str = "en", rate_wpm: int = 165, pitch: int = 50) -> SpokenText:
    """Synthesise ``text`` and return the audio with per-phoneme timing.

    ``voice`` is a language code from list_voices() ("en", "de", "zh", ...),
    an espeak voice name or identifier ("English (America)", "gmw/en-US"),
    optionally with a variant suffix such as "+f3" (female) or "+m2".
    ``rate_wpm`` is words per minute (80..450), ``pitch`` 0..100 (50 = voice default).
    """
    if not isinstance(text, str):
        raise SpeechError(f"text must be a string, got {type(text).__name__}")
    # NUL would end the C string early and silently drop the rest of the text.
    text = text.replace("\0", " ")
    if not text.strip():
        raise SpeechError("text is empty")
    if not isinstance(voice, str):
        raise SpeechError(f"unknown voice {voice!r}")
    rate_wpm = _check_int("rate_wpm", rate_wpm, _RATE_RANGE)
    pitch = _check_int("pitch", pitch, _PITCH_RANGE)
    with _LOCK:
        engine = _engine()
        engine.select_voice(voice)
        return engine.synthesize(text, rate_wpm, pitch)


def list_voices() -> list[str]:
    """Sorted language codes the bundled voices speak, usable as ``speak(voice=...)``."""
    with _LOCK:
        return sorted(_engine().languages)
