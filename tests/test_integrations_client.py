"""talkface.integrations.client against a real `talkface serve` process on 127.0.0.1, and the
lazy package import that lets the client run without mediapipe or OpenCV."""
import asyncio
import subprocess
import sys

import numpy as np
import pytest

from talkface.integrations.client import LiveClient, LiveClosed, live_url


def test_client_imports_without_the_engine():
    code = ("import sys, talkface.integrations.client; "
            "heavy = [m for m in ('mediapipe', 'cv2', 'talkface.engine', 'scipy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_still_resolves():
    import talkface
    from talkface import FaceModel, Portrait, generate, write_video  # noqa: F401
    from talkface.stream import AvatarStream  # noqa: F401

    assert callable(talkface.generate) and talkface.Portrait is Portrait
    assert set(talkface.__all__) <= set(dir(talkface))
    with pytest.raises(AttributeError):
        talkface.no_such_name  # noqa: B018


def test_live_url():
    assert live_url("http://h:1/v1/live", "builtin", "t") == "ws://h:1/v1/live?portrait=builtin&token=t"
    with pytest.raises(ValueError):
        live_url("ftp://h/", "builtin", None)


async def _frames(client: LiveClient, n: int) -> list:
    frames = []
    async for f in client:
        frames.append(f)
        if len(frames) == n:
            return frames
    return frames


async def _session(url: str) -> dict:
    from talkface.analysis.speech import speak

    spoken = speak("Hello, I am talking through the client.")
    pcm = (np.clip(spoken.samples, -1, 1) * 32767).astype(np.int16)
    async with await LiveClient.connect(url.replace("http", "ws") + "/v1/live") as face:
        idle = await _frames(face, 5)
        for start in range(0, len(pcm), 2205):     # 100 ms chunks, as a TTS streams them
            await face.push_audio(pcm[start:start + 2205], spoken.sample_rate)
        await face.end_of_speech()
        talk = await _frames(face, int(len(pcm) / spoken.sample_rate * face.ready.fps) + 10)
        await face.push_audio(pcm, spoken.sample_rate)
        await _frames(face, 3)
        await face.interrupt()
        after = await _frames(face, 8)
        await face.controls(emotion="no-such-emotion")
        await face.ping()
        await _frames(face, 8)
        return dict(ready=face.ready, idle=idle, talk=talk, after=after, errors=face.errors, pong=face.pong)


def test_client_session_against_real_server(serve_url):
    got = asyncio.run(_session(serve_url))
    ready, idle, talk, after = got["ready"], got["idle"], got["talk"], got["after"]
    assert ready.audio_rate == 24000 and ready.fps > 0
    samples_per_frame = round(ready.audio_rate / ready.fps)
    for f in idle + talk + after:
        assert f.audio.dtype == np.int16 and len(f.audio) == samples_per_frame
    assert [f.index for f in talk] == list(range(talk[0].index, talk[0].index + len(talk)))
    assert not any(f.speech for f in idle) and all(not f.audio.any() for f in idle)
    assert idle[0].image.shape == (ready.size, ready.size, 3) and idle[0].image.dtype == np.uint8
    speech = [f for f in talk if f.speech]
    assert len(speech) > 0.8 * (len(talk) - 10) and sum(f.segment_end for f in talk) == 1
    assert np.abs(np.concatenate([f.audio for f in speech])).max() > 1000
    # barge-in: within a couple of frames the face is idle and silent
    assert not after[-1].speech and not after[-1].audio.any()
    assert any(not f.speech for f in after[:3])
    assert got["errors"] and "controls" in got["errors"][0]
    assert got["pong"] is not None and "queued_s" in got["pong"]


def test_refused_session_raises_live_closed(serve_url):
    async def refused():
        await LiveClient.connect(serve_url.replace("http", "ws") + "/v1/live", portrait="nonexistent")

    with pytest.raises(LiveClosed) as info:
        asyncio.run(refused())
    assert info.value.code == 1008
