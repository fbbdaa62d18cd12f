"""`talkface serve`: the live web app and an HTTP API, on FastAPI + uvicorn.

    talkface serve [--host 127.0.0.1] [--port 8000] [--token T] [--allowed-host NAME] [--max-live N]

- GET  /                      the web app: pick a portrait, then upload audio, use the microphone or
                              type text, and watch the face talk live; control sliders; MP4 download
- GET  /healthz               liveness, live sessions and queued file jobs
- POST /v1/generate           multipart image + audio (or text) + controls -> MP4
- GET  /v1/jobs/{id}          a queued file job's place (send `X-Job-Id` with /v1/generate)
- POST /v1/portraits          multipart image -> {"id"} for a live session
- WS   /v1/live               the live session (protocol in docs/streaming.md)
- GET  /v1/sessions/{id}/recording.mp4   the session so far as an MP4
- GET  /docs, /openapi.json   the API description

This module is only the command line (it loads with every `talkface` command, so it stays
light); the app is talkface.live.app.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys

from talkface.live.config import LIVE_CPU_SHARE, MB, ConfigError, ServerConfig, is_loopback

EXIT_USAGE = 2
WS_MAX_MESSAGE_BYTES = 1 << 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind; default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API (or set TALKFACE_TOKEN)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name browsers may use to reach this server besides localhost / 127.0.0.1 "
                        "(repeatable; other names are refused, against DNS rebinding)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body; default 20")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="longest audio for /v1/generate and longest queued live speech; default 120")
    p.add_argument("--max-live", "--max-sessions", dest="max_live", type=int, default=None,
                   help="live sessions at once; default: what this machine's cores sustain at --fps "
                        "(the CPU cost of a live frame, measured at start)")
    p.add_argument("--max-live-per-client", type=int, default=None,
                   help="live sessions one client address may hold; default half of --max-live")
    p.add_argument("--max-waiting-jobs", type=int, default=4,
                   help="file jobs waiting for the renderer; past it 503 with Retry-After; default 4")
    p.add_argument("--fps", type=float, default=25.0, help="live frame rate; default 25")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    token = args.token or os.environ.get("TALKFACE_TOKEN") or None
    return ServerConfig(token=token, max_upload_bytes=int(args.max_upload_mb * MB), max_seconds=args.max_seconds,
                        max_live=args.max_live, max_live_per_client=args.max_live_per_client,
                        max_waiting_jobs=args.max_waiting_jobs, fps=args.fps,
                        loopback=is_loopback(args.host), allowed_hosts=tuple(args.allowed_host))


def with_measured_capacity(config: ServerConfig, face=None) -> ServerConfig:
    """Without --max-live: the live capacity from what a live frame costs on this machine with
    the frame pool saturated by several sessions, measured now on `face` (default: the built-in
    portrait; about two seconds)."""
    if config.max_live is not None:
        return config
    from dataclasses import replace

    from talkface.live.capacity import calibrate

    if face is None:
        from talkface.analysis.portrait import Portrait
        from talkface.engine import FaceModel

        face = FaceModel(Portrait.builtin())
    cal = calibrate(face, config.fps)
    config = replace(config, live_frame_ms=cal.frame_ms, live_cores=cal.workers)
    print(f"talkface: {cal.streams} live streams at once make {cal.frames_per_s:.0f} frames/s here "
          f"({cal.frame_ms:.1f} core-ms each): {config.live_capacity} live sessions at {config.fps:g} fps fit "
          f"in {LIVE_CPU_SHARE:.0%} of {cal.workers} cores", file=sys.stderr)
    return config


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port or a bad address is one clear line."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                        flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def run(args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host.strip().strip("[]")
    shown = f"[{host}]" if ":" in host else host
    try:
        if not 1 <= args.port <= 65535:
            raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"talkface: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sock = bind(host, args.port)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"talkface: error: cannot listen on {shown}:{args.port}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    if not config.loopback and not config.token:
        print(f"talkface: warning: serving on {shown} without --token: anyone who can reach this address "
              "can use the API and the live app", file=sys.stderr)
    config = with_measured_capacity(config)
    from talkface.live.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", ws_max_size=WS_MAX_MESSAGE_BYTES))
    print(f"talkface: serving on http://{shown}:{args.port}/ (up to {config.live_capacity} live sessions; "
          "Ctrl+C to stop)", file=sys.stderr)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
