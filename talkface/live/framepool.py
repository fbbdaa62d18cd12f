"""One pool of frame-making threads shared by all live streams of a process, earliest deadline
first. With a thread per stream, four streams on two cores meant four render threads fighting
for the cores and the GIL (more CPU per frame, and whichever thread the OS picked went first);
with one thread per core, the frame due soonest is always made next, so no stream starves and
none is favoured. A stream never has more than one frame in the pool (it awaits each), so its
frames stay in order.

The pool is the parallelism: it turns OpenCV's own worker threads off (process-wide), which
otherwise split each remap, blur and colour conversion across the cores the pool's workers
already fill, and spent CPU on handing the pieces over."""
from __future__ import annotations

import heapq
import itertools
import os
import threading
from concurrent.futures import Future


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class FramePool:
    """`submit(deadline, fn, *args)` -> a Future; the pending call with the smallest deadline
    (time.monotonic() seconds) runs first. Threads start on first use."""

    def __init__(self, workers: int | None = None) -> None:
        import cv2

        cv2.setNumThreads(1)
        self.workers = workers or default_workers()
        self._heap: list = []
        self._order = itertools.count()   # ties run in submission order
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, deadline: float, fn, *args) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the frame pool is closed")
            heapq.heappush(self._heap, (deadline, next(self._order), future, fn, args))
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name="talkface-frames", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                _, _, future, fn, args = heapq.heappop(self._heap)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:   # handed to whoever awaits the frame
                future.set_exception(exc)

    def close(self, wait: bool = False) -> None:
        """Cancel what has not started and let the threads end (wait: until they have, so no
        frame is still being made in native code when the interpreter exits)."""
        with self._cond:
            self._closed = True
            for _, _, future, _, _ in self._heap:
                future.cancel()
            self._heap.clear()
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()
