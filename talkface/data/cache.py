"""Reading the prepared cache (`talkface data prepare`): index.json and one .npz per clip.

    from talkface.data.cache import PreparedCache
    cache = PreparedCache("/work/cache/prepared")
    for clip in cache.clips(use="lipsync"):          # or "motion", or None for all
        clip.speaker, clip.times, clip.mouth, clip.features, clip.usable ...

index.json is authoritative for labels (speaker, emotion, use_lipsync / use_motion); the
arrays are described in talkface.data.clip.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from talkface.analysis.audio import AudioFeatures

_FIELDS = ("times", "aligned_times", "usable", "n_faces", "mouth", "pose", "eyes", "gaze", "brows", "face")


@dataclass(frozen=True)
class PreparedClip:
    meta: dict
    path: Path
    times: np.ndarray           # (T,) video frame times on the audio's clock (seconds)
    aligned_times: np.ndarray   # (T,) the audio time that goes with each frame (offset corrected)
    usable: np.ndarray          # (T,) bool: passed the quality checks
    n_faces: np.ndarray
    mouth: np.ndarray           # (T, 4) face_features.MOUTH_FEATURES
    pose: np.ndarray
    eyes: np.ndarray
    gaze: np.ndarray
    brows: np.ndarray
    face: np.ndarray
    features: AudioFeatures | None   # 100 Hz audio features (None: no audio track)

    @property
    def name(self) -> str:
        return self.meta["clip"]

    @property
    def speaker(self) -> str:
        return self.meta["speaker"]

    def points(self) -> np.ndarray:
        """(T, 478, 3) face mesh (pixels), read on demand: it is most of the file."""
        with np.load(self.path) as z:
            return z["points"]


class PreparedCache:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index = self.folder / "index.json"
        if not index.is_file():
            raise ValueError(f"no prepared cache in {self.folder} (run `talkface data prepare ... --out {self.folder}`)")
        self.index = json.loads(index.read_text())

    def names(self, use: str | None = None) -> list[str]:
        """Clip names, those fit for `use` ("lipsync" or "motion") only when given."""
        return [n for n, m in self.index["clips"].items() if use is None or m.get(f"use_{use}")]

    def load(self, name: str) -> PreparedClip:
        meta = self.index["clips"][name]
        path = self.folder / meta["file"]
        with np.load(path) as z:
            arrays = {k: z[k] for k in _FIELDS}
            feats = AudioFeatures(z["log_mel"], z["rms_db"], z["pitch_hz"]) if "log_mel" in z.files else None
        return PreparedClip(meta=meta, path=path, features=feats, **arrays)

    def clips(self, use: str | None = None) -> Iterator[PreparedClip]:
        for name in self.names(use):
            yield self.load(name)
