"""What an operator sets for `talkface serve`, checked once, frozen afterwards."""
from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field

from talkface.errors import InputError

MB = 1024 * 1024
# Core-ms one live frame costs at 512x512 (render + watermark + JPEG + timeline + recording) with
# several sessions sharing the frame pool: pool workers x wall time / frames, the pool saturated.
# `talkface serve` measures it on its own machine at start (live/capacity.py) unless --max-live is
# given; this figure is only ServerConfig's default (tests, embedding the app). Admission divides
# the cores by it.
LIVE_FRAME_MS = 17.0
# share of the cores live sessions may take, leaving room for the event loop, JPEG sending and
# the file-job worker (which runs at a lower priority)
LIVE_CPU_SHARE = 0.8
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_loopback(host: str) -> bool:
    host = host.strip().lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def measured_live_capacity(fps: float, cores: int | None = None,
                           frame_ms: float = LIVE_FRAME_MS) -> int:
    """How many live sessions at `fps` this machine keeps at full rate, from the measured cost."""
    cores = cores or os.cpu_count() or 1
    per_session = fps * frame_ms / 1000.0   # cores one session keeps busy
    return max(1, math.floor(cores * LIVE_CPU_SHARE / per_session))


class ConfigError(InputError):
    """An option of `talkface serve` out of range; one line for the operator."""


@dataclass(frozen=True)
class ServerConfig:
    token: str | None = None
    max_upload_bytes: int = 20 * MB
    max_seconds: float = 120.0              # longest audio of a file job, longest queued live speech
    max_live: int | None = None             # live sessions at once; None: measured capacity
    live_frame_ms: float = LIVE_FRAME_MS    # measured core-ms of one live frame (see above)
    live_cores: int | None = None           # the cores that cost was measured on; None: all
    max_live_per_client: int | None = None  # None: half of max_live (at least 1)
    fps: float = 25.0                       # live frame rate
    max_text_chars: int = 2000
    max_record_seconds: float = 600.0
    file_workers: int = 1                   # file renders at once
    max_waiting_jobs: int = 4               # file jobs waiting for a worker; past it 503
    max_jobs_per_client: int = 3            # running + waiting file jobs of one client address
    max_image_pixels: int = 40_000_000      # checked from the image header, before decoding
    loopback: bool = True                   # bound to a loopback address: check the Host header
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        checks = [
            (1.0 <= self.max_seconds <= 900.0, f"--max-seconds must be between 1 and 900, got {self.max_seconds:g}"),
            (5.0 <= self.fps <= 60.0, f"--fps must be between 5 and 60, got {self.fps:g}"),
            (self.max_live is None or self.max_live >= 1, "--max-live must be 1 or more"),
            (self.live_frame_ms > 0, "the live frame cost must be positive"),
            (self.max_live_per_client is None or self.max_live_per_client >= 1, "--max-live-per-client must be 1 or more"),
            (self.max_upload_bytes >= 1024, "--max-upload-mb is too small"),
            (1 <= self.file_workers <= 16, "--file-workers must be between 1 and 16"),
            (0 <= self.max_waiting_jobs <= 1000, "--max-waiting-jobs must be between 0 and 1000"),
            (self.max_jobs_per_client >= 1, "--max-jobs-per-client must be 1 or more"),
            (self.max_image_pixels >= 1024, "max_image_pixels is too small"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def live_capacity(self) -> int:
        if self.max_live is not None:
            return self.max_live
        return measured_live_capacity(self.fps, self.live_cores, frame_ms=self.live_frame_ms)

    @property
    def live_per_client(self) -> int:
        if self.max_live_per_client is not None:
            return min(self.max_live_per_client, self.live_capacity)
        return max(1, self.live_capacity // 2)

    def host_allowed(self, host_header: str) -> bool:
        """DNS rebinding guard: bound to loopback, only loopback names (and the operator's
        --allowed-host names) may appear in the Host header."""
        name = _host_name(host_header)
        if name in {h.lower() for h in self.allowed_hosts}:
            return True
        return is_loopback(name) if self.loopback else True


def _host_name(host_header: str) -> str:
    """'Example.COM:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
