"""The ASGI app of `talkface serve`: routes, the security checks in front of them, and the
mapping of typed client errors to HTTP statuses. The work lives in jobs (file renders),
sessions (live faces) and protocol (the WebSocket messages)."""

import asyncio
import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from talkface.live import protocol as proto
from talkface.live.config import ServerConfig
from talkface.live.errors import BadInput, ClientError, NotFound, TooLarge
from talkface.live.framepool import FramePool
from talkface.live.jobs import JobQueue
from talkface.live.portraits import PortraitStore
from talkface.live.security import check_body_size, check_caller, check_token, refusal, supplied_token
from talkface.live.sessions import Refused, SessionRegistry

PORTRAIT_WORKERS, PORTRAIT_WAITING, PORTRAIT_PER_CLIENT = 1, 4, 2   # portrait analysis: bounded too
MAX_SEED = 2**32 - 1


class Server:
    """What the routes share: the config, the temp folder, the queues and the sessions."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.tmp = Path(tempfile.mkdtemp(prefix="talkface-serve-"))
        self.portraits = PortraitStore()
        self.jobs = JobQueue(config.file_workers, config.max_waiting_jobs, config.max_jobs_per_client)
        self.analysis = JobQueue(PORTRAIT_WORKERS, PORTRAIT_WAITING, PORTRAIT_PER_CLIENT)
        self.live = SessionRegistry(config.live_capacity, config.live_per_client, learn=config.max_live is None)
        self.frames = FramePool()   # every live session's frames, earliest deadline first

    def close(self) -> None:
        for session in list(self.live.sessions.values()):
            session.stream.close()
        self.frames.close()
        self.jobs.shutdown()
        self.analysis.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)


def create_app(config: ServerConfig | None = None):
    """The ASGI app. Heavy imports happen here, not when the CLI loads the server module."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.formparsers import MultiPartParser

    from talkface.version import __version__

    server = Server(config or ServerConfig())
    # python-multipart logs each malformed body a client sends as a warning on stderr: a
    # client's mistake, answered with a 400, not the operator's concern
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    # uploads stay in memory up to the body cap instead of spilling to the system temp folder
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, server.config.max_upload_bytes + 1)

    @asynccontextmanager
    async def lifespan(app):
        # analyse the built-in portrait in the background, so the first Start is quick
        warm = asyncio.get_running_loop().run_in_executor(None, server.portraits.builtin)
        yield
        warm.cancel()
        server.close()

    app = FastAPI(title="talkface", version=__version__, lifespan=lifespan,
                  description="Make a still portrait talk: files over HTTP, live over a WebSocket. "
                              "All output is marked as AI-generated (metadata and invisible watermark).")
    app.state.tmp = server.tmp
    app.state.config = server.config
    app.state.server = server

    @app.exception_handler(ClientError)
    async def client_error(request, exc: ClientError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    app.add_middleware(Guard, config=server.config)

    web = resources.files("talkface.live") / "web"
    app.mount("/static", StaticFiles(directory=str(web)), name="static")
    _add_pages(app, server, web, __version__)
    _add_file_routes(app, server)
    _add_live_routes(app, server)
    return app


class Guard:
    """Host, Origin and body size checked before any route runs. A plain ASGI middleware: it
    leaves `receive` alone, so a route can still see its client disconnect."""

    def __init__(self, app, config: ServerConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            from starlette.datastructures import Headers
            from starlette.responses import JSONResponse

            headers = Headers(scope=scope)
            try:
                check_caller(self.config, headers)
                check_body_size(self.config, scope["method"], headers)
            except ClientError as exc:
                response = JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def bearer(server: Server, allow_query: bool = False):
    from fastapi import Request

    def check(request: Request) -> None:
        check_token(server.config, supplied_token(request.headers, request.query_params, allow_query))

    return check


def client_of(connection) -> str:
    return connection.client.host if connection.client else "unknown"


def _add_pages(app, server: Server, web, version: str) -> None:
    from fastapi.responses import HTMLResponse

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse((web / "index.html").read_text(encoding="utf-8"))

    @app.get("/healthz", tags=["service"])
    async def healthz():
        return {"status": "ok", "version": version, "live_sessions": len(server.live),
                "live_capacity": server.live.capacity, "file_jobs": server.jobs.counts}


def _add_file_routes(app, server: Server) -> None:
    from fastapi import Depends, File, Form, Request, UploadFile
    from fastapi.responses import Response

    from talkface.live.filejob import FileJob, render_file_job
    from talkface.live.uploads import AUDIO_TYPES, IMAGE_TYPES, remove_upload, save_upload

    config = server.config

    @app.post("/v1/generate", tags=["files"], dependencies=[Depends(bearer(server))],
              response_class=Response, responses={200: {"content": {"video/mp4": {}}, "description": "the MP4"},
                                                  401: {}, 413: {}, 415: {}, 422: {}, 503: {}})
    async def generate_video(
        request: Request,
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
        seed: int = Form(0, description=f"0..{MAX_SEED}"),
        fps: float = Form(25.0, description="5..60"),
        watermark_id: int = Form(0, description="0..65535, carried in the invisible watermark"),
    ):
        options = _file_options(config, audio is not None, text, fps, seed, watermark_id,
                                dict(gaze=gaze, head_pose=head_pose, head_distance=head_distance, emotion=emotion,
                                     emotion_strength=emotion_strength, motion_scale=motion_scale))
        ticket = server.jobs.admit(client_of(request), request.headers.get("x-job-id"))
        place = server.jobs.place(ticket)
        paths = []
        try:
            for upload, kinds, what in ((image, IMAGE_TYPES, "image"), (audio, AUDIO_TYPES, "audio")):
                paths.append(None if upload is None else
                             await save_upload(upload, kinds, what, f".{what}", server.tmp, config.max_upload_bytes))
            job = FileJob(paths[0], paths[1], text, voice, options, config.max_seconds, config.max_image_pixels)
            data = await server.jobs.run(ticket, request.is_disconnected, render_file_job, job,
                                         server.portraits.builtin, server.tmp)
        finally:
            server.jobs.release(ticket)
            for p in paths:
                remove_upload(p)
        return Response(data, media_type="video/mp4",
                        headers={"Content-Disposition": 'attachment; filename="talkface.mp4"',
                                 "X-Job-Id": ticket.id, "X-Queue-Place": str(place)})

    @app.get("/v1/jobs/{job_id}", tags=["files"], dependencies=[Depends(bearer(server))])
    async def job_status(job_id: str):
        """A file job's place: send `X-Job-Id: ID` with /v1/generate, then ask here while it waits."""
        status = server.jobs.status(job_id)
        if status is None:
            raise NotFound("no such job waiting or rendering (finished jobs are forgotten)")
        return status


def _file_options(config: ServerConfig, has_audio: bool, text, fps: float, seed: int, watermark_id: int,
                  control_fields: dict):
    """The job's GenerateOptions from its form fields; BadInput / TooLarge with the reason."""
    from talkface.engine import GenerateOptions
    from talkface.motion.controls import ControlError, ControlTrack

    if not has_audio and not text:
        raise BadInput("give an audio file or text")
    if has_audio and text:
        raise BadInput("give an audio file or text, not both")
    if text is not None and len(text) > config.max_text_chars:
        raise TooLarge(f"text is longer than {config.max_text_chars} characters")
    if not 5.0 <= fps <= 60.0:
        raise BadInput(f"fps must be between 5 and 60, got {fps:g}")
    if not 0 <= seed <= MAX_SEED:
        raise BadInput(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    if not 0 <= watermark_id <= 65535:
        raise BadInput(f"watermark_id must be between 0 and 65535, got {watermark_id}")
    try:
        controls = proto.controls_from_fields(**control_fields)
    except ControlError as exc:
        raise BadInput(str(exc)) from None
    return GenerateOptions(fps=fps, seed=seed, controls=ControlTrack(base=controls), watermark_id=watermark_id)


def _add_live_routes(app, server: Server) -> None:
    from fastapi import Depends, File, Request, UploadFile, WebSocket
    from fastapi.responses import FileResponse
    from starlette.background import BackgroundTask

    from talkface.engine import FaceModel
    from talkface.live.sessions import LiveSession
    from talkface.live.uploads import IMAGE_TYPES, load_portrait, remove_upload, save_upload

    config = server.config

    def analyse(ticket, path):
        return FaceModel(load_portrait(path, config.max_image_pixels))

    @app.post("/v1/portraits", tags=["live"], dependencies=[Depends(bearer(server))])
    async def add_portrait(request: Request, image: UploadFile = File(..., description="portrait for a live session")):
        ticket = server.analysis.admit(client_of(request))
        path = None
        try:
            path = await save_upload(image, IMAGE_TYPES, "image", ".img", server.tmp, config.max_upload_bytes)
            face = await server.analysis.run(ticket, request.is_disconnected, analyse, path)
        finally:
            server.analysis.release(ticket)
            remove_upload(path)
        return {"id": server.portraits.add(face), "name": image.filename or "portrait"}

    @app.get("/v1/sessions/{sid}/recording.mp4", tags=["live"], dependencies=[Depends(bearer(server, True))],
             response_class=FileResponse, responses={200: {"content": {"video/mp4": {}}}, 404: {}})
    async def recording(sid: str):
        session = server.live.sessions.get(sid)
        if session is None:
            raise NotFound("no such live session (recordings end with their session)")
        old = session.swap_recorder()
        path = await asyncio.get_running_loop().run_in_executor(None, old.finish)
        if path is None:
            raise NotFound("nothing recorded yet" if old.error is None else f"recording failed: {old.error}")
        return FileResponse(path, media_type="video/mp4", filename="talkface-session.mp4",
                            background=BackgroundTask(path.unlink, missing_ok=True))

    @app.websocket("/v1/live")
    async def live(ws: WebSocket, portrait: str = "builtin"):
        try:
            check_caller(config, ws.headers)
            check_token(config, supplied_token(ws.headers, ws.query_params, allow_query=True))
            slot = server.live.reserve(client_of(ws))   # booked before the first await
        except ClientError as exc:
            return await _refuse(ws, proto.CLOSE_POLICY, refusal(exc))
        except Refused as exc:
            return await _refuse(ws, exc.code, str(exc))
        try:
            try:
                face = await asyncio.get_running_loop().run_in_executor(None, server.portraits.get, portrait)
            except KeyError:
                return await _refuse(ws, proto.CLOSE_POLICY, "unknown portrait id (upload it again)")
            await ws.accept()
            session = LiveSession(slot.id, ws, face, config, server.tmp, server.frames)
            server.live.sessions[slot.id] = session
            await session.run()
        finally:
            server.live.release(slot)


async def _refuse(ws, code: int, reason: str) -> None:
    """Accept, then close with a code and reason: a browser sees why (a refused handshake shows
    it only an HTTP error it cannot read)."""
    try:
        await ws.accept()
        await ws.close(code=code, reason=reason)
    except Exception:   # the client has already gone
        pass
