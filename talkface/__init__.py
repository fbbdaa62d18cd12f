"""talkface: make a still portrait talk, on a plain CPU, offline.

    import talkface
    portrait = talkface.Portrait.from_file("me.jpg")
    audio = talkface.load_audio("hello.wav")
    talkface.write_video("out.mp4", talkface.generate(portrait, audio), audio)

The public names load on first use (PEP 562), so a light submodule such as
`talkface.integrations.client` imports without mediapipe, OpenCV or the engine: it runs in a
voice agent's own environment (docs/pipecat.md).
"""
from __future__ import annotations

from importlib import import_module

from talkface.version import __version__, __version_tuple__  # noqa: F401

# public name -> the module that defines it
_EXPORTS = {
    "Audio": "talkface.analysis.audio", "AudioError": "talkface.analysis.audio", "load_audio": "talkface.analysis.audio",
    "Portrait": "talkface.analysis.portrait", "PortraitError": "talkface.analysis.portrait",
    "Animator": "talkface.engine", "FaceModel": "talkface.engine", "Frame": "talkface.engine",
    "GenerateOptions": "talkface.engine", "generate": "talkface.engine",
    "ControlError": "talkface.motion.controls", "Controls": "talkface.motion.controls",
    "ControlTrack": "talkface.motion.controls", "write_video": "talkface.output.video",
}

__all__ = [
    "Audio", "AudioError", "load_audio", "ControlError", "Controls", "ControlTrack", "Animator", "FaceModel",
    "Frame", "GenerateOptions", "generate", "Portrait", "PortraitError", "write_video",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'talkface' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value   # cache: the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
