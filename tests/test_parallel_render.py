"""The file pipeline renders several pictures at once: the same frames, in the same order."""
import threading

import numpy as np

from talkface.engine import Animator, GenerateOptions, follow, generate, rendered


def _clip(speech_audio, seconds: float = 2.0):
    from talkface.analysis.audio import SAMPLE_RATE, Audio

    return Audio(speech_audio.samples[int(1.0 * SAMPLE_RATE):int((1.0 + seconds) * SAMPLE_RATE)], SAMPLE_RATE)


def test_parallel_render_gives_the_serial_frames_in_order(face, speech_audio):
    audio = _clip(speech_audio)
    options = GenerateOptions(seed=3, label="AI")
    serial = list(generate(face, audio, options))
    parallel = list(generate(face, audio, options, workers=3))
    assert len(serial) == len(parallel) == 50
    assert [f.index for f in parallel] == list(range(50))
    for a, b in zip(serial, parallel):
        assert a.time == b.time and a.motion == b.motion
        assert np.array_equal(a.image, b.image)
    assert len({f.image.tobytes() for f in serial}) > 25   # the clip moves: frames differ


def test_follow_in_parallel_equals_serial(face, speech_audio):
    motions = [f.motion for f in generate(face, _clip(speech_audio, 0.6), GenerateOptions())]
    serial = list(follow(face, motions))
    parallel = list(follow(face, motions, workers=2))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(serial, parallel, strict=True))


def test_closing_early_stops_the_render_threads(face, speech_audio):
    before = {t for t in threading.enumerate() if t.name.startswith("talkface-render")}
    frames = generate(face, _clip(speech_audio), GenerateOptions(), workers=2)
    first = next(frames)
    assert first.index == 0 and first.image is not None
    frames.close()
    after = {t for t in threading.enumerate() if t.name.startswith("talkface-render")}
    assert after <= before


def test_times_count_every_frame_once(face, speech_audio):
    anim = Animator(face, GenerateOptions())
    frames = list(generate(face, _clip(speech_audio, 1.0), anim.options, animator=anim, workers=2))
    assert anim.times.frames == len(frames) == 25
    assert anim.times.render > 0 and anim.times.watermark > 0


def test_rendered_passes_finished_frames_through(face, speech_audio):
    anim = Animator(face, GenerateOptions())
    frames = list(generate(face, _clip(speech_audio, 0.4), anim.options, animator=anim))
    assert [f.image is not None for f in rendered(anim, iter(frames), workers=1)] == [True] * len(frames)
