"""Who speaks in each clip, and with which emotion: the speaker id keeps each person on
one side of every train/test split.

By default a clip's speaker is its file name's stem; the groups below join clips known
to show the same person (train_videos/README.md and MANIFEST.tsv, videos/README.md);
a TSV (`clip<TAB>speaker`, optional header) overrides both, and so does a `speaker`
column in a folder's MANIFEST.tsv.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

# clips showing the same person (stems), by speaker id
SAME_SPEAKER: dict[str, tuple[str, ...]] = {
    "obama": ("video_m_obama-uncropped_18", "video_m_obama-cspan-philly_38", "video_m_obama-rally_39"),
    "trump": ("video_m_trump_04", "video_m_trump-fundraiser_42"),
    "mead-m030": ("video_m_mead-m030-sad_19", "video_m_mead-m030-angry_44"),
    "grid-id2": ("video_m_grid-swwp2s_21", "video_m_grid-pwij3p_27"),
    "vox-suit-sunglasses": ("video_m_vox-sunglasses_13", "video_m_vox-suit_15"),
    "hdtf-aoc": ("video_woman_frontal_03", "video_woman_hdtf_06"),
}
# speaker ids in fetched manifests that name a person already known under another id
ALIASES = {"st-happyenglish-woman": "edtalk-smiling-woman"}
_MEAD = re.compile(r"mead-([mw]\d{3})-([a-z]+)", re.IGNORECASE)
_MEAD_RAW = re.compile(r"\b([MW]\d{3})_(?:level_\d_)?([a-z]+)_", re.IGNORECASE)
_EAMM = re.compile(r"eamm_([a-z]+)", re.IGNORECASE)   # MEAD recordings as EAMM ships them
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fear", "contempt")


@dataclass(frozen=True)
class SpeakerTable:
    overrides: dict[str, str] = field(default_factory=dict)   # clip stem -> speaker id

    def speaker(self, stem: str) -> str:
        if stem in self.overrides:
            return normalise_speaker(self.overrides[stem])
        for speaker, stems in SAME_SPEAKER.items():
            if stem in stems:
                return speaker
        m = _MEAD.search(stem) or _MEAD_RAW.search(stem)
        if m:
            return "mead-" + m.group(1).lower()
        return stem

    def with_file(self, path: str | Path) -> "SpeakerTable":
        """This table plus the clip -> speaker rows of a TSV (later rows win)."""
        return SpeakerTable({**self.overrides, **read_speaker_tsv(path)})


def normalise_speaker(value: str) -> str:
    """A manifest's speaker cell without its note ("obama (same as ...)" -> "obama"), aliases resolved."""
    value = value.split(" (")[0].strip()
    return ALIASES.get(value, value)


def read_speaker_tsv(path: str | Path) -> dict[str, str]:
    """`clip<TAB>speaker` rows (a clip as a file name or stem); or a manifest with `file`
    and `speaker` columns. Rows without a speaker are skipped."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"speaker table not found: {path}")
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    if not rows:
        return {}
    header = [h.strip().lower() for h in rows[0]]
    if "speaker" in header:
        clip_col = next((header.index(k) for k in ("file", "clip", "name", "path") if k in header), 0)
        spk_col, rows = header.index("speaker"), rows[1:]
    elif all(len(r) == 2 for r in rows if r):
        clip_col, spk_col = 0, 1
    else:
        raise ValueError(f"speaker table {path}: expected clip<TAB>speaker rows or a 'speaker' column")
    out = {}
    for r in rows:
        if len(r) > max(clip_col, spk_col) and r[spk_col].strip():
            out[Path(r[clip_col].strip()).stem] = r[spk_col].strip()
    return out


def emotion_of(stem: str) -> str | None:
    """The emotion label where the file name carries one (MEAD clips), else None."""
    m = _MEAD.search(stem) or _MEAD_RAW.search(stem)
    if m and m.group(2).lower() in EMOTIONS:
        return m.group(2).lower()
    m = _EAMM.search(stem)
    return m.group(1).lower() if m and m.group(1).lower() in EMOTIONS else None
