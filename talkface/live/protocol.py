"""The live WebSocket protocol (docs/streaming.md): the frame message the server sends, the
messages a client may send, as frozen dataclasses, and the close codes a refused or ended
session gets. Parsing validates everything a client sends: a bad message becomes a
`ProtocolError` with one line for that client, never an exception in the session."""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass

LIVE_AUDIO_RATE = 24000        # Hz of the PCM the server sends with each frame
DEFAULT_CLIENT_RATE = 16000    # Hz of client PCM until it sends audio_format
MIN_CLIENT_RATE, MAX_CLIENT_RATE = 8000, 96000
FRAME_MAGIC = b"TFF1"
# magic, frame index, pts (s), sent (unix s), flags (1 speech, 2 utterance end, 4 repeat the previous
# picture: JPEG length 0), JPEG bytes, PCM bytes
FRAME_HEADER = "<4sIddBxxxII"
FRAME_HEADER_SIZE = 36
FLAG_SPEECH, FLAG_SEGMENT_END, FLAG_REPEATED = 1, 2, 4

# Close codes. A refused connection is accepted first and then closed with one of these and a
# reason, so a browser (which never sees the HTTP status of a failed handshake) can show why.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001        # the server is shutting down
CLOSE_POLICY = 1008            # wrong host, cross-origin, missing or wrong token, unknown portrait
CLOSE_INTERNAL = 1011          # a bug in this session; other sessions go on
CLOSE_TRY_LATER = 1013         # at capacity (server-wide or this client's share): retry later
CLOSE_TOO_SLOW = 4008          # the client stopped reading frames

CONTROL_FIELDS = ("gaze", "head_pose", "head_distance", "emotion", "emotion_strength", "motion_scale")
MESSAGE_TYPES = ("audio_format", "end_of_speech", "interrupt", "controls", "say", "ping")


class ProtocolError(ValueError):
    """A client message that cannot be used; the text goes back to that client."""


@dataclass(frozen=True)
class AudioFormat:
    rate: int


@dataclass(frozen=True)
class EndOfSpeech:
    pass


@dataclass(frozen=True)
class Interrupt:
    pass


@dataclass(frozen=True)
class SetControls:
    fields: dict   # a subset of CONTROL_FIELDS, validated by controls_from_fields


@dataclass(frozen=True)
class Say:
    text: str
    voice: str


@dataclass(frozen=True)
class Ping:
    pass


Message = AudioFormat | EndOfSpeech | Interrupt | SetControls | Say | Ping


def parse_message(text: str | None, max_text_chars: int) -> Message:
    """One client text message -> a typed message; raises ProtocolError with the reason."""
    try:
        data = json.loads(text or "")
    except ValueError:
        data = None
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"unknown message; expected a JSON object with type {', '.join(MESSAGE_TYPES)}")
    if kind == "audio_format":
        rate = data.get("rate")
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_CLIENT_RATE <= rate <= MAX_CLIENT_RATE:
            raise ProtocolError(f"audio_format: rate must be a whole number of Hz between {MIN_CLIENT_RATE} "
                                f"and {MAX_CLIENT_RATE}")
        return AudioFormat(rate)
    if kind == "say":
        return _parse_say(data, max_text_chars)
    if kind == "controls":
        return SetControls({k: data[k] for k in CONTROL_FIELDS if k in data})
    return {"end_of_speech": EndOfSpeech, "interrupt": Interrupt, "ping": Ping}[kind]()


def _parse_say(data: dict, max_text_chars: int) -> Say:
    text, voice = data.get("text"), data.get("voice") or "en"
    if "text" not in data:
        raise ProtocolError("say: the message has no text field")
    if not isinstance(text, str):
        raise ProtocolError(f"say: text must be a string, got {_json_kind(text)}")
    if not text.strip():
        raise ProtocolError("say: text is empty")
    if len(text) > max_text_chars:
        raise ProtocolError(f"say: text is longer than {max_text_chars} characters")
    if not isinstance(voice, str):
        raise ProtocolError(f"say: voice must be a string, got {_json_kind(voice)}")
    return Say(text, voice)


def _json_kind(value) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def controls_from_fields(gaze: str | None = None, head_pose: str | None = None, head_distance: float = 1.0,
                         emotion: str = "neutral", emotion_strength: float = 0.6, motion_scale: float = 1.0):
    """Controls from form or JSON fields; raises ControlError with a one-line message."""
    from talkface.motion.controls import ControlError, Controls, parse_floats, parse_gaze

    g, camera = (None, False)
    if gaze not in (None, "", "none", "portrait"):
        if not isinstance(gaze, str):
            raise ControlError(f"gaze must be a string like 'YAW,PITCH' or 'camera', got {_json_kind(gaze)}")
        g, camera = parse_gaze(gaze)
    if head_pose not in (None, "") and not isinstance(head_pose, str):
        raise ControlError(f"head_pose must be a string like 'YAW,PITCH,ROLL', got {_json_kind(head_pose)}")
    pose = parse_floats(head_pose, 3, "head_pose") if head_pose not in (None, "") else (0.0, 0.0, 0.0)
    try:
        values = dict(head_distance=float(head_distance), emotion_strength=float(emotion_strength),
                      motion_scale=float(motion_scale))
    except (TypeError, ValueError):
        raise ControlError("head_distance, emotion_strength and motion_scale must be numbers") from None
    return Controls(gaze=g, gaze_camera=camera, head_pose=pose, emotion=str(emotion), **values).validated()


def ready_message(session: str, fps: float, size: int, max_seconds: float) -> str:
    return json.dumps({"type": "ready", "session": session, "fps": fps, "size": size,
                       "audio_rate": LIVE_AUDIO_RATE, "max_seconds": max_seconds})


def error_message(message: str) -> str:
    return json.dumps({"type": "error", "message": message})


def pong_message(queued_s: float, stats: dict) -> str:
    return json.dumps({"type": "pong", "queued_s": queued_s, **stats})


def pack_frame(frame) -> bytes:
    """One live frame as a WebSocket message: header, JPEG, then int16 PCM (little-endian)."""
    pcm = frame.audio.astype("<i2").tobytes()
    jpeg = b"" if frame.repeated else (frame.jpeg or b"")   # a skipped frame: the client keeps its picture
    flags = ((FLAG_SPEECH if frame.speech else 0) | (FLAG_SEGMENT_END if frame.segment_end else 0)
             | (FLAG_REPEATED if frame.repeated else 0))
    header = struct.pack(FRAME_HEADER, FRAME_MAGIC, frame.index, frame.pts, time.time(), flags, len(jpeg), len(pcm))
    return header + jpeg + pcm
