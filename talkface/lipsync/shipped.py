"""The shipped lip-sync weights, whichever model they are for: the temporal convolution
network (talkface.lipsync.tcn, kind = "tcn") or the first-generation MLP
(talkface.lipsync.model)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from talkface.lipsync.model import WEIGHTS, LearnedMouth, load_params
from talkface.lipsync.tcn import TemporalConvMouth, is_tcn


def from_params(params: dict[str, np.ndarray]) -> TemporalConvMouth | LearnedMouth:
    return TemporalConvMouth(params) if is_tcn(params) else LearnedMouth(params)


def load_trained(path: str | Path = WEIGHTS) -> TemporalConvMouth | LearnedMouth | None:
    """The model in a weights file, or None when there is none."""
    params = load_params(path)
    return from_params(params) if params is not None else None
