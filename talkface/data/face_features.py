"""Per-frame face measurements from the tracked mesh: what the cache stores beside the
mesh itself. All lengths are in inter-ocular units, angles in degrees.

mouth (T, 4), MOUTH_FEATURES, the quantities the lip-sync model predicts and
`eval lipsync` scores:
  open   inner-lip gap over the middle of the mouth (landmarks.mouth_opening);
  width  mouth-corner distance (landmarks.mouth_width);
  round  lip protrusion, the lips' middle forward of the corners (landmarks.lip_protrusion);
  press  visible lip height (landmarks.lip_thickness), which shrinks as the lips press.
pose (T, 3) yaw, pitch, roll (landmarks.head_pose_deg); eyes (T, 2) right, left aperture
(landmarks.eye_aperture; blinks are its dips); gaze (T, 2) yaw, pitch of the eyes in the
head (landmarks.gaze_deg); brows (T, 2) right, left height above the eye
(landmarks.brow_height); face (T, 3) centre x, y of the eye-and-mouth points and the
inter-ocular distance, in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.analysis import landmarks as lm

MOUTH_FEATURES = ("open", "width", "round", "press")
_CENTRE_POINTS = list(lm.EYE_OUTER + lm.MOUTH_CORNERS)


@dataclass(frozen=True)
class FaceFeatures:
    mouth: np.ndarray   # (T, 4) MOUTH_FEATURES
    pose: np.ndarray    # (T, 3) yaw, pitch, roll
    eyes: np.ndarray    # (T, 2) right, left aperture
    gaze: np.ndarray    # (T, 2) yaw, pitch
    brows: np.ndarray   # (T, 2) right, left
    face: np.ndarray    # (T, 3) centre x, y, inter-ocular distance (pixels)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).astype(np.float32) for k in ("mouth", "pose", "eyes", "gaze", "brows", "face")}


def _frame_row(p: np.ndarray) -> list[float]:
    centre = p[_CENTRE_POINTS, :2].mean(axis=0)
    return [lm.mouth_opening(p), lm.mouth_width(p), lm.lip_protrusion(p), lm.lip_thickness(p),
            *lm.head_pose_deg(p), lm.eye_aperture(p, "right"), lm.eye_aperture(p, "left"), *lm.gaze_deg(p),
            lm.brow_height(p, "right"), lm.brow_height(p, "left"), float(centre[0]), float(centre[1]), lm.interocular(p)]


N_COLUMNS = 4 + 3 + 2 + 2 + 2 + 3


def face_features(points: np.ndarray) -> FaceFeatures:
    """Measurements for a (T, 478, 3) track; NaN rows where no face was found."""
    rows = np.full((len(points), N_COLUMNS), np.nan)
    for i, p in enumerate(points):
        if np.isfinite(p[0, 0]):
            rows[i] = _frame_row(p)
    return FaceFeatures(mouth=rows[:, 0:4], pose=rows[:, 4:7], eyes=rows[:, 7:9], gaze=rows[:, 9:11],
                        brows=rows[:, 11:13], face=rows[:, 13:16])
