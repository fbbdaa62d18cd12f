"""Truthful video timestamps for Pipecat's SmallWebRTC output, so the browser's lip sync works.

    transport = TimedWebRTCTransport(connection, params)   # instead of SmallWebRTCTransport

Why: SmallWebRTC's `RawVideoTrack` stamps its frames with aiortc's synthetic clock, 1/30 s per
frame whatever the real rate, and its output transport redraws the current picture on its own
tick. The video's RTP timestamps then drift away from the audio's (which follow the audio
samples, in real time), and the browser's audio/video synchroniser, which lines the two streams
up by their RTP timestamps and RTCP sender reports, cannot: the picture showed 56-96 ms before
its sound. `TimedVideoTrack` sends each new picture once, stamped with the wall-clock time at
which its own audio starts going out (`sync_with_audio` pictures, TalkfaceVideoService), so
picture and sound carry the same media time. `TimedAudioTrack` keeps a 30 ms cushion of audio
queued, so a late event loop no longer leaves gaps of silence in speech that push everything
after them later, and drops it on a barge-in.
Written for pipecat-ai 1.14.0 / aiortc 1.16 (it replaces the client's private output tracks).
"""
from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque

import numpy as np
from av import AudioFrame, VideoFrame
from pipecat.frames.frames import Frame, InterruptionFrame, OutputImageRawFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import (
    RawAudioTrack,
    RawVideoTrack,
    SmallWebRTCClient,
    SmallWebRTCOutputTransport,
    SmallWebRTCTransport,
)

VIDEO_CLOCK_HZ = 90000   # the RTP clock of video
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
# audio kept queued in the track ahead of the sender: the event loop may be this late refilling it
# before the track runs dry and sends silence in the middle of speech
AUDIO_CUSHION_S = 0.03


class TimedAudioTrack(RawAudioTrack):
    """SmallWebRTC's audio track, with three changes:

    - its clock starts at the first sample sent, not when the track is made (the stock track
      sends the seconds of silence until the peer is ready in one burst, which the sender
      reports pair with the wrong wall-clock times, and the browser then holds the audio back);
    - a write returns once at most AUDIO_CUSHION_S is left queued, not when the track has taken
      its last 10 ms. The stock track then runs dry between chunks whenever the event loop is
      late by more than 10 ms, sends silence in the gap and pushes every later sample, and every
      picture waiting behind it, later for the rest of the session;
    - `clear()` drops what is queued (a barge-in), which the stock track would still play."""

    def __init__(self, sample_rate: int, auto_silence: bool = True) -> None:
        super().__init__(sample_rate, auto_silence)
        self._cushion = max(1, round(AUDIO_CUSHION_S * 100))   # in 10 ms chunks
        self._waiting: deque = deque()   # (chunks taken at which the write may return, its future)
        self._added = self._taken = 0

    def drained_at(self) -> float:
        """Unix time at which the sender will have taken all audio queued so far (its next 10 ms
        is taken on the track's clock, then one per 10 ms)."""
        return max(time.time(), self._start + self._timestamp / self._sample_rate) + len(self._chunk_queue) / 100.0

    def add_audio_bytes(self, audio_bytes: bytes) -> asyncio.Future:
        if len(audio_bytes) % self._bytes_per_10ms != 0:
            raise ValueError("Audio bytes must be a multiple of 10ms size.")
        step = self._bytes_per_10ms
        self._chunk_queue.extend((audio_bytes[i:i + step], None) for i in range(0, len(audio_bytes), step))
        self._added += len(audio_bytes) // step
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((self._added - self._cushion, future))
        self._release()
        return future

    def clear(self) -> None:
        self._chunk_queue.clear()
        self._taken = self._added
        self._release()

    def _release(self) -> None:
        while self._waiting and self._waiting[0][0] <= self._taken:
            future = self._waiting.popleft()[1]
            if not future.done():
                future.set_result(True)

    async def recv(self) -> AudioFrame:
        if self._timestamp == 0:
            self._start = time.time()
        wait = self._start + self._timestamp / self._sample_rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        while not self._chunk_queue and not self._auto_silence:
            await asyncio.sleep(0.005)
        chunk = bytes(self._bytes_per_10ms)
        if self._chunk_queue:
            chunk = self._chunk_queue.popleft()[0]
            self._taken += 1
            self._release()
        frame = AudioFrame.from_ndarray(np.frombuffer(chunk, np.int16)[None, :], layout="mono")
        frame.sample_rate, frame.pts = self._sample_rate, self._timestamp
        frame.time_base = fractions.Fraction(1, self._sample_rate)
        self._timestamp += self._samples_per_10ms
        return frame


class TimedVideoTrack(RawVideoTrack):
    """A SmallWebRTC video track that sends each distinct picture once, stamped with the wall-clock
    time it is handed over. A `sync_with_audio` picture is handed over when its own audio starts
    going out (`plays_at`: the output transport releases it while up to AUDIO_CUSHION_S of the
    audio before it is still queued). Repeats of the same picture, the transport's redraws, are
    not sent again."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self._last = None
        self._due: tuple[object, float] | None = None   # (picture, Unix time its audio starts)
        self._origin: float | None = None

    def plays_at(self, frame, at: float) -> None:
        self._due = (frame, at)

    def add_video_frame(self, frame) -> None:
        if frame is self._last:
            return
        self._last = frame
        wait = self._due[1] - time.time() if self._due is not None and self._due[0] is frame else 0.0
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._hand_over, frame)
        else:
            self._hand_over(frame)

    def _hand_over(self, frame) -> None:
        self._video_buffer.put_nowait((frame, time.time()))

    async def recv(self) -> VideoFrame:
        frame, handed = await self._video_buffer.get()
        if self._origin is None:
            self._origin = handed
        rgb = np.frombuffer(frame.image, np.uint8).reshape(self._height, self._width, 3)
        out = VideoFrame.from_ndarray(rgb, format="rgb24")
        out.pts, out.time_base = round((handed - self._origin) * VIDEO_CLOCK_HZ), VIDEO_TIME_BASE
        return out


class TimedWebRTCClient(SmallWebRTCClient):
    """SmallWebRTCClient whose output tracks are TimedAudioTrack and TimedVideoTrack from the start
    (mirrors pipecat-ai 1.14's `_handle_client_connected`, with the track classes swapped: replacing
    the tracks later would let the stock ones send first, with timestamps the new ones cannot continue)."""

    async def _handle_client_connected(self) -> None:
        if not self._params:
            return
        self._audio_input_track = self._webrtc_connection.audio_input_track()
        self._video_input_track = self._webrtc_connection.video_input_track()
        self._screen_video_track = self._webrtc_connection.screen_video_input_track()
        if self._params.audio_out_enabled:
            self._audio_output_track = TimedAudioTrack(sample_rate=self._out_sample_rate,
                                                       auto_silence=self._params.audio_out_auto_silence)
            self._webrtc_connection.replace_audio_track(self._audio_output_track)
        if self._params.video_out_enabled:
            self._video_output_track = TimedVideoTrack(self._params.video_out_width, self._params.video_out_height)
            self._webrtc_connection.replace_video_track(self._video_output_track)
        await self._callbacks.on_client_connected(self._webrtc_connection)


class TimedOutputTransport(SmallWebRTCOutputTransport):
    """SmallWebRTC's output transport that drops the audio queued in its track on a barge-in, and
    tells the video track when each released `sync_with_audio` picture's audio starts."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        audio = self._client._audio_output_track
        if isinstance(frame, InterruptionFrame) and isinstance(audio, TimedAudioTrack):
            audio.clear()   # after the transport dropped its own queue, so nothing cut refills the track

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        # a sync_with_audio picture is pushed on the moment it leaves the audio queue, before its own audio
        audio, video = self._client._audio_output_track, self._client._video_output_track
        if (isinstance(frame, OutputImageRawFrame) and frame.sync_with_audio and isinstance(audio, TimedAudioTrack)
                and isinstance(video, TimedVideoTrack)):
            video.plays_at(frame, audio.drained_at())
        await super().push_frame(frame, direction)


class TimedWebRTCTransport(SmallWebRTCTransport):
    """`SmallWebRTCTransport` with true media timestamps on its output tracks (see the module doc)."""

    def __init__(self, webrtc_connection: SmallWebRTCConnection, params: TransportParams, **kwargs) -> None:
        super().__init__(webrtc_connection=webrtc_connection, params=params, **kwargs)
        # the client registered its connection handlers in its constructor; a second client would
        # register them again (two disconnect events), so the one client becomes a TimedWebRTCClient
        self._client.__class__ = TimedWebRTCClient

    def output(self) -> TimedOutputTransport:
        if not self._output:
            self._output = TimedOutputTransport(self._client, self._params, name=self._output_name)
        return self._output
