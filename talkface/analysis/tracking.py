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

    def __init__(self) -> None:
        from talkface.analysis.portrait import _quiet_native_stderr

        with _quiet_native_stderr():
            import mediapipe as mp

            self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True, max_num_faces=1,
                                                        min_detection_confidence=0.3, min_tracking_confidence=0.3)

    def points(self, frame: np.ndarray) -> np.ndarray:
        from talkface.analysis.portrait import _quiet_native_stderr

        h, w = frame.shape[:2]
        with _quiet_native_stderr():
            res = self.mesh.process(np.ascontiguousarray(frame))
        if not res.multi_face_landmarks:
            return np.full((478, 3), np.nan, np.float32)
        pts = np.array([[p.x, p.y, p.z] for p in res.multi_face_landmarks[0].landmark], np.float32)
        return pts * np.array([w, h, w], np.float32)

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
    from talkface.output.video import iter_video_frames

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
