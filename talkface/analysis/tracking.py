"""Face tracking on video: the face mesh run on every frame, with timestamps and the
audio track. The one extractor every measurement uses (lip sync, re-enactment, dynamics,
controls), on real videos and on talkface's own output alike, so both are measured the
same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkface.analysis import landmarks as lm
from talkface.native import quiet_native_stderr


@dataclass(frozen=True)
class VideoTrack:
    name: str
    times: np.ndarray        # (T,) seconds, from the frame timestamps (variable frame rate safe)
    points: np.ndarray       # (T, 478, 3) pixels; NaN where no face was found
    frame_size: tuple[int, int]  # (width, height)

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.points[:, 0, 0])

    def mouth_opening(self) -> np.ndarray:
        return np.array([lm.mouth_opening(p) if np.isfinite(p[0, 0]) else np.nan for p in self.points])

    def mouth_width(self) -> np.ndarray:
        return np.array([lm.mouth_width(p) if np.isfinite(p[0, 0]) else np.nan for p in self.points])

    def head_pose(self) -> np.ndarray:
        """(T, 3) yaw, pitch, roll in degrees."""
        return np.array([lm.head_pose_deg(p) if np.isfinite(p[0, 0]) else (np.nan,) * 3 for p in self.points])


class FaceTracker:
    """MediaPipe face mesh in tracking mode (a new tracker per video)."""

    def __init__(self, max_faces: int = 1) -> None:
        with quiet_native_stderr():
            import mediapipe as mp

            self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True,
                                                        max_num_faces=max_faces, min_detection_confidence=0.3,
                                                        min_tracking_confidence=0.3)

    def faces(self, frame: np.ndarray) -> list[np.ndarray]:
        """Every face found (up to max_faces), each (478, 3) in pixels, largest first."""
        h, w = frame.shape[:2]
        with quiet_native_stderr():
            res = self.mesh.process(np.ascontiguousarray(frame))
        found = [np.array([[p.x, p.y, p.z] for p in f.landmark], np.float32) * np.array([w, h, w], np.float32)
                 for f in (res.multi_face_landmarks or [])]
        return sorted(found, key=lambda p: -float(np.ptp(p[:, 0]) * np.ptp(p[:, 1])))

    def points(self, frame: np.ndarray) -> np.ndarray:
        found = self.faces(frame)
        return found[0] if found else np.full((478, 3), np.nan, np.float32)

    def close(self) -> None:
        self.mesh.close()


def track_still(image: np.ndarray, feeds: int = 3) -> np.ndarray:
    """Face-mesh points of one still image, fed a few times so the tracker settles (NaN if missed)."""
    tracker = FaceTracker()
    try:
        for _ in range(feeds):
            points = tracker.points(image)
    finally:
        tracker.close()
    return points


def track_frames(frames, times=None, name: str = "frames") -> VideoTrack:
    tracker = FaceTracker()
    try:
        pts = [tracker.points(f) for f in frames]
    finally:
        tracker.close()
    if times is None:
        times = np.arange(len(pts)) / 25.0
    h, w = frames[0].shape[:2] if len(frames) else (0, 0)
    return VideoTrack(name=name, times=np.asarray(times, np.float64), points=np.array(pts), frame_size=(w, h))


def track_video(path: str | Path, max_seconds: float | None = None) -> VideoTrack:
    """Track every frame of a video file, using its own timestamps."""
    from talkface.analysis.video import iter_video_frames

    path = Path(path)
    tracker = FaceTracker()
    pts, times = [], []
    size = (0, 0)
    try:
        for t, img in iter_video_frames(path, max_seconds):
            size = (img.shape[1], img.shape[0])
            pts.append(tracker.points(img))
            times.append(t)
    finally:
        tracker.close()
    return VideoTrack(name=path.stem, times=np.array(times), points=np.array(pts), frame_size=size)


def stream_start_gap(path: str | Path) -> float:
    """Seconds from the first audio sample to the first video frame (the video stream may
    start late): add it to `track_video`'s times to put them on the audio's clock."""
    import av

    with av.open(str(path)) as c:
        v = next(c.decode(video=0)).time
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0.0
        a = next(c.decode(audio=0)).time
    return float((v or 0.0) - (a or 0.0))
