"""The live stream: any chunk size, idle between speech, interrupt, timestamps and pacing,
and the same frames as the file pipeline."""
import asyncio
import time

import numpy as np
import pytest

from talkface.analysis.audio import SAMPLE_RATE, checked_audio, resample
from talkface.engine import GenerateOptions, generate
from talkface.live.stream import AvatarStream, _Resampler


@pytest.fixture(scope="module")
def clip(speech_audio):
    """1.2 s of speech from the shared test sentence (16 kHz float32)."""
    return speech_audio.samples[SAMPLE_RATE: SAMPLE_RATE + int(1.2 * SAMPLE_RATE)].copy()


def _run_until_idle(stream, max_frames=200):
    frames = []
    while len(frames) < max_frames:
        f = stream.next_frame_now()
        frames.append(f)
        if stream.queued_seconds == 0 and any(x.speech for x in frames) and not f.speech:
            break
    return frames


def test_resampler_matches_whole_signal_for_any_cut():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(48000) * 0.1).astype(np.float32)
    for rate_in, rate_out in ((48000, 16000), (22050, 16000), (16000, 24000)):
        r, parts, i = _Resampler(rate_in, rate_out), [], 0
        while i < len(x):
            n = int(rng.integers(50, 9000))
            parts.append(r.push(x[i:i + n]))
            i += n
        parts.append(r.push(np.zeros(0, np.float32), final=True))
        y, ref = np.concatenate(parts), resample(x, rate_in, rate_out)
        assert len(y) == len(ref)
        assert np.abs(y - ref).max() < 1e-5


@pytest.mark.parametrize("chunk_ms", [10, 20, 100, 500])
def test_any_chunk_size_gives_speech_frames(face, clip, chunk_ms):
    pcm = (resample(clip, SAMPLE_RATE, 24000) * 32767).astype(np.int16)   # int16 at 24 kHz, like a TTS
    stream = AvatarStream(face, audio_rate=24000)
    step = 24000 * chunk_ms // 1000
    for a in range(0, len(pcm), step):
        stream.push_audio(pcm[a:a + step], 24000)
    stream.end_of_speech()
    frames = _run_until_idle(stream)
    speech = [f for f in frames if f.speech]
    assert abs(len(speech) - len(clip) / SAMPLE_RATE * 25) <= 2
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(len(f.audio) == 24000 // 25 and f.audio.dtype == np.int16 for f in frames)
    assert sum(f.segment_end for f in frames) == 1
    played = np.concatenate([f.audio for f in speech]).astype(np.float32)
    assert np.corrcoef(played[: len(pcm)], pcm[: len(played)].astype(np.float32))[0, 1] > 0.99
    jaw = np.array([f.motion.expression.jaw_open for f in speech])
    assert jaw.max() > 0.3


def test_stream_frames_equal_file_frames(face, clip):
    """No second pipeline: with its look-ahead in, a streamed frame is the file renderer's frame."""
    idle = 5
    # unmarked: the watermark's presence carrier follows each stream's own earlier frames (its
    # hysteresis), and here the idle frames before the speech differ (test_watermark pins the mark)
    unmarked = GenerateOptions(watermark_id=None)
    stream = AvatarStream(face, unmarked)
    streamed = [stream.next_frame_now() for _ in range(idle)]
    stream.push_audio(clip, SAMPLE_RATE)
    stream.end_of_speech()
    streamed += [stream.next_frame_now() for _ in range(20)]
    audio = checked_audio(np.concatenate([np.zeros(idle * 640, np.float32), clip]), SAMPLE_RATE)
    filed = []
    for f in generate(face, audio, unmarked):
        filed.append(f)
        if len(filed) == len(streamed):
            break
    assert [f.speech for f in streamed[:idle + 1]] == [False] * idle + [True]
    # A live stream cannot look ahead into speech that has not arrived, so the idle frames just
    # before it (and the motion they leave behind) may differ; once the look-ahead window has
    # passed the speech onset, every frame is the file renderer's. Not always bit for bit: the
    # BLAS picks other kernels (other summation orders) for a chunk's few rows than for a whole
    # file's, so the mouth model's outputs may differ in the 7th digit, a pixel by one level.
    settle = int(np.ceil((stream.animator.mouth_model.lookahead_frames + 2) * 0.01 * 25))
    for s, f in zip(streamed[idle + settle:], filed[idle + settle:]):
        assert abs(s.motion.expression.jaw_open - f.motion.expression.jaw_open) < 1e-5, s.index
        assert (s.motion.yaw, s.motion.pitch, s.motion.roll) == (f.motion.yaw, f.motion.pitch, f.motion.roll)
        assert np.abs(s.image.astype(np.int16) - f.image).max() <= 2, s.index


def test_idle_frames_without_audio(face):
    stream = AvatarStream(face, options=GenerateOptions(seed=3))
    frames = [stream.next_frame_now() for _ in range(250)]   # 10 s: people blink every 1.5 to 8 s
    assert not any(f.speech for f in frames)
    assert all(not f.audio.any() for f in frames)
    jaw = [f.motion.expression.jaw_open for f in frames]
    assert max(jaw) < 0.05, "mouth stays closed when idle"
    blink = [f.motion.expression.blink_left for f in frames]
    pitch = [f.motion.pitch for f in frames]
    assert max(blink) > 0.5, "the face blinks while idle"
    assert np.ptp(pitch) > 0.2, "the head moves (breathing, drift) while idle"
    diffs = [np.abs(a.image.astype(int) - b.image.astype(int)).mean() for a, b in zip(frames, frames[1:])]
    assert np.mean(diffs) > 0.05


def test_interrupt_returns_to_idle_within_one_frame(face, clip):
    stream = AvatarStream(face)
    stream.push_audio(np.tile(clip, 3), SAMPLE_RATE)
    frames = [stream.next_frame_now() for _ in range(12)]
    assert frames[-1].speech and stream.queued_seconds > 2
    open_before = max(f.motion.expression.jaw_open for f in frames)
    stream.interrupt()
    after = stream.next_frame_now()
    assert stream.queued_seconds == 0
    assert not after.speech and not after.audio.any() and after.interrupted
    assert after.motion.expression.jaw_open < 0.05 < open_before
    assert after.index == frames[-1].index + 1          # the timeline continues, no gap
    # speech pushed after an interrupt plays right away
    stream.push_audio(clip, SAMPLE_RATE)
    stream.end_of_speech()
    assert stream.next_frame_now().speech


def test_realtime_chunks_play_without_gaps(face, clip):
    """Audio arriving in real time (20 ms chunks, one frame's worth per frame): once speech
    starts, every frame until its end carries speech."""
    stream = AvatarStream(face)
    step = 320
    chunks = [clip[a:a + step] for a in range(0, len(clip), step)]
    flags = []
    for i in range(60):
        for c in chunks[2 * i: 2 * i + 2]:
            stream.push_audio(c, SAMPLE_RATE)
        if 2 * i + 2 >= len(chunks) and 2 * i < len(chunks) + 2:
            stream.end_of_speech()
        flags.append(stream.next_frame_now().speech)
    first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
    assert all(flags[first:last + 1]), "".join("S" if f else "." for f in flags)
    assert first <= 3, "speech starts within three frames of its first chunk"
    assert stream.stats["underruns"] == 0


def test_frames_are_timestamped_and_paced(face, clip):
    fps = 5.0    # a slow clock keeps this test honest on a busy machine

    async def main():
        stream = AvatarStream(face, GenerateOptions(fps=fps), jpeg_quality=80)
        out = []
        async for f in stream:
            out.append(f)
            if len(out) == 3:
                stream.push_audio(clip, SAMPLE_RATE)
                stream.end_of_speech()
                t_push = time.monotonic()
            if len(out) >= 3 and f.speech and "first" not in locals():
                first = f.released - t_push
            if len(out) == 12:
                break
        stream.close()
        return out, first

    frames, first = asyncio.run(main())
    assert [f.index for f in frames] == list(range(12))
    assert all(abs(f.pts - f.index / fps) < 1e-9 for f in frames)
    released = np.array([f.released for f in frames]) - frames[0].released
    gaps = np.diff(released)
    assert abs(np.median(gaps) - 1 / fps) < 0.015, gaps
    assert np.all(released >= np.arange(12) / fps - 0.005), "never released before its time"
    assert released[-1] < 11 / fps + 0.25, f"paced at the frame rate, not slower: {gaps}"   # slack for a busy machine
    assert first < 2.5 / fps, f"first speech frame {first * 1000:.0f} ms after the audio"
    assert all(f.jpeg and f.jpeg[:2] == b"\xff\xd8" for f in frames)


def test_a_stream_that_falls_behind_skips_pictures_not_audio(face, clip, monkeypatch):
    """When rendering stalls (a busy machine), late frames keep their audio and timing and
    repeat the previous picture, instead of the whole stream drifting behind."""
    fps = 10.0
    render = face.renderer.render
    calls = {"n": 0}

    def stalling(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            time.sleep(0.45)   # four and a half frame periods
        return render(*args, **kwargs)

    monkeypatch.setattr(face.renderer, "render", stalling)

    async def main():
        stream = AvatarStream(face, GenerateOptions(fps=fps))
        stream.push_audio(np.tile(clip, 2), SAMPLE_RATE)
        stream.end_of_speech()
        out = []
        async for f in stream:
            out.append(f)
            if len(out) == 14:
                break
        stream.close()
        return out, stream.stats

    frames, stats = asyncio.run(main())
    assert [f.index for f in frames] == list(range(14))
    repeated = [f for f in frames if f.repeated]
    assert len(repeated) >= 1 and stats["skipped_frames"] == len(repeated), stats
    for f in repeated:
        assert f.image is frames[f.index - 1].image
    assert all(f.speech for f in frames) and all(len(f.audio) == 1600 for f in frames)
    released = np.array([f.released for f in frames]) - frames[0].released
    assert released[-1] < 13 / fps + 0.3, f"caught up instead of drifting: {np.diff(released)}"
