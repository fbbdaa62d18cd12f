"""The Pipecat example end to end, for tests/test_pipecat.py and `agents_bench`: a real
`talkface serve`, the example bot (examples/pipecat_bot, in the agent's own venv,
.venv-pipecat) and Debian's headless Chromium that talks to it over WebRTC, all on this machine.

The bot runs with --stamp: each frame carries its number in its bottom rows, the page reads it
back from every displayed video frame (plus the mouth box's pixels and the audio level every
5 ms), and the bot's /api/trace says what each number was (speech or not, when its TTS audio
entered the pipeline, when it left the bot). `analyse` in agents_bench turns both into figures.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIPECAT_PYTHON = REPO / ".venv-pipecat" / "bin" / "python"
BOT = REPO / "examples" / "pipecat_bot" / "bot.py"
CHROMIUM = os.environ.get("TALKFACE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                  # host ICE candidates as plain addresses, not mDNS names aiortc cannot resolve
                  "--disable-features=WebRtcHideLocalIpsWithMdns"]
START_TIMEOUT_S = 90.0     # the server loads its face models, the bot imports Pipecat: slow on a busy machine
CONNECT_TIMEOUT_S = 30.0


def missing_requirements() -> str | None:
    """Why the end-to-end Pipecat run cannot happen here, or None."""
    if not PIPECAT_PYTHON.exists():
        return f"the Pipecat agent venv is missing ({PIPECAT_PYTHON}; create it with `make pipecat-env`)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt; no browser download needed)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, log, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{proc.args[1]} exited with {proc.returncode}: {log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


@contextlib.contextmanager
def process(args: list[str], ready_url: str):
    """Its log goes to a temporary file: an undrained stderr pipe fills after minutes of log
    lines and then blocks the process."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            wait_for_http(ready_url, proc, log)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def talkface_serve(fps: float = 25.0, max_live: int = 4):
    """A real `talkface serve` on 127.0.0.1 (a free port); yields its http:// root."""
    port = free_port()
    args = [sys.executable, "-m", "talkface.cli", "serve", "--port", str(port), "--fps", f"{fps:g}",
            "--max-live", str(max_live)]
    with process(args, f"http://127.0.0.1:{port}/healthz") as server:
        yield f"http://127.0.0.1:{port}", server.pid


@dataclass(frozen=True)
class Stack:
    page_url: str      # the bot's page
    bot_url: str       # the bot's HTTP root (trace, say, interrupt)
    bot_pid: int
    server_pid: int


@contextlib.contextmanager
def pipecat_stack(fps: float = 25.0, bot_flags: tuple[str, ...] = ()):
    """`talkface serve` + the example bot (--stamp and `bot_flags`), both on 127.0.0.1, stopped on exit."""
    bot_port = free_port()
    with talkface_serve(fps) as (serve_url, server_pid):
        bot = [str(PIPECAT_PYTHON), str(BOT), "--talkface", serve_url.replace("http", "ws") + "/v1/live",
               "--port", str(bot_port), "--stamp", *bot_flags]
        with process(bot, f"http://127.0.0.1:{bot_port}/api/trace") as agent:
            url = f"http://127.0.0.1:{bot_port}"
            yield Stack(url + "/", url, agent.pid, server_pid)


def mouth_box(size: int = 512, margin: float = 0.15) -> tuple[int, int, int, int]:
    """The built-in portrait's mouth (lips and the jaw's travel), in frame pixels."""
    from talkface.analysis import landmarks as lm
    from talkface.analysis.portrait import Portrait

    pts = Portrait.builtin(size).points
    lips = pts[list(lm.LIPS_UPPER_OUTER + lm.LIPS_LOWER_OUTER), :2]
    (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
    pad_x, pad_y = margin * (x1 - x0), 0.5 * (y1 - y0)
    return int(x0 - pad_x), int(y0), int(x1 + pad_x), int(y1 + pad_y)


class Browser:
    """Headless Chromium on the bot's page; `say` / `interrupt` as a person would type / barge in."""

    def __init__(self, page) -> None:
        self.page = page

    def wait_connected(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.page.evaluate("talkface.state")
            if state == "connected" and self.page.evaluate("talkface.frames.length") > 0:
                return
            if state in ("failed", "closed") or self.page.evaluate("talkface.errors.length"):
                break
            time.sleep(0.2)
        raise RuntimeError(f"WebRTC did not connect: {self.page.evaluate('[talkface.state, talkface.errors]')}")

    def say(self, text: str) -> None:
        self.page.evaluate("t => talkface.say(t)", text)

    def interrupt(self) -> None:
        self.page.evaluate("talkface.interrupt()")

    def collected(self) -> dict:
        return self.page.evaluate("({frames: talkface.frames, levels: talkface.levels, says: talkface.says, "
                                  "stats: talkface.stats})")


@contextlib.contextmanager
def browser_on(stack: Stack, profile_dir: Path):
    from playwright.sync_api import sync_playwright

    box = ",".join(map(str, mouth_box()))
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(profile_dir), executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_FLAGS, viewport={"width": 700, "height": 760})
        try:
            page = context.new_page()
            page.goto(f"{stack.page_url}?measure=1&mouth={box}")
            browser = Browser(page)
            browser.wait_connected()
            yield browser
        finally:
            context.close()


def bot_trace(stack: Stack) -> dict:
    with urllib.request.urlopen(stack.bot_url + "/api/trace", timeout=10) as reply:
        return json.loads(reply.read())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
