"""The frame pool shared by live streams: earliest deadline first, frames in order per stream."""
import asyncio
import threading

import numpy as np

from talkface.analysis.portrait import Portrait
from talkface.engine import FaceModel, GenerateOptions
from talkface.live.framepool import FramePool
from talkface.live.stream import AvatarStream


def test_pending_calls_run_earliest_deadline_first():
    pool = FramePool(workers=1)
    gate, ran = threading.Event(), []
    try:
        first = pool.submit(0.0, gate.wait)            # holds the only worker while the others queue
        later = [pool.submit(d, ran.append, d) for d in (3.0, 1.0, 2.0, 1.5)]
        cancelled = pool.submit(0.5, ran.append, 0.5)
        assert cancelled.cancel()
        gate.set()
        first.result(5)
        for f in later:
            f.result(5)
        assert ran == [1.0, 1.5, 2.0, 3.0]
    finally:
        pool.close()


def test_streams_sharing_a_pool_make_the_frames_they_make_alone():
    face = FaceModel(Portrait.builtin(128))
    pool = FramePool(workers=1)

    async def run(stream, n):
        out = []
        async for f in stream:
            out.append(f)
            if len(out) == n:
                break
        await stream.aclose()
        return out

    async def main():
        shared = [AvatarStream(face, GenerateOptions(fps=25), paced=False, pool=pool) for _ in range(3)]
        alone = AvatarStream(face, GenerateOptions(fps=25), paced=False)
        return await asyncio.gather(*[run(s, 12) for s in shared + [alone]])

    try:
        *shared, alone = asyncio.run(main())
    finally:
        pool.close()
    for frames in shared:
        assert [f.index for f in frames] == list(range(12))
        assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, alone))
    assert [t.name for t in threading.enumerate()].count("talkface-frames") <= 1
