"""The marks every talkface picture carries, applied last, on the final picture (after
`--framing full` has pasted the head back into the whole photo): first the invisible
watermark, then the visible label, if any.
"""
from __future__ import annotations

import numpy as np

from talkface.marking.watermark import Payload, Watermarker
from talkface.output.video import draw_label


class Marks:
    """Watermark (id None: none, for evaluation only) and then the visible corner label."""

    def __init__(self, watermark_id: int | None = 0, label: str | None = None) -> None:
        self.watermarker = Watermarker(Payload.written(user_id=watermark_id)) if watermark_id is not None else None
        self.label = label or None

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.watermarker is not None:
            image = self.watermarker.embed(image)
        if self.label:
            image = draw_label(image, self.label)
        return image
