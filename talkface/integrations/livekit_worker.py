"""The talkface avatar worker for LiveKit: joins a room when an agent asks, and publishes the
face's video and audio there (livekit-agents' `AvatarRunner` + `TalkfaceVideoGenerator`).

    python -m talkface.integrations.livekit_worker --talkface ws://127.0.0.1:8000/v1/live

It listens on 127.0.0.1:8089 for `POST /launch` (sent by `talkface.integrations.livekit.AvatarSession`:
the LiveKit URL, a room token for the avatar, the portrait id), and runs one avatar per request
until its room closes. Rendering happens in a `talkface serve` process; this one only forwards
audio and frames, so it runs in the agent's environment (`.venv-livekit`).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass

from livekit import rtc
from livekit.agents.voice.avatar import AvatarRunner, DataStreamAudioReceiver

from talkface.integrations.client import LiveClosed
from talkface.integrations.livekit import TalkfaceVideoGenerator

DEFAULT_PORT = 8089
MAX_AVATARS = 4          # rooms one worker serves at once; `talkface serve` caps its own sessions too
LAUNCH_FIELDS = ("livekit_url", "token", "room")
CONNECT_TIMEOUT_S = 10.0   # joining the room
# The runner's audio and video queues. Its default, 100 ms, suits generators that run ahead of real
# time; talkface serve paces its frames, so the video queue stays empty while the audio queue
# fills after any hiccup, and the sound would trail the picture by up to 100 ms.
QUEUE_MS = 40

log = logging.getLogger("talkface.livekit")


@dataclass(frozen=True)
class WorkerConfig:
    talkface_url: str = "ws://127.0.0.1:8000/v1/live"
    talkface_token: str | None = None
    max_avatars: int = MAX_AVATARS


async def start_runner(room: rtc.Room, receiver, generator: TalkfaceVideoGenerator,
                       runner_cls: type[AvatarRunner] = AvatarRunner) -> AvatarRunner:
    """An `AvatarRunner` for `generator`, started. On barge-in it also empties the runner's
    audio/video queues (~100 ms each), so the published face falls silent at once."""
    runner = runner_cls(room, audio_recv=receiver, video_gen=generator, options=generator.options,
                        _queue_size_ms=QUEUE_MS)
    await runner.start()
    tasks: set[asyncio.Task] = set()

    def flush() -> None:
        task = asyncio.create_task(runner.av_sync.clear_queue())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    receiver.on("clear_buffer", flush)
    return runner


async def run_avatar(config: WorkerConfig, livekit_url: str, token: str, portrait: str = "builtin") -> None:
    """Join the room, publish the face until the room disconnects, then leave."""
    room = rtc.Room()
    closed = asyncio.Event()
    room.on("disconnected", lambda *_: closed.set())
    generator = runner = None
    try:
        await room.connect(livekit_url, token, rtc.RoomOptions(connect_timeout=CONNECT_TIMEOUT_S))
        generator = await TalkfaceVideoGenerator.connect(config.talkface_url, portrait, config.talkface_token)
        runner = await start_runner(room, DataStreamAudioReceiver(room), generator)
        done = asyncio.ensure_future(runner.wait_for_complete())
        await asyncio.wait([done, asyncio.ensure_future(closed.wait())], return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
    finally:
        if runner is not None:
            await runner.aclose()
        if generator is not None:
            await generator.aclose()
        await room.disconnect()


class Launcher:
    """`POST /launch` and `GET /healthz` on loopback; one task per launched avatar."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.avatars: set[asyncio.Task] = set()

    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=64 * 1024)
        app.add_routes([web.post("/launch", self.launch), web.get("/healthz", self.healthz)])
        return app

    async def healthz(self, request):
        from aiohttp import web

        return web.json_response({"status": "ok", "avatars": len(self.avatars), "max_avatars": self.config.max_avatars})

    async def launch(self, request):
        from aiohttp import web

        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and body[k] for k in LAUNCH_FIELDS):
            return web.json_response({"detail": f"expected a JSON object with {', '.join(LAUNCH_FIELDS)}"}, status=422)
        if len(self.avatars) >= self.config.max_avatars:
            return web.json_response({"detail": "the avatar worker is at capacity: retry later"}, status=503)
        task = asyncio.create_task(self._run(body))
        self.avatars.add(task)
        task.add_done_callback(self.avatars.discard)
        return web.json_response({"status": "launched", "room": body["room"]})

    async def _run(self, body: dict) -> None:
        try:
            await run_avatar(self.config, body["livekit_url"], body["token"], str(body.get("portrait") or "builtin"))
        except (rtc.ConnectError, LiveClosed, OSError) as exc:   # the room or talkface serve refused
            log.error("the avatar for room %s could not start: %s", body["room"], exc)
        except Exception:   # a bug: one room's failure must not take the worker down
            log.exception("the avatar for room %s failed", body["room"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m talkface.integrations.livekit_worker",
                                     description="talkface avatar worker for LiveKit Agents")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--talkface", default=WorkerConfig.talkface_url, help="the WS /v1/live URL of talkface serve")
    parser.add_argument("--talkface-token", default=None, help="talkface serve's --token, if it has one")
    parser.add_argument("--max-avatars", type=int, default=MAX_AVATARS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    launcher = Launcher(WorkerConfig(args.talkface, args.talkface_token, args.max_avatars))
    web.run_app(launcher.app(), host=args.host, port=args.port, print=lambda *_: None)


if __name__ == "__main__":
    main()
