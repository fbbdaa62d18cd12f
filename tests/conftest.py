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



@pytest.fixture(scope="session")
def serve_url():
    """A real `talkface serve` process on 127.0.0.1 (a free port), stopped after the session."""
    from talkface.evaluation.agents_stack import talkface_serve

    with talkface_serve() as (url, _pid):
        yield url
