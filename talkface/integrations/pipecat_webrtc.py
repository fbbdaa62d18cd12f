"""Truthful video timestamps for Pipecat's SmallWebRTC output, so the browser's lip sync works.

    transport = TimedWebRTCTransport(connection, params)   # instead of SmallWebRTCTransport

Why: SmallWebRTC's `RawVideoTrack` stamps its frames with aiortc's synthetic clock, 1/30 s per
frame whatever the real rate, and its output transport redraws the current picture on its own
tick. The video's RTP timestamps then drift away from the audio's (which follow the audio
samples, in real time), and the browser's audio/video synchroniser, which lines the two streams
up by their RTP timestamps and RTCP sender reports, cannot: the picture showed 56-96 ms before
its sound. `TimedVideoTrack` sends each new picture once, stamped with the wall-clock time at
which the transport handed it over. With `sync_with_audio` pictures (TalkfaceVideoService) that is
the moment its own audio starts going out, so picture and sound carry the same media time.
Written for pipecat-ai 1.14.0 / aiortc 1.14 (it replaces the client's private output track).
"""
from __future__ import annotations

import fractions
import time

import numpy as np
from av import VideoFrame
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.transport import (
    RawAudioTrack,
    RawVideoTrack,
    SmallWebRTCClient,
    SmallWebRTCTransport,
)

VIDEO_CLOCK_HZ = 90000   # the RTP clock of video
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)


class TimedVideoTrack(RawVideoTrack):
    """A SmallWebRTC video track that sends each distinct picture once, at the wall-clock time it
    was handed over (repeats of the same picture, the transport's redraws, are not sent again)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self._last = None
        self._origin: float | None = None

    def add_video_frame(self, frame) -> None:
        if frame is self._last:
            return
        self._last = frame
        self._video_buffer.put_nowait((frame, time.time()))

    async def recv(self) -> VideoFrame:
        frame, handed = await self._video_buffer.get()
        if self._origin is None:
            self._origin = handed
        rgb = np.frombuffer(frame.image, np.uint8).reshape(self._height, self._width, 3)
        out = VideoFrame.from_ndarray(rgb, format="rgb24")
        out.pts, out.time_base = round((handed - self._origin) * VIDEO_CLOCK_HZ), VIDEO_TIME_BASE
        return out


class TimedAudioTrack(RawAudioTrack):
    """SmallWebRTC's audio track with its clock started at the first sample sent, not when the
    track is made: the stock track starts its clock at connection set-up and then sends the
    seconds of silence until the peer is ready in one burst, which the sender reports pair with
    the wrong wall-clock times (the browser's synchroniser then holds the audio back)."""

    async def recv(self):
        if self._timestamp == 0:
            self._start = time.time()
        return await super().recv()


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


class TimedWebRTCTransport(SmallWebRTCTransport):
    """`SmallWebRTCTransport` with true media timestamps on its output tracks (see the module doc)."""

    def __init__(self, webrtc_connection: SmallWebRTCConnection, params: TransportParams, **kwargs) -> None:
        super().__init__(webrtc_connection=webrtc_connection, params=params, **kwargs)
        # the client registered its connection handlers in its constructor; a second client would
        # register them again (two disconnect events), so the one client becomes a TimedWebRTCClient
        self._client.__class__ = TimedWebRTCClient
