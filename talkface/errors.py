"""User errors: what the user can fix, reported as one line (CLI: stderr, exit code 2; server:
HTTP 4xx with the reason). Anything that is not a `TalkfaceError` is a bug and shows as one.

The stage modules keep their own names importable (`talkface.analysis.audio.AudioError`, ...):
they are defined here so that every caller can catch the whole family with one class.
"""
from __future__ import annotations


class TalkfaceError(Exception):
    """Anything the user can fix. `str(exc)` is one line that says what and where."""


class InputError(TalkfaceError, ValueError):
    """A bad input value or file (also a ValueError, as these errors always were)."""


class AudioError(InputError):
    """Unreadable, empty or out-of-range audio."""


class TooLongError(AudioError):
    """Audio (or the speech of a text) longer than the limit: a server answers 413."""


class SpeechError(InputError):
    """Bad voice name, empty text, bad parameter or espeak-ng failure."""


class PortraitError(InputError):
    """Unreadable image or no usable face."""


class ControlError(InputError):
    """A control value out of range or malformed."""


class VideoReadError(InputError):
    """A video that cannot be opened or decoded."""


class DriveError(InputError):
    """An unusable driving video."""


class WatermarkReadError(InputError):
    """A file that cannot be read as an image or a video to look for the watermark."""


class OutputError(TalkfaceError, ValueError):
    """The output path cannot be written."""


class ProvenanceError(TalkfaceError, ValueError):
    """C2PA unavailable, or a certificate or key that cannot be used."""


class Cancelled(TalkfaceError):
    """The job was cancelled before it finished (nothing was written)."""
