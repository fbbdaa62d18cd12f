"""Progress bars for long work: shown on a terminal, silent otherwise (logs stay clean)."""
from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, unit: str = "frame"):
    """A tqdm bar on stderr when it is a terminal; a disabled one (same interface) otherwise."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not sys.stderr.isatty(), leave=False)
