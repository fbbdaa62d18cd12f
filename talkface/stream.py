"""Public home of the live stream API (`talkface.stream.AvatarStream`); the code lives in talkface.live.stream."""
from talkface.live.stream import AvatarStream, StreamFrame, StreamFull

__all__ = ["AvatarStream", "StreamFrame", "StreamFull"]
