"""The marks every talkface picture carries, applied last, on the final picture (after
`--framing full` has pasted the head back into the whole photo): first the invisible
watermark, then the visible label, if any.
"""
from __future__ import annotations

import numpy as np

from talkface.marking.watermark import Payload, Watermarker
from talkface.marking.watermark.embedding import MarkInputs
from talkface.marking.watermark.presence import LatticeState
from talkface.output.video import draw_label


class Marks:
    """Watermark (id None: none, for evaluation only) and then the visible corner label."""

    def __init__(self, watermark_id: int | None = 0, label: str | None = None) -> None:
        self.watermarker = Watermarker(Payload.written(user_id=watermark_id)) if watermark_id is not None else None
        self.label = label or None

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The marked picture: the stream's next one (the watermark carries state)."""
        inputs = self.inputs(image)
        return self.finish(inputs, self.advance(inputs))

    # apply in three steps for a pipeline: `inputs` and `finish` in any thread, `advance` in frame order
    def inputs(self, image: np.ndarray) -> MarkInputs | np.ndarray:
        return self.watermarker.inputs(image) if self.watermarker is not None else image

    def advance(self, inputs: MarkInputs | np.ndarray) -> LatticeState | None:
        return self.watermarker.advance(inputs) if self.watermarker is not None else None

    def finish(self, inputs: MarkInputs | np.ndarray, state: LatticeState | None) -> np.ndarray:
        image = self.watermarker.marked(inputs, state) if self.watermarker is not None else inputs
        if self.label:
            image = draw_label(image, self.label)
        return image
