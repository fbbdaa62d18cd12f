"""Tests for talkface.analysis.speech: real synthesis through the bundled espeak-ng."""

import threading
import time

import numpy as np
import pytest

from talkface.analysis.speech import PhonemeEvent, SpeechError, SpokenText, list_voices, speak

SENTENCE = "Hello there. My mother put the big blue map by the lamp."


def duration(spoken: SpokenText) -> float:
    return len(spoken.samples) / spoken.sample_rate


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def span(spoken: SpokenText, ev: PhonemeEvent) -> np.ndarray:
    sr = spoken.sample_rate
    return spoken.samples[int(ev.start * sr) : int(ev.end * sr)]


def assert_timeline(spoken: SpokenText) -> None:
    """Events are ordered, tile the audio without gaps and end with it."""
    ph = spoken.phonemes
    assert ph, "no phoneme events"
    total = duration(spoken)
    for a, b in zip(ph, ph[1:]):
        assert a.start < a.end == pytest.approx(b.start)
    assert ph[0].start < 0.2
    assert ph[-1].end == pytest.approx(total)
    covered = sum(e.end - e.start for e in ph)
    assert covered / total > 0.95
    assert all(e.phoneme and not e.phoneme.startswith(("'", ",", "(")) for e in ph)


def test_english_sentence_is_real_speech():
    spoken = speak(SENTENCE)
    assert spoken.sample_rate == 22050
    assert spoken.samples.dtype == np.float32 and spoken.samples.ndim == 1
    assert 1.0 < duration(spoken) < 6.0
    assert np.abs(spoken.samples).max() <= 1.0
    assert rms(spoken.samples) > 0.03  # clearly not silence
    assert_timeline(spoken)
    names = [e.phoneme for e in spoken.phonemes]
    assert {"m", "p", "b"} <= set(names)  # bilabials in "my mother put ... big blue map"
    assert names.count("m") >= 4


def test_phoneme_times_match_the_audio():
    """Pauses are quiet and vowels are loud where the events say they are."""
    spoken = speak(SENTENCE)
    pauses = [e for e in spoken.phonemes if e.phoneme.startswith("_") and e.end - e.start > 0.05]
    vowels = [e for e in spoken.phonemes if e.phoneme in {"oU", "aI", "V", "I", "u:", "a", "@", "e@"}]
    assert pauses and len(vowels) >= 6
    pause_rms = rms(np.concatenate([span(spoken, e) for e in pauses]))
    vowel_rms = rms(np.concatenate([span(spoken, e) for e in vowels]))
    assert pause_rms < 0.2 * vowel_rms


@pytest.mark.parametrize(
    "voice, text",
    [
        ("de", "Guten Morgen, wie geht es dir? Mama und Papa sind hier."),
        ("zh", "你好，我叫小明。妈妈和爸爸都在这里。"),
        ("fr", "Bonjour, je m'appelle Pierre."),
        ("ru", "Привет, как дела?"),
    ],
)
def test_other_languages_produce_audio(voice, text):
    spoken = speak(text, voice=voice)
    assert 1.0 < duration(spoken) < 8.0
    assert rms(spoken.samples) > 0.03
    assert_timeline(spoken)
    assert sum(not e.phoneme.startswith("_") for e in spoken.phonemes) >= 10


def test_chinese_is_read_as_chinese():
    # Mandarin is tonal; the English voice would spell the characters out instead.
    zh = speak("妈妈", voice="zh")
    assert [e.phoneme for e in zh.phonemes if not e.phoneme.startswith("_")] == ["m", "A", "m", "A"]


def test_list_voices():
    voices = list_voices()
    assert voices == sorted(voices)
    assert {"en", "en-us", "de", "fr", "es", "ru", "ja", "zh"} <= set(voices)
    assert len(voices) > 100


@pytest.mark.parametrize("voice", ["en-us", "EN-GB", "English (America)", "gmw/en-US", "en+f3", "zh+m2"])
def test_voice_spellings(voice):
    assert duration(speak("Good morning.", voice=voice)) > 0.5


@pytest.mark.parametrize("voice", ["xx", "", "elvish", "en+nosuchvariant", "../../../etc/passwd"])
def test_bad_voice(voice):
    with pytest.raises(SpeechError, match=r"unknown voice .*\(try one of: .*en"):
        speak("hello", voice=voice)


@pytest.mark.parametrize("text", ["", "   \n\t ", "\0"])
def test_empty_text(text):
    with pytest.raises(SpeechError, match="empty"):
        speak(text)


def test_nothing_speakable():
    with pytest.raises(SpeechError):
        speak("...")


@pytest.mark.parametrize("kwargs", [{"rate_wpm": 10}, {"rate_wpm": 1000}, {"pitch": -1}, {"pitch": 101}])
def test_bad_parameters(kwargs):
    with pytest.raises(SpeechError):
        speak("hello", **kwargs)


def test_speech_error_is_value_error():
    assert issubclass(SpeechError, ValueError)


def test_rate_changes_duration():
    slow = duration(speak(SENTENCE, rate_wpm=120))
    fast = duration(speak(SENTENCE, rate_wpm=300))
    assert fast < 0.7 * slow


def test_long_text_several_paragraphs():
    paragraph = (
        "The portrait on the wall began to speak. Its lips moved in time with every word, "
        "and the people in the room watched in silence as the painted mouth opened and closed. "
        "Nobody had expected a picture to have so much to say about the weather."
    )
    text = "\n\n".join([paragraph] * 6)
    n_words = len(text.split())
    t0 = time.perf_counter()
    spoken = speak(text)
    elapsed = time.perf_counter() - t0
    expected = n_words / 165 * 60
    assert 0.5 * expected < duration(spoken) < 2.0 * expected
    assert_timeline(spoken)
    # Events keep counting from the start of the whole text, not per sentence.
    assert spoken.phonemes[-1].start > duration(spoken) - 1.0
    assert duration(spoken) / elapsed > 5  # measured ~1000x real time


def test_twice_in_a_row_gives_the_same_speech():
    # espeak's pitch flutter carries over between calls, so samples differ slightly;
    # the phonemes and their count must not.
    a, b = speak(SENTENCE), speak(SENTENCE)
    assert [e.phoneme for e in a.phonemes] == [e.phoneme for e in b.phonemes]
    assert duration(a) == pytest.approx(duration(b), rel=0.01)


def test_two_threads():
    jobs = {"en": SENTENCE, "de": "Guten Morgen, wie geht es dir heute?"}
    reference = {v: speak(t, voice=v) for v, t in jobs.items()}
    results: dict[str, list[SpokenText]] = {v: [] for v in jobs}
    errors: list[BaseException] = []

    def work(voice: str) -> None:
        try:
            for _ in range(5):
                results[voice].append(speak(jobs[voice], voice=voice))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(v,)) for v in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for voice, spoken_list in results.items():
        ref = reference[voice]
        assert len(spoken_list) == 5
        for spoken in spoken_list:
            # Interleaved callbacks would mix samples/events of the two requests.
            assert [e.phoneme for e in spoken.phonemes] == [e.phoneme for e in ref.phonemes]
            assert duration(spoken) == pytest.approx(duration(ref), rel=0.01)
