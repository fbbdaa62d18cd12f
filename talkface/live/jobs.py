"""File jobs (`POST /v1/generate`): a bounded FIFO queue in front of a few low-priority worker
threads. Each job knows its place; past the queue's bound a request gets 503 with Retry-After;
a job whose client has gone is dropped from the queue or stopped between two frames."""
from __future__ import annotations

import asyncio
import math
import os
import re
import threading
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from talkface.live.errors import BadInput, Busy, Gone

WORKER_NICE = 10             # file renders yield the CPU to live sessions
FIRST_JOB_ESTIMATE_S = 10.0  # a guess for Retry-After until a job has been timed
JOB_ESTIMATE_WEIGHT = 0.3    # running average of job durations
GONE_POLL_S = 0.25           # how often a job checks whether its client is still there
JOB_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


class JobCancelled(Exception):
    """Raised inside a worker when its job's client has gone."""


@dataclass(eq=False)
class Ticket:
    """One file job's place in the queue, and the flag its worker checks between frames."""

    id: str
    client: str
    cancel: threading.Event = field(default_factory=threading.Event)
    turn: asyncio.Future | None = None
    frames_done: int = 0
    frames_total: int = 0
    released: bool = False

    def progress(self, n: int) -> None:
        """Called by the worker after each frame; stops the job when its client has gone."""
        self.frames_done += n
        if self.cancel.is_set():
            raise JobCancelled(self.id)


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)   # this thread only (Linux)
    except (AttributeError, OSError):
        pass


class JobQueue:
    """Admission and order of file jobs. All methods run on the event loop (no locks needed);
    the work itself runs in `workers` threads of their own."""

    def __init__(self, workers: int, max_waiting: int, per_client: int) -> None:
        self.workers, self.max_waiting, self.per_client = workers, max_waiting, per_client
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="talkface-job", initializer=_lower_priority)
        self._waiting: deque[Ticket] = deque()
        self._running: dict[str, Ticket] = {}
        self._per_client: Counter[str] = Counter()
        self._estimate_s = FIRST_JOB_ESTIMATE_S

    def admit(self, client: str, job_id: str | None = None) -> Ticket:
        """A ticket, or Busy (503) when the queue or this client's share is full. No await
        happens between the checks and the booking, so concurrent requests cannot overbook."""
        if job_id is not None and not JOB_ID.fullmatch(job_id):
            raise BadInput("X-Job-Id must be 8 to 64 letters, digits, '-' or '_'")
        if job_id is not None and self.status(job_id) is not None:
            raise BadInput("X-Job-Id is already in use")
        if self._per_client[client] >= self.per_client:
            raise Busy(f"this client already has {self._per_client[client]} file jobs queued or running "
                       f"(the limit is {self.per_client})", self.retry_after())
        free = len(self._running) < self.workers and not self._waiting
        if not free and len(self._waiting) >= self.max_waiting:
            raise Busy(f"the file-job queue is full ({len(self._waiting)} waiting); try again later",
                       self.retry_after())
        ticket = Ticket(id=job_id or uuid.uuid4().hex, client=client)
        ticket.turn = asyncio.get_running_loop().create_future()
        self._per_client[client] += 1
        if free:
            self._start(ticket)
        else:
            self._waiting.append(ticket)
        return ticket

    def place(self, ticket: Ticket) -> int:
        """0 while rendering, 1 for the next job to start, and so on."""
        try:
            return self._waiting.index(ticket) + 1
        except ValueError:
            return 0

    def status(self, job_id: str) -> dict | None:
        ticket = self._running.get(job_id) or next((t for t in self._waiting if t.id == job_id), None)
        if ticket is None:
            return None
        if ticket.id in self._running:
            return {"state": "rendering", "place": 0, "frames_done": ticket.frames_done,
                    "frames_total": ticket.frames_total}
        return {"state": "waiting", "place": self.place(ticket), "waiting": len(self._waiting),
                "retry_after_s": self.retry_after(self.place(ticket))}

    def retry_after(self, ahead: int | None = None) -> int:
        ahead = len(self._waiting) + 1 if ahead is None else ahead
        return math.ceil(self._estimate_s * max(ahead, 1) / self.workers)

    @property
    def counts(self) -> dict:
        return {"running": len(self._running), "waiting": len(self._waiting)}

    async def run(self, ticket: Ticket, gone: Callable[[], Awaitable[bool]], work: Callable, *args):
        """Wait for the ticket's turn, then `work(ticket, *args)` in a worker thread. `gone()`
        says whether the client has disconnected: then the job leaves the queue or stops."""
        loop = asyncio.get_running_loop()
        watcher = asyncio.ensure_future(_watch(gone))
        try:
            await asyncio.wait({ticket.turn, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not ticket.turn.done():
                raise Gone("the client went away while its job was waiting")
            started = loop.time()
            future = loop.run_in_executor(self._executor, work, ticket, *args)
            await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not future.done():
                ticket.cancel.set()
                await asyncio.wait({future})
            try:
                result = future.result()
            except JobCancelled:
                raise Gone("the client went away; its job was stopped") from None
            self._estimate_s += (loop.time() - started - self._estimate_s) * JOB_ESTIMATE_WEIGHT
            return result
        finally:
            watcher.cancel()
            self.release(ticket)

    def _start(self, ticket: Ticket) -> None:
        self._running[ticket.id] = ticket
        ticket.turn.set_result(True)

    def release(self, ticket: Ticket) -> None:
        """The ticket's place is given up (done, failed or abandoned); idempotent."""
        if ticket.released:
            return
        ticket.released = True
        self._per_client[ticket.client] -= 1
        if self._per_client[ticket.client] <= 0:
            del self._per_client[ticket.client]
        if self._running.pop(ticket.id, None) is None:
            self._waiting.remove(ticket)
        while self._waiting and len(self._running) < self.workers:
            self._start(self._waiting.popleft())

    def shutdown(self) -> None:
        for ticket in list(self._running.values()) + list(self._waiting):
            ticket.cancel.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


async def _watch(gone: Callable[[], Awaitable[bool]]) -> None:
    while not await gone():
        await asyncio.sleep(GONE_POLL_S)
