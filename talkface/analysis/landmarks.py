"""Named regions of MediaPipe's 478-point face mesh, and the few measurements every
stage takes on them (inter-ocular distance, mouth opening, eye aperture).

"Right" and "left" are the subject's: the right eye is on the image's left.
"""
from __future__ import annotations

import numpy as np

N_MESH = 478   # points in the face mesh with its irises (468 without)

FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

# Lip contours, each from the right mouth corner (image left) to the left one.
LIPS_UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# The rings of mesh points inside the lips, between the outer and inner contours (same order,
# corner to corner): ring 2 is nearer the outer contour, ring 3 nearer the inner one.
LIPS_UPPER_RING2 = (76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306)
LIPS_UPPER_RING3 = (62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292)
LIPS_LOWER_RING2 = (76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306)
LIPS_LOWER_RING3 = (62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292)
MOUTH_CORNERS = (61, 291)
INNER_CORNERS = (78, 308)
LIP_UPPER_MID, LIP_LOWER_MID = 13, 14
LIP_UPPER_OUTER_MID, LIP_LOWER_OUTER_MID = 0, 17
SUBNASALE = 2  # the bottom of the nose, above the middle of the upper lip

# Eye contours from the outer to the inner corner (upper and lower lid lines).
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
# Rings of skin above each upper lid (lid crease, then below the brow), outer to inner.
RIGHT_LID_RING1 = (130, 247, 30, 29, 27, 28, 56, 190, 243)
RIGHT_LID_RING2 = (226, 113, 225, 224, 223, 222, 221, 189, 244)
LEFT_LID_RING1 = (359, 467, 260, 259, 257, 258, 286, 414, 463)
LEFT_LID_RING2 = (446, 342, 445, 444, 443, 442, 441, 413, 464)
RIGHT_LOWER_RING = (25, 110, 24, 23, 22, 26, 112)
LEFT_LOWER_RING = (255, 339, 254, 253, 252, 256, 341)

RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first
LEFT_IRIS = (473, 474, 475, 476, 477)

RIGHT_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
LEFT_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
RIGHT_BROW_INNER = (107, 55, 66, 65)
LEFT_BROW_INNER = (336, 285, 296, 295)
RIGHT_CHEEK = (50, 101, 36, 205, 187, 123, 117, 118, 119, 100, 47, 126, 142, 203, 206, 207, 216)
LEFT_CHEEK = (280, 330, 266, 425, 411, 352, 346, 347, 348, 329, 277, 355, 371, 423, 426, 427, 436)

NOSE_TIP, FOREHEAD, CHIN = 1, 10, 152
EYE_OUTER = (33, 263)


def interocular(points: np.ndarray) -> float:
    """Distance between the eye centres, the face's unit of length."""
    right = points[list(RIGHT_EYE_UPPER + RIGHT_EYE_LOWER), :2].mean(axis=0)
    left = points[list(LEFT_EYE_UPPER + LEFT_EYE_LOWER), :2].mean(axis=0)
    return float(np.linalg.norm(left - right))


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap over the middle of the mouth, normalised by the inter-ocular distance."""
    upper = points[[81, 13, 311], :2]
    lower = points[[178, 14, 402], :2]
    return float(np.mean(np.linalg.norm(upper - lower, axis=1)) / interocular(points))


def mouth_width(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[61, :2] - points[291, :2]) / interocular(points))


def eye_aperture(points: np.ndarray, side: str) -> float:
    """Mean lid gap of one eye, over the eye's width."""
    upper, lower = (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER) if side == "right" else (LEFT_EYE_UPPER, LEFT_EYE_LOWER)
    gap = np.linalg.norm(points[list(upper[2:-2]), :2] - points[list(lower[2:-2]), :2], axis=1).mean()
    width = np.linalg.norm(points[upper[0], :2] - points[upper[-1], :2])
    return float(gap / (width + 1e-6))


def polygon_mask(polygon: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon[:, :2] * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def face_oval_mask(points: np.ndarray, size: int) -> np.ndarray:
    return polygon_mask(points[list(FACE_OVAL)], size)


def head_pose_deg(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the mesh's own 3-D points: the eye line gives the x axis,
    forehead to chin the y axis."""
    return rotation_to_angles(head_rotation(points))


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Image-space rotation (x right, y down, z away from the camera), angles in degrees:
    yaw > 0 turns the nose to the image's right, pitch > 0 lifts it, roll > 0 tilts the
    top of the head to the image's right. R = Yaw @ Pitch @ Roll."""
    y, p, r = np.radians([yaw, pitch, roll])
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    yaw_m = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    pitch_m = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    roll_m = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return yaw_m @ pitch_m @ roll_m


def rotation_to_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of rotation_matrix: (yaw, pitch, roll) in degrees."""
    pitch = np.degrees(np.arcsin(np.clip(rot[1, 2], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[1, 1]))
    yaw = np.degrees(np.arctan2(-rot[0, 2], rot[2, 2]))
    return float(yaw), float(pitch), float(roll)


def head_rotation(points: np.ndarray) -> np.ndarray:
    """Rotation whose columns are the head's right, down and backward axes in image space."""
    x_axis = points[263] - points[33]
    y_axis = points[152] - points[10]
    x_axis = x_axis / np.linalg.norm(x_axis)
    y_axis = y_axis - x_axis * np.dot(y_axis, x_axis)
    y_axis = y_axis / np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    return np.stack([x_axis, y_axis, z_axis], axis=1).astype(np.float64)
