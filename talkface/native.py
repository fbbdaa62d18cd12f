"""Native libraries (MediaPipe's C++ logging, libpng, FFmpeg) write warnings straight to file
descriptor 2, whatever Python asks. Users should see talkface's messages, not those internals."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Discard what native code writes to file descriptor 2 inside the block."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def silence_native_stderr() -> Callable[[], None]:
    """For a whole command: Python's sys.stderr keeps writing to the terminal (messages, progress
    bars, tracebacks), while file descriptor 2, where native code writes, goes to /dev/null.
    Returns the function that undoes it. Does nothing where sys.stderr is not descriptor 2
    (a test capturing it) or TALKFACE_DEBUG is set."""
    try:
        if os.environ.get("TALKFACE_DEBUG") or sys.stderr.fileno() != 2:
            return lambda: None
    except (AttributeError, OSError, ValueError):
        return lambda: None
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = os.fdopen(saved, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")
    previous = sys.stderr
    sys.stderr = python_stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)

    def restore() -> None:
        python_stderr.flush()
        os.dup2(saved, 2)
        sys.stderr = previous
        python_stderr.close()

    return restore
