"""`talkface serve`: the live web app and an HTTP API, on FastAPI + uvicorn.

    talkface serve [--host 127.0.0.1] [--port 8000] [--token T]

- GET  /                      the web app: pick a portrait, then upload audio, use the microphone or
                              type text, and watch the face talk live; control sliders; MP4 download
- GET  /healthz               liveness
- POST /v1/generate           multipart image + audio (or text) + controls -> MP4
- POST /v1/portraits          multipart image -> {"id"} for a live session
- WS   /v1/live               the live session (protocol in docs/streaming.md)
- GET  /v1/sessions/{id}/recording.mp4   the session so far as an MP4
- GET  /docs, /openapi.json   the API description

Loopback only unless told otherwise; with --token every /v1 call needs
`Authorization: Bearer <token>` (or `?token=` where a browser cannot set headers: the WebSocket
and download links). Uploads are capped in size and duration; everything the server writes
goes to its own temporary folder, removed at exit.
"""

import argparse
import ipaddress
import sys

from talkface.errors import InputError

LIVE_AUDIO_RATE = 24000
FRAME_MAGIC = b"TFF1"
# magic, frame index, pts (s), sent (unix s), flags (1 speech, 2 utterance end, 4 repeat the previous
# picture: JPEG length 0), JPEG bytes, PCM bytes
FRAME_HEADER = "<4sIddBxxxII"
FRAME_HEADER_SIZE = 36


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind; default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API (or set TALKFACE_TOKEN)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body; default 20")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="longest audio for /v1/generate and longest queued live speech; default 120")
    p.add_argument("--max-sessions", type=int, default=2, help="live sessions at once; default 2")
    p.add_argument("--fps", type=float, default=25.0, help="live frame rate; default 25")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    token = args.token or os.environ.get("TALKFACE_TOKEN") or None
    if not 1 <= args.port <= 65535:
        print(f"talkface: error: --port must be between 1 and 65535, got {args.port}", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and not token:
        print(f"talkface: warning: serving on {args.host} without --token: anyone who can reach this address "
              "can use the API and the live app", file=sys.stderr)
    config = ServerConfig(token=token, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                          max_seconds=args.max_seconds, max_sessions=args.max_sessions, fps=args.fps)
    app = create_app(config)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"talkface: serving on http://{shown}:{args.port}/ (Ctrl+C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=1 << 20)
    return 0


class ServerConfig:
    def __init__(self, token: str | None = None, max_upload_bytes: int = 20 * 1024 * 1024,
                 max_seconds: float = 120.0, max_sessions: int = 2, fps: float = 25.0,
                 max_text_chars: int = 2000, max_record_seconds: float = 600.0) -> None:
        if not 1.0 <= max_seconds <= 900.0:
            raise InputError(f"--max-seconds must be between 1 and 900, got {max_seconds:g}")
        if not 5.0 <= fps <= 60.0:
            raise InputError(f"--fps must be between 5 and 60, got {fps:g}")
        if max_sessions < 1:
            raise InputError("--max-sessions must be 1 or more")
        if max_upload_bytes < 1024:
            raise InputError("--max-upload-mb is too small")
        self.token = token
        self.max_upload_bytes = max_upload_bytes
        self.max_seconds = max_seconds
        self.max_sessions = max_sessions
        self.fps = fps
        self.max_text_chars = max_text_chars
        self.max_record_seconds = max_record_seconds




IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
AUDIO_TYPES = ("audio/", "video/mp4", "video/webm", "video/ogg", "video/quicktime", "application/ogg")
MAX_PORTRAITS = 8


def _suffix(filename: str | None, default: str) -> str:
    """A safe file suffix from a client's file name (never a path)."""
    import re
    from pathlib import PurePath

    suffix = PurePath(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else default


def controls_from_fields(gaze: str | None = None, head_pose: str | None = None, head_distance: float = 1.0,
                         emotion: str = "neutral", emotion_strength: float = 0.6, motion_scale: float = 1.0):
    """Controls from form or JSON fields; raises ControlError with a one-line message."""
    from talkface.motion.controls import ControlError, Controls, parse_floats, parse_gaze

    g, camera = (None, False)
    if gaze not in (None, "", "none", "portrait"):
        g, camera = parse_gaze(gaze)
    pose = parse_floats(head_pose, 3, "head_pose") if head_pose not in (None, "") else (0.0, 0.0, 0.0)
    try:
        values = dict(head_distance=float(head_distance), emotion_strength=float(emotion_strength),
                      motion_scale=float(motion_scale))
    except (TypeError, ValueError):
        raise ControlError("head_distance, emotion_strength and motion_scale must be numbers") from None
    return Controls(gaze=g, gaze_camera=camera, head_pose=pose, emotion=str(emotion), **values).validated()


def pack_frame(frame) -> bytes:
    """One live frame as a WebSocket message: header, JPEG, then int16 PCM (little-endian)."""
    import struct
    import time

    pcm = frame.audio.astype("<i2").tobytes()
    jpeg = b"" if frame.repeated else (frame.jpeg or b"")   # a skipped frame: the client keeps its picture
    flags = (1 if frame.speech else 0) | (2 if frame.segment_end else 0) | (4 if frame.repeated else 0)
    return struct.pack(FRAME_HEADER, FRAME_MAGIC, frame.index, frame.pts, time.time(), flags, len(jpeg), len(pcm)) + jpeg + pcm


class _Recorder:
    """The live session as an MP4, encoded in its own thread (x264 releases the GIL)."""

    def __init__(self, folder, size: int, fps: float, audio_rate: int, max_frames: int) -> None:
        import queue
        import threading
        import uuid

        self.path = folder / f"session-{uuid.uuid4().hex[:12]}.mp4"
        self.size, self.fps, self.audio_rate, self.max_frames = size, fps, audio_rate, max_frames
        self.frames = 0
        self.queue: queue.Queue = queue.Queue()
        self.done = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="talkface-recorder", daemon=True)
        self.thread.start()

    def add(self, frame) -> None:
        if self.frames < self.max_frames and not self.done.is_set():
            self.frames += 1
            self.queue.put((frame.image, frame.audio))

    def _run(self) -> None:
        import numpy as np

        from talkface.analysis.audio import Audio
        from talkface.output.video import Mp4Writer

        writer = None
        audio = []
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    break
                image, pcm = item
                if writer is None:
                    writer = Mp4Writer(self.path, self.size, self.fps, Audio(np.zeros(1, np.float32), self.audio_rate),
                                       crf=23, preset="ultrafast")
                writer.write(image)
                audio.append(pcm)
            if writer is not None:
                samples = np.concatenate(audio).astype(np.float32) / 32768.0
                writer.audio = Audio(samples, self.audio_rate)
                writer.close()
        except Exception as exc:  # a failed recording must not take the live session down
            self.error = f"{type(exc).__name__}: {exc}"
            if writer is not None:
                writer.abort()
        finally:
            self.done.set()

    def finish(self):
        """Close the file; returns its path, or None when nothing was recorded."""
        self.queue.put(None)
        self.done.wait()
        return self.path if self.error is None and self.path.is_file() else None

    def discard(self) -> None:
        self.queue.put(None)
        self.done.wait(timeout=30)
        self.path.unlink(missing_ok=True)


def create_app(config: ServerConfig | None = None):
    """The ASGI app. Heavy imports happen here, not when the CLI loads this module."""
    import asyncio
    import atexit
    import hmac
    import json
    import shutil
    import tempfile
    import threading
    import uuid
    from collections import OrderedDict
    from contextlib import asynccontextmanager
    from importlib import resources
    from pathlib import Path

    from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile, WebSocket
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.background import BackgroundTask
    from starlette.concurrency import run_in_threadpool
    from starlette.formparsers import MultiPartParser
    from starlette.websockets import WebSocketDisconnect

    from talkface import __version__
    from talkface.analysis.portrait import Portrait, PortraitError
    from talkface.engine import FaceModel, GenerateOptions
    from talkface.motion.controls import ControlError

    config = config or ServerConfig()
    # uploads stay in memory up to the body cap instead of spilling to the system temp folder
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, config.max_upload_bytes + 1)
    tmp = Path(tempfile.mkdtemp(prefix="talkface-serve-"))
    atexit.register(shutil.rmtree, tmp, True)
    web = resources.files("talkface.live") / "web"

    faces: OrderedDict[str, FaceModel] = OrderedDict()
    faces_lock = threading.Lock()
    sessions: dict[str, dict] = {}
    jobs = asyncio.Semaphore(1)   # one file render at a time: the CPU is the limit

    builtin_lock = threading.Lock()

    def face_for(pid: str) -> FaceModel:
        with faces_lock:
            if pid in faces:
                faces.move_to_end(pid)
                return faces[pid]
        if pid != "builtin":
            raise KeyError(pid)
        with builtin_lock:   # built once, however many requests ask at the same time
            with faces_lock:
                if pid in faces:
                    return faces[pid]
            face = FaceModel(Portrait.builtin())
            with faces_lock:
                faces[pid] = face
            return face

    @asynccontextmanager
    async def lifespan(app):
        # analyse the built-in portrait in the background, so the first Start is quick
        warm = asyncio.ensure_future(run_in_threadpool(face_for, "builtin"))
        yield
        warm.cancel()
        for s in list(sessions.values()):
            s["stream"].close()
        shutil.rmtree(tmp, ignore_errors=True)

    app = FastAPI(title="talkface", version=__version__, lifespan=lifespan,
                  description="Make a still portrait talk: files over HTTP, live over a WebSocket. "
                              "All output is marked as AI-generated (metadata and invisible watermark).")
    app.state.tmp = tmp
    app.state.config = config

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        if not _same_origin(request.headers):
            return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None:   # a chunked body could not be capped before it is read
                return JSONResponse({"detail": "send a Content-Length header"}, status_code=411)
            try:
                n = int(length)
            except ValueError:
                return JSONResponse({"detail": "bad Content-Length header"}, status_code=400)
            if n > config.max_upload_bytes:
                return JSONResponse({"detail": f"request body is {n / 1e6:.1f} MB; the limit is "
                                               f"{config.max_upload_bytes / 1e6:.1f} MB"}, status_code=413)
        return await call_next(request)

    def _token_ok(supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(supplied.encode(), config.token.encode())

    def bearer(request: Request) -> None:
        if not config.token:
            return
        auth = request.headers.get("authorization", "")
        supplied = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not _token_ok(supplied):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def bearer_or_query(request: Request) -> None:
        if config.token and not _token_ok(request.query_params.get("token")):
            bearer(request)

    async def read_upload(upload: UploadFile, kinds: tuple[str, ...], what: str, default_suffix: str) -> Path:
        ctype = (upload.content_type or "").split(";")[0].strip().lower()
        if not any(ctype == k or (k.endswith("/") and ctype.startswith(k)) for k in kinds):
            raise HTTPException(415, f"{what}: unsupported content type '{ctype or 'none'}'")
        data = await upload.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise HTTPException(413, f"{what} is larger than {config.max_upload_bytes / 1e6:.1f} MB")
        if not data:
            raise HTTPException(422, f"{what} is empty")
        job = Path(tempfile.mkdtemp(prefix="up-", dir=tmp))
        path = job / f"{what}{_suffix(upload.filename, default_suffix)}"
        path.write_bytes(data)
        return path

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse((web / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    @app.get("/healthz", tags=["service"])
    async def healthz():
        return {"status": "ok", "version": __version__, "live_sessions": len(sessions)}

    # ------------------------------------------------------------------ files
    @app.post("/v1/generate", tags=["files"], dependencies=[Depends(bearer)],
              response_class=Response, responses={200: {"content": {"video/mp4": {}}, "description": "the MP4"},
                                                  401: {}, 413: {}, 415: {}, 422: {}})
    async def generate_video(
        image: UploadFile | None = File(None, description="portrait image; default: the built-in portrait"),
        audio: UploadFile | None = File(None, description="speech or song (wav, mp3, m4a, ogg, flac, webm...)"),
        text: str | None = Form(None, description="say this instead of uploading audio (offline TTS)"),
        voice: str = Form("en", description="language for text, see `talkface voices`"),
        gaze: str | None = Form(None, description="YAW,PITCH degrees or 'camera'"),
        head_pose: str | None = Form(None, description="YAW,PITCH,ROLL offset in degrees"),
        head_distance: float = Form(1.0, description="0.6 (closer) .. 1.5 (farther)"),
        emotion: str = Form("neutral", description="neutral, happy, sad, angry or surprised"),
        emotion_strength: float = Form(0.6, description="0..1"),
        motion_scale: float = Form(1.0, description="0 still head .. 2 lively"),
        seed: int = Form(0),
        fps: float = Form(25.0, description="5..60"),
        watermark_id: int = Form(0, description="0..65535, carried in the invisible watermark"),
    ):
        from talkface.motion.controls import ControlTrack

        if audio is None and not text:
            raise HTTPException(422, "give an audio file or text")
        if audio is not None and text:
            raise HTTPException(422, "give an audio file or text, not both")
        if text is not None and len(text) > config.max_text_chars:
            raise HTTPException(413, f"text is longer than {config.max_text_chars} characters")
        if not 5.0 <= fps <= 60.0:
            raise HTTPException(422, f"fps must be between 5 and 60, got {fps:g}")
        if not 0 <= watermark_id <= 65535:
            raise HTTPException(422, f"watermark_id must be between 0 and 65535, got {watermark_id}")
        try:
            controls = controls_from_fields(gaze, head_pose, head_distance, emotion, emotion_strength, motion_scale)
        except ControlError as exc:
            raise HTTPException(422, str(exc)) from None
        paths = []
        try:
            if image is not None:
                paths.append(await read_upload(image, IMAGE_TYPES, "image", ".img"))
            if audio is not None:
                paths.append(await read_upload(audio, AUDIO_TYPES, "audio", ".audio"))
            options = GenerateOptions(fps=fps, seed=seed, controls=ControlTrack(base=controls), watermark_id=watermark_id)
            async with jobs:
                data = await run_in_threadpool(_render_file, config, tmp, paths, image is not None,
                                               text, voice, options, face_for)
        finally:
            for p in paths:
                shutil.rmtree(p.parent, ignore_errors=True)
        return Response(data, media_type="video/mp4",
                        headers={"Content-Disposition": 'attachment; filename="talkface.mp4"'})

    # ------------------------------------------------------------------ live
    @app.post("/v1/portraits", tags=["live"], dependencies=[Depends(bearer)])
    async def add_portrait(image: UploadFile = File(..., description="portrait for a live session")):
        path = await read_upload(image, IMAGE_TYPES, "image", ".img")
        try:
            portrait = await run_in_threadpool(Portrait.from_file, path)
            face = await run_in_threadpool(FaceModel, portrait)
        except PortraitError as exc:
            raise HTTPException(422, _clean(str(exc), path, "the image upload")) from None
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)
        pid = uuid.uuid4().hex[:16]
        with faces_lock:
            faces[pid] = face
            while len(faces) > MAX_PORTRAITS:
                oldest = next(k for k in faces if k != "builtin")
                faces.pop(oldest)
        return {"id": pid, "name": image.filename or "portrait"}

    @app.get("/v1/sessions/{sid}/recording.mp4", tags=["live"], dependencies=[Depends(bearer_or_query)],
             response_class=FileResponse, responses={200: {"content": {"video/mp4": {}}}, 404: {}})
    async def recording(sid: str):
        session = sessions.get(sid)
        if session is None:
            raise HTTPException(404, "no such live session (recordings end with their session)")
        old = session["recorder"]
        session["recorder"] = _Recorder(tmp, session["size"], config.fps, LIVE_AUDIO_RATE,
                                        int(config.max_record_seconds * config.fps))
        path = await run_in_threadpool(old.finish)
        if path is None:
            raise HTTPException(404, "nothing recorded yet" if old.error is None else f"recording failed: {old.error}")
        return FileResponse(path, media_type="video/mp4", filename="talkface-session.mp4",
                            background=BackgroundTask(path.unlink, missing_ok=True))

    @app.websocket("/v1/live")
    async def live(ws: WebSocket, portrait: str = "builtin"):
        from talkface.analysis.speech import SpeechError, speak
        from talkface.live.stream import AvatarStream, StreamFull
        from talkface.motion.controls import ControlTrack

        if not _same_origin(ws.headers):   # WebSockets are not covered by the browser's CORS checks
            await ws.close(code=1008, reason="cross-origin connection refused")
            return
        if config.token:
            auth = ws.headers.get("authorization", "")
            supplied = auth[7:].strip() if auth[:7].lower() == "bearer " else ws.query_params.get("token")
            if not _token_ok(supplied):
                await ws.close(code=1008, reason="missing or wrong token")
                return
        if len(sessions) >= config.max_sessions:
            await ws.close(code=1013, reason="too many live sessions; try again later")
            return
        try:
            face = await run_in_threadpool(face_for, portrait)
        except KeyError:
            await ws.close(code=1008, reason="unknown portrait id")
            return
        await ws.accept()
        sid = uuid.uuid4().hex[:16]
        stream = AvatarStream(face, GenerateOptions(fps=config.fps), audio_rate=LIVE_AUDIO_RATE, jpeg_quality=80,
                              max_queue_s=config.max_seconds)
        size = face.portrait.size
        session = {"stream": stream, "size": size,
                   "recorder": _Recorder(tmp, size, config.fps, LIVE_AUDIO_RATE, int(config.max_record_seconds * config.fps))}
        sessions[sid] = session
        rate = 16000

        async def send_frames():
            try:
                async for f in stream:
                    session["recorder"].add(f)
                    await ws.send_bytes(pack_frame(f))
            except (asyncio.CancelledError, WebSocketDisconnect):
                raise
            except Exception as exc:   # a bug: tell the client and end the session rather than freeze
                print(f"talkface: live session {sid} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                try:
                    await ws.close(code=1011, reason="internal error")
                except Exception:
                    pass

        async def error(message: str):
            await ws.send_text(json.dumps({"type": "error", "message": message}))

        sender = asyncio.ensure_future(send_frames())
        try:
            await ws.send_text(json.dumps({"type": "ready", "session": sid, "fps": config.fps, "size": size,
                                           "audio_rate": LIVE_AUDIO_RATE, "max_seconds": config.max_seconds}))
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                if msg.get("bytes") is not None:
                    try:
                        stream.push_audio(msg["bytes"], rate)
                    except (StreamFull, ValueError) as exc:
                        await error(str(exc))
                    continue
                try:
                    data = json.loads(msg.get("text") or "")
                    kind = data.get("type") if isinstance(data, dict) else None
                except ValueError:
                    kind, data = None, {}
                if kind == "audio_format":
                    r = data.get("rate")
                    if not isinstance(r, int) or not 8000 <= r <= 96000:
                        await error("audio_format: rate must be a whole number of Hz between 8000 and 96000")
                    else:
                        rate = r
                elif kind == "end_of_speech":
                    stream.end_of_speech()
                elif kind == "interrupt":
                    stream.interrupt()
                elif kind == "controls":
                    try:
                        fields = {k: data[k] for k in ("gaze", "head_pose", "head_distance", "emotion",
                                                        "emotion_strength", "motion_scale") if k in data}
                        stream.set_controls(ControlTrack(base=controls_from_fields(**fields)))
                    except (ControlError, TypeError) as exc:
                        await error(f"controls: {exc}")
                elif kind == "say":
                    text = data.get("text")
                    if not isinstance(text, str) or not text.strip():
                        await error("say: text is empty")
                    elif len(text) > config.max_text_chars:
                        await error(f"say: text is longer than {config.max_text_chars} characters")
                    else:
                        try:
                            spoken = await run_in_threadpool(speak, text, str(data.get("voice") or "en"))
                            await run_in_threadpool(stream.push_audio, spoken.samples, spoken.sample_rate)
                            stream.end_of_speech()
                        except (SpeechError, StreamFull, ValueError) as exc:
                            await error(f"say: {exc}")
                elif kind == "ping":
                    await ws.send_text(json.dumps({"type": "pong", "queued_s": stream.queued_seconds,
                                                   **stream.stats}))
                else:
                    await error("unknown message; expected audio_format, end_of_speech, interrupt, controls, say or ping")
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            try:
                await sender
            except BaseException:
                pass
            stream.close()
            sessions.pop(sid, None)
            await run_in_threadpool(session["recorder"].discard)

    return app


def _render_file(config: ServerConfig, tmp, paths, has_image: bool, text, voice, options, face_for) -> bytes:
    """Blocking: one /v1/generate job, in the server's temp folder. Raises HTTPException for the client's errors."""
    import shutil
    import tempfile
    from pathlib import Path

    from fastapi import HTTPException

    from talkface.analysis.audio import AudioError, checked_audio, load_audio
    from talkface.analysis.portrait import Portrait, PortraitError
    from talkface.engine import FaceModel, generate
    from talkface.output.video import write_video

    limit = config.max_seconds
    try:
        if text is not None:
            from talkface.analysis.speech import SpeechError, speak

            try:
                spoken = speak(text, voice=voice)
            except SpeechError as exc:
                raise HTTPException(422, f"text: {exc}") from None
            if len(spoken.samples) / spoken.sample_rate > limit:
                raise HTTPException(413, f"the spoken text is longer than the {limit:g} s limit")
            audio = checked_audio(spoken.samples, spoken.sample_rate, "text")
            track = checked_audio(spoken.samples, spoken.sample_rate, "text", rate=spoken.sample_rate)
        else:
            apath = paths[-1]
            try:
                audio = load_audio(apath, max_duration=limit)
                track = load_audio(apath, max_duration=limit, rate=48000)
            except AudioError as exc:
                if "longer than" in str(exc):
                    raise HTTPException(413, f"audio is longer than the {limit:g} s limit") from None
                raise HTTPException(422, _clean(str(exc), apath, "the audio upload")) from None
            if audio.duration > limit:
                raise HTTPException(413, f"audio is longer than the {limit:g} s limit")
        try:
            face = FaceModel(Portrait.from_file(paths[0])) if has_image else face_for("builtin")
        except PortraitError as exc:
            raise HTTPException(422, _clean(str(exc), paths[0], "the image upload")) from None
    except AudioError as exc:
        raise HTTPException(422, str(exc)) from None
    job = Path(tempfile.mkdtemp(prefix="job-", dir=tmp))
    try:
        out = write_video(job / "out.mp4", generate(face, audio, options), track, fps=options.fps)
        return out.read_bytes()
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _same_origin(headers) -> bool:
    """A browser request from another site (a page the user happens to visit) must not drive a
    server on their machine: when the Origin header is present, its host must be this one."""
    from urllib.parse import urlsplit

    origin = headers.get("origin")
    if not origin:
        return True   # not from a browser page (curl, SDKs), or a same-origin GET
    host = headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def _clean(message: str, path, name: str) -> str:
    """An error message about a temp file, as the client should read it (no server paths)."""
    import re

    message = re.sub(r"\[Errno -?\d+\] ", "", message)
    message = re.sub(r":? ?'?" + re.escape(str(path)) + r"'?", "", message)
    return f"{message} ({name})"
