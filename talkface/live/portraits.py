"""The analysed portraits the server keeps: the built-in one, built once however many requests
ask at the same time, and the last few uploads, oldest dropped first."""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from talkface.engine import FaceModel

BUILTIN = "builtin"
MAX_PORTRAITS = 8   # uploads kept for live sessions


class PortraitStore:
    """Thread-safe: workers build faces while the event loop looks them up."""

    def __init__(self, keep: int = MAX_PORTRAITS) -> None:
        self.keep = keep
        self._faces: OrderedDict[str, FaceModel] = OrderedDict()
        self._lock = threading.Lock()
        self._builtin_lock = threading.Lock()

    def get(self, pid: str) -> FaceModel:
        """Blocking (the built-in face is analysed on first use); KeyError for an unknown id."""
        with self._lock:
            if pid in self._faces:
                self._faces.move_to_end(pid)
                return self._faces[pid]
        if pid != BUILTIN:
            raise KeyError(pid)
        return self.builtin()

    def builtin(self) -> FaceModel:
        from talkface.analysis.portrait import Portrait

        with self._builtin_lock:
            with self._lock:
                if BUILTIN in self._faces:
                    return self._faces[BUILTIN]
            face = FaceModel(Portrait.builtin())
            with self._lock:
                self._faces[BUILTIN] = face
            return face

    def add(self, face: FaceModel) -> str:
        pid = uuid.uuid4().hex[:16]
        with self._lock:
            self._faces[pid] = face
            uploads = [k for k in self._faces if k != BUILTIN]
            for old in uploads[: max(0, len(uploads) - self.keep)]:
                del self._faces[old]
        return pid
