"""The live capacity of this machine, measured: the CPU time one live frame costs the server
(render, watermark, JPEG, the timeline, and the session's recording), taken by making a few
frames the way a live session does. Admission divides the cores by it (config.py)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from talkface.analysis.audio import Audio
from talkface.engine import FaceModel, GenerateOptions
from talkface.live import protocol as proto
from talkface.live.recorder import RECORD_CRF, RECORD_PRESET
from talkface.live.stream import AvatarStream
from talkface.output.video import Mp4Writer

CALIBRATION_FRAMES = 30   # frames measured (about half a second of CPU)
WARM_FRAMES = 3           # frames made first and not counted (first-call costs)


def frame_cpu_ms(face: FaceModel, fps: float, frames: int = CALIBRATION_FRAMES) -> float:
    """CPU milliseconds (all threads of this process) one live frame costs: an unpaced stream
    making idle frames with JPEG, each also encoded as the session's recording is. On a busy
    machine CPU time reads high, so the capacity errs on the safe side."""
    stream = AvatarStream(face, GenerateOptions(fps=fps), audio_rate=proto.LIVE_AUDIO_RATE, jpeg_quality=80,
                          paced=False)
    folder = Path(tempfile.mkdtemp(prefix="talkface-capacity-"))
    track = Audio(np.zeros(1, np.float32), proto.LIVE_AUDIO_RATE)
    try:
        writer = Mp4Writer(folder / "calibration.mp4", face.portrait.size, fps, track, crf=RECORD_CRF,
                           preset=RECORD_PRESET)
        try:
            for _ in range(WARM_FRAMES):
                writer.write(stream.next_frame_now().image)
            cpu = time.process_time()
            for _ in range(frames):
                writer.write(stream.next_frame_now().image)
            return 1000.0 * (time.process_time() - cpu) / frames
        finally:
            writer.abort()
    finally:
        stream.close()
        folder.rmdir()
