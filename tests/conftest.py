import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A file in ../shared/data, or skip the test where that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not available: {path}")
    return path


@pytest.fixture(scope="session")
def portrait():
    from talkface.analysis.portrait import Portrait

    return Portrait.builtin()


@pytest.fixture(scope="session")
def face(portrait):
    from talkface.engine import FaceModel

    return FaceModel(portrait)


@pytest.fixture(scope="session")
def speech_audio():
    """1 s of silence, a spoken sentence, 1 s of silence: 16 kHz Audio."""
    from talkface.analysis.audio import SAMPLE_RATE, checked_audio
    from talkface.analysis.speech import speak

    spoken = speak("Hello there, my name is Anna and I am happy to meet you today.")
    voice = checked_audio(spoken.samples, spoken.sample_rate).samples
    silence = np.zeros(SAMPLE_RATE, np.float32)
    return checked_audio(np.concatenate([silence, voice, silence]), SAMPLE_RATE)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import soundfile as sf

    sf.write(str(path), samples, rate)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail with the process's stderr if it exits first."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {log[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


@pytest.fixture(scope="session")
def serve_url(tmp_path_factory):
    """A real `talkface serve` process on 127.0.0.1 (a free port), stopped after the session.
    Its log goes to a file: an undrained stderr pipe fills and then blocks the server."""
    import subprocess
    import sys

    port = free_port()
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "talkface.cli", "serve", "--port", str(port), "--max-live", "4"],
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
