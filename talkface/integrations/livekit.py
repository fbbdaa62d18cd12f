"""talkface as the face of a LiveKit voice agent (livekit-agents 1.8.9, docs/livekit.md).

Two parts, shaped like LiveKit's own avatar plugins:

- `TalkfaceVideoGenerator`: the `VideoGenerator` that livekit-agents' `AvatarRunner` drives in
  the avatar worker. It forwards the agent's speech to a `talkface serve` live session and
  yields that session's frames (an `rtc.VideoFrame`, then the `rtc.AudioFrame` that plays with
  it, and `AudioSegmentEnd` where an utterance ends). Between utterances the server keeps
  sending idle frames (blinks, breathing, glances) with silent audio, so the tracks never stall.
- `AvatarSession`: the agent side. `start(agent_session, room)` asks a talkface avatar worker
  (`talkface.integrations.livekit_worker`) to join the room, and routes the agent's TTS audio to
  it over a LiveKit data stream (`DataStreamAudioOutput`).

This module imports livekit and the light `talkface.integrations.client` only: it runs in the
agent's environment (`.venv-livekit`), never next to mediapipe (protobuf<5 against livekit's >=5).
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import urllib.request
from collections.abc import AsyncIterator

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarOptions, DataStreamAudioOutput, VideoGenerator
from livekit.agents.voice.avatar import AvatarSession as BaseAvatarSession

from talkface.integrations.client import LiveClient, LiveFrame

LIVEKIT_AGENTS_VERSION = "1.8.9"   # the VideoGenerator / AvatarSession interfaces this was written for
DEFAULT_WORKER_URL = "http://127.0.0.1:8089"   # where `livekit_worker` listens for launch requests
DEFAULT_AVATAR_IDENTITY = "talkface-avatar"
LAUNCH_TIMEOUT_S = 10.0
MAX_BACKLOG_S = 0.25      # a frame that waited this much longer than usual is dropped, as the web page does


class TalkfaceVideoGenerator(VideoGenerator):
    """A `talkface serve` live session as a LiveKit `VideoGenerator`.

    `push_audio` sends PCM (and `end_of_speech` on `AudioSegmentEnd`); `clear_buffer` sends
    `interrupt` and drops the speech frames already on their way, up to the server's first idle
    frame. Iterating yields the server's frames, paced by the server at its frame rate. The
    runner's own pacing cannot catch up after a stall of this process, so a frame that waited
    here 250 ms longer than usual is dropped if it is idle: the face catches up without cutting words."""

    def __init__(self, client: LiveClient) -> None:
        self._client = client
        self._muting = False                # interrupted: drop speech still in flight
        self._last: tuple[bytes, rtc.VideoFrame] | None = None
        self._base_delay: float | None = None   # the smallest send-to-read delay seen (clock offset + link)
        self.dropped = 0                     # frames dropped to stay live or because of an interrupt

    @classmethod
    async def connect(cls, url: str = "ws://127.0.0.1:8000/v1/live", portrait: str = "builtin",
                      token: str | None = None) -> TalkfaceVideoGenerator:
        return cls(await LiveClient.connect(url, portrait=portrait, token=token))

    @property
    def options(self) -> AvatarOptions:
        """The `AvatarRunner` options that match the session: frame size and rate, audio rate."""
        ready = self._client.ready
        return AvatarOptions(video_width=ready.size, video_height=ready.size, video_fps=ready.fps,
                             audio_sample_rate=ready.audio_rate, audio_channels=1)

    @property
    def client(self) -> LiveClient:
        return self._client

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            await self._client.end_of_speech()
            return
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        await self._client.push_audio(pcm, frame.sample_rate)

    async def clear_buffer(self) -> None:
        self._muting = True
        await self._client.interrupt()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def aclose(self) -> None:
        await self._client.close()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        async for frame in self._client:
            if self._muting and frame.speech:
                self.dropped += 1           # rendered before the interrupt reached the server
                continue
            self._muting = False
            if self._stale(frame) and not frame.speech:   # never cut the agent's words, as in pipecat.py
                self.dropped += 1
            else:
                yield self._video(frame)
                yield audio_frame(frame)
            if frame.segment_end:
                yield AudioSegmentEnd()

    def _stale(self, frame: LiveFrame) -> bool:
        delay = frame.received - frame.sent
        self._base_delay = delay if self._base_delay is None else min(self._base_delay, delay)
        return delay - self._base_delay > MAX_BACKLOG_S

    def _video(self, frame: LiveFrame) -> rtc.VideoFrame:
        """The frame's picture as RGBA; a repeated picture (the server fell behind) is reused."""
        if self._last is not None and self._last[0] is frame.jpeg:
            return self._last[1]
        video = video_frame(frame.image)
        self._last = (frame.jpeg, video)
        return video


def video_frame(rgb: np.ndarray) -> rtc.VideoFrame:
    """An (H, W, 3) uint8 RGB picture as an RGBA `rtc.VideoFrame`."""
    height, width = rgb.shape[:2]
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())


def audio_frame(frame: LiveFrame) -> rtc.AudioFrame:
    """The PCM that plays with `frame` (all of its slot, so the audio timeline has no gap)."""
    return rtc.AudioFrame(frame.audio.astype("<i2").tobytes(), frame.audio_rate, 1, len(frame.audio))


def launch_request(livekit_url: str, token: str, room: str, portrait: str = "builtin") -> bytes:
    """The JSON body the agent POSTs to a talkface avatar worker's /launch."""
    return json.dumps({"livekit_url": livekit_url, "token": token, "room": room, "portrait": portrait}).encode()


def post_launch(worker_url: str, body: bytes, timeout: float = LAUNCH_TIMEOUT_S) -> dict:
    """POST a launch request; raises OSError (urllib's errors) if the worker refuses or is down."""
    request = urllib.request.Request(worker_url.rstrip("/") + "/launch", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:   # noqa: S310 (the worker's URL)
        return json.load(io.TextIOWrapper(response, encoding="utf-8"))


def avatar_token(api_key: str, api_secret: str, room: str, identity: str, on_behalf_of: str) -> str:
    """A room token for the avatar worker, allowed to publish on behalf of the agent."""
    from livekit import api
    from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF

    return (api.AccessToken(api_key=api_key, api_secret=api_secret).with_kind("agent")
            .with_identity(identity).with_name("talkface")
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: on_behalf_of}).to_jwt())


def _setting(value: str | None, env: str) -> str:
    found = value or os.getenv(env)
    if not found:
        raise ValueError(f"{env} is not set: pass it or set the environment variable")
    return found


class AvatarSession(BaseAvatarSession):
    """The agent side: `await AvatarSession().start(session, room)` before `session.start`."""

    def __init__(self, *, worker_url: str = DEFAULT_WORKER_URL, portrait: str = "builtin",
                 avatar_identity: str = DEFAULT_AVATAR_IDENTITY, sample_rate: int = 24000) -> None:
        super().__init__()
        self._worker_url, self._portrait = worker_url, portrait
        self._identity, self._sample_rate = avatar_identity, sample_rate

    @property
    def avatar_identity(self) -> str:
        return self._identity

    @property
    def provider(self) -> str:
        return "talkface"

    async def start(self, agent_session, room: rtc.Room, *, livekit_url: str | None = None,
                    api_key: str | None = None, api_secret: str | None = None) -> None:
        await super().start(agent_session, room)
        token = avatar_token(_setting(api_key, "LIVEKIT_API_KEY"), _setting(api_secret, "LIVEKIT_API_SECRET"),
                             room.name, self._identity, room.local_participant.identity)
        body = launch_request(_setting(livekit_url, "LIVEKIT_URL"), token, room.name, self._portrait)
        await asyncio.get_running_loop().run_in_executor(None, post_launch, self._worker_url, body)
        agent_session.output.replace_audio_tail(DataStreamAudioOutput(
            room, destination_identity=self._identity, sample_rate=self._sample_rate,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO))
