"""The live capacity of this machine, measured: the CPU time one live frame costs the server
(render, watermark, JPEG, the timeline, and keeping it for the session's recording), taken by
making a few frames the way a live session does. Admission divides the cores by it (config.py)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from talkface.engine import FaceModel, GenerateOptions
from talkface.live import protocol as proto
from talkface.live.recorder import Recorder
from talkface.live.stream import AvatarStream

CALIBRATION_FRAMES = 30   # frames measured (about half a second of CPU)
WARM_FRAMES = 3           # frames made first and not counted (first-call costs)


def frame_cpu_ms(face: FaceModel, fps: float, frames: int = CALIBRATION_FRAMES) -> float:
    """CPU milliseconds (all threads of this process) one live frame costs: an unpaced stream
    making idle frames with JPEG, each also kept by a session recorder. On a busy machine CPU
    time reads high, so the capacity errs on the safe side."""
    stream = AvatarStream(face, GenerateOptions(fps=fps), audio_rate=proto.LIVE_AUDIO_RATE, jpeg_quality=80,
                          paced=False)
    folder = Path(tempfile.mkdtemp(prefix="talkface-capacity-"))
    recorder = Recorder(folder, face.portrait.size, fps, proto.LIVE_AUDIO_RATE, WARM_FRAMES + frames)
    try:
        for _ in range(WARM_FRAMES):
            recorder.add(stream.next_frame_now())
        cpu = time.process_time()
        for _ in range(frames):
            recorder.add(stream.next_frame_now())
        return 1000.0 * (time.process_time() - cpu) / frames
    finally:
        recorder.discard()
        stream.close()
        folder.rmdir()
