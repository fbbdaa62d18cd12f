"""talkface: make a still portrait talk, on a plain CPU, offline.

    import talkface
    portrait = talkface.Portrait.from_file("me.jpg")
    audio = talkface.load_audio("hello.wav")
    talkface.write_video("out.mp4", talkface.generate(portrait, audio), audio)
"""
from talkface.analysis.audio import Audio, AudioError, load_audio  # noqa: E402
from talkface.analysis.portrait import Portrait, PortraitError  # noqa: E402
from talkface.engine import Animator, FaceModel, Frame, GenerateOptions, generate  # noqa: E402
from talkface.motion.controls import ControlError, Controls, ControlTrack  # noqa: E402
from talkface.output.video import write_video  # noqa: E402
from talkface.version import __version__, __version_tuple__  # noqa: F401

__all__ = [
    "Audio", "AudioError", "load_audio", "ControlError", "Controls", "ControlTrack", "Animator", "FaceModel",
    "Frame", "GenerateOptions", "generate", "Portrait", "PortraitError", "write_video",
]
