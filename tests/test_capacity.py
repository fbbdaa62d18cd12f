"""Live admission from a measured capacity: what one live frame costs on this machine sets how
many sessions the server admits; the next one is refused with a close code while the running
ones go on frame after frame."""
import json
import os
import struct
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from starlette.websockets import WebSocketDisconnect  # noqa: E402

from talkface.live import protocol  # noqa: E402
from talkface.live.app import create_app  # noqa: E402
from talkface.live.capacity import calibrate  # noqa: E402
from talkface.live.config import LIVE_CPU_SHARE, ServerConfig, measured_live_capacity  # noqa: E402
from talkface.live.server import with_measured_capacity  # noqa: E402

BASE, WS = "http://localhost", "ws://localhost"


def _cost_for(sessions: int, fps: float = 25.0) -> float:
    """The frame cost (ms) at which this machine's cores hold exactly `sessions` sessions."""
    cores = os.cpu_count() or 1   # ServerConfig's default: cost measured on all cores
    return 1000.0 * cores * LIVE_CPU_SHARE / (fps * (sessions + 0.5))


def test_capacity_divides_the_cores_by_the_measured_frame_cost():
    assert measured_live_capacity(25.0, cores=2, frame_ms=16.0) == 4
    assert measured_live_capacity(25.0, cores=2, frame_ms=17.0) == 3
    assert measured_live_capacity(25.0, cores=2, frame_ms=500.0) == 1   # always one
    assert ServerConfig(live_frame_ms=_cost_for(3)).live_capacity == 3
    assert ServerConfig(live_frame_ms=_cost_for(3), max_live=7).live_capacity == 7   # the operator decides
    assert ServerConfig(live_frame_ms=16.0, live_cores=1).live_capacity == 2   # the cores it was measured on


def test_serve_measures_the_frame_cost_unless_max_live_is_given(face):
    fixed = ServerConfig(max_live=2)
    assert with_measured_capacity(fixed, face) is fixed   # nothing measured
    measured = with_measured_capacity(ServerConfig(), face)
    assert 0 < measured.live_frame_ms < 10_000
    assert measured.live_capacity == measured_live_capacity(25.0, measured.live_cores, frame_ms=measured.live_frame_ms)


def test_calibration_runs_concurrent_sessions_through_one_pool_and_charges_their_contention(face):
    """The cost is the saturated pool's wall time at all its cores, so whatever the workers
    wait for (the GIL, each other) counts, not only the CPU one frame takes."""
    cal = calibrate(face, 25.0, workers=2, warm_s=0.3, measure_s=0.8)
    assert (cal.workers, cal.streams) == (2, 4)
    assert cal.frames > 0 and cal.min_stream_frames >= cal.frames / cal.streams - 2   # served in turn, none starved
    assert cal.frames_per_s == pytest.approx(1000.0 * cal.workers / cal.frame_ms)
    assert cal.frame_ms >= 0.95 * cal.cpu_ms    # wall at two workers covers all the process's CPU
    one = calibrate(face, 25.0, workers=1, warm_s=0.3, measure_s=0.8)
    assert one.streams == 2 and one.frame_ms > 0


def _frame_index(message: bytes) -> int:
    return struct.unpack_from(protocol.FRAME_HEADER, message)[1]


def test_past_the_measured_capacity_the_next_session_is_refused_and_the_running_go_on():
    config = ServerConfig(live_frame_ms=_cost_for(2), max_live_per_client=2)
    assert config.live_capacity == 2
    with TestClient(create_app(config), base_url=BASE) as c:
        with c.websocket_connect(WS + "/v1/live") as a, c.websocket_connect(WS + "/v1/live") as b:
            for ws in (a, b):
                assert json.loads(ws.receive_text())["type"] == "ready"
            before = [_frame_index(ws.receive_bytes()) for ws in (a, b)]
            with pytest.raises(WebSocketDisconnect) as info:
                with c.websocket_connect(WS + "/v1/live") as refused:
                    refused.receive_text()
            assert info.value.code == protocol.CLOSE_TRY_LATER and "at capacity (2 live sessions)" in info.value.reason
            for ws, first in zip((a, b), before):   # the running sessions: the very next frames, none missing
                assert [_frame_index(ws.receive_bytes()) for _ in range(5)] == list(range(first + 1, first + 6))
            assert c.get("/healthz").json()["live_sessions"] == 2


def test_a_running_session_that_drops_frames_holds_back_the_next_one(face):
    """Admission also learns from the running sessions: one that dropped a frame lately (the
    machine is busier than at start) keeps new sessions out even below the measured capacity."""
    import asyncio
    import time
    from types import SimpleNamespace

    from talkface.engine import GenerateOptions
    from talkface.live.sessions import Refused, SessionRegistry
    from talkface.live.stream import AvatarStream

    steady = AvatarStream(face, GenerateOptions(fps=25))
    behind = AvatarStream(face, GenerateOptions(fps=25))

    async def run(stall_s: float) -> None:
        frames = behind.frames()
        await frames.__anext__()
        time.sleep(stall_s)   # the event loop stalls, as on an overloaded machine: the next frames are late
        for _ in range(3):
            await frames.__anext__()
        await frames.aclose()

    asyncio.run(run(0.2))
    behind.close()
    steady.close()
    assert behind.stats["dropped_frames"] > 0 and steady.last_drop is None
    registry = SessionRegistry(capacity=5, per_client=5)
    registry.sessions[registry.reserve("a").id] = SimpleNamespace(stream=steady)
    registry.sessions[registry.reserve("b").id] = SimpleNamespace(stream=behind)
    with pytest.raises(Refused) as info:
        registry.reserve("c")
    assert info.value.code == protocol.CLOSE_TRY_LATER and "falling behind" in str(info.value)
    assert len(registry) == 2
