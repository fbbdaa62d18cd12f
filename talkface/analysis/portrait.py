"""Portrait stage: load an image, find the face, crop a square around the head,
and measure what the renderer needs (478 landmarks with iris, a person mask, the
head's rest pose). Runs once per image.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkface.analysis import landmarks as lm
from talkface.errors import PortraitError  # noqa: F401  (re-exported: the name stays importable here)
from talkface.native import quiet_native_stderr


@dataclass(frozen=True)
class Portrait:
    """A square head crop and what was measured on it, in crop pixel coordinates."""

    image: np.ndarray        # (S, S, 3) uint8 RGB crop
    points: np.ndarray       # (478, 3) float32: x, y in pixels, z in pixels (towards camera is negative)
    person_mask: np.ndarray  # (S, S) float32 in [0, 1]
    crop_box: tuple[float, float, float]  # (x0, y0, side) of the crop in the source image
    source: np.ndarray       # the whole source image, RGB uint8 (for --framing full)
    name: str = "portrait"

    @property
    def size(self) -> int:
        return self.image.shape[0]

    @classmethod
    def from_file(cls, path: str | Path, size: int = 512, face_index: int = 0) -> "Portrait":
        return cls.from_image(load_image(path), size=size, face_index=face_index, name=Path(path).name)

    @classmethod
    def from_image(cls, image: np.ndarray, size: int = 512, face_index: int = 0, name: str = "portrait") -> "Portrait":
        return analyse(image, size=size, face_index=face_index, name=name)

    @classmethod
    def builtin(cls, size: int = 512) -> "Portrait":
        """The default portrait: scikit-image's public-domain astronaut photo."""
        from skimage import data

        return analyse(np.ascontiguousarray(data.astronaut()), size=size, name="astronaut")


MAX_IMAGE_PIXELS = 100_000_000   # refused above this, before decoding (a 14000x14000 PNG is 196 MP)
MAX_WORKING_SIDE = 4096           # larger pictures are scaled down while or right after decoding
MIN_IMAGE_SIDE = 32


def load_image(path: str | Path) -> np.ndarray:
    """Any image Pillow reads, EXIF-rotated, as RGB uint8 (alpha composited on white). The
    pixel count is checked from the header before decoding; a picture larger than
    MAX_WORKING_SIDE is scaled down (a JPEG while it decodes), so memory stays bounded."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise PortraitError(f"image path is a folder, not a file: {path}")
    if not path.is_file():
        raise PortraitError(f"image file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_pixels(im.size, path)
                rgb = _decoded_rgb(im)
    except PortraitError:
        raise
    except Image.DecompressionBombError:
        raise PortraitError(f"image is too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels): {path}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PortraitError(f"cannot read image {path}: {type(exc).__name__}") from None
    if min(rgb.shape[:2]) < MIN_IMAGE_SIDE:
        raise PortraitError(f"image is too small ({rgb.shape[1]}x{rgb.shape[0]}): {path}")
    return np.ascontiguousarray(rgb)


def _check_pixels(size: tuple[int, int], path: Path) -> None:
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        raise PortraitError(f"image is too large ({w}x{h}, {w * h / 1e6:.0f} megapixels; the limit is "
                            f"{MAX_IMAGE_PIXELS // 1_000_000}): {path}")


def _decoded_rgb(im) -> np.ndarray:
    from PIL import Image, ImageOps

    scale = MAX_WORKING_SIDE / max(im.size)
    if scale < 1 and im.format == "JPEG":   # decode at 1/2, 1/4 or 1/8 scale directly
        im.draft("RGB", (int(im.size[0] * scale), int(im.size[1] * scale)))
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    im = im.convert("RGB")
    if max(im.size) > MAX_WORKING_SIDE:
        im.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(im)


class _FaceModels:
    """MediaPipe graphs are costly to build and not re-entrant: build once per process,
    use under a lock."""

    _lock = threading.Lock()
    _instance: "_FaceModels | None" = None

    def __init__(self) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        with quiet_native_stderr():
            import mediapipe as mp

            self._build(mp)

    def _build(self, mp) -> None:
        self.detect_near = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
        self.detect_far = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, refine_landmarks=True, max_num_faces=1, min_detection_confidence=0.3
        )
        self.segment = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    @classmethod
    def get(cls) -> "_FaceModels":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


def detect_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes (x, y, w, h) in pixels, largest first. Uses both detector ranges, merged."""
    models = _FaceModels.get()
    h, w = image.shape[:2]
    boxes: list[tuple[float, float, float, float]] = []
    with _FaceModels._lock, quiet_native_stderr():
        results = [models.detect_near.process(image), models.detect_far.process(image)]
    for res in results:
        for det in res.detections or []:
            b = det.location_data.relative_bounding_box
            box = (b.xmin * w, b.ymin * h, b.width * w, b.height * h)
            if box[2] < 12 or box[3] < 12:
                continue
            if all(_iou(box, other) < 0.3 for other in boxes):
                boxes.append(box)
    boxes.sort(key=lambda b: -b[2] * b[3])
    return boxes


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def mesh_points(image: np.ndarray) -> np.ndarray | None:
    """478 face-mesh points (x, y, z in pixels) of the most prominent face, or None."""
    models = _FaceModels.get()
    h, w = image.shape[:2]
    with _FaceModels._lock, quiet_native_stderr():
        res = models.mesh.process(np.ascontiguousarray(image))
    if not res.multi_face_landmarks:
        return None
    pts = np.array([[p.x, p.y, p.z] for p in res.multi_face_landmarks[0].landmark], np.float32)
    return pts * np.array([w, h, w], np.float32)


def person_mask(image: np.ndarray) -> np.ndarray:
    models = _FaceModels.get()
    with _FaceModels._lock, quiet_native_stderr():
        mask = models.segment.process(np.ascontiguousarray(image)).segmentation_mask
    return np.clip(mask.astype(np.float32), 0.0, 1.0)


def square_crop(image: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """Resample the square (x0, y0, side) of the image to size x size. Where the square
    leaves the image, the picture is mirrored and faded into a blur of itself: replicated
    edge pixels read as streaks, a soft extension reads as out of focus."""
    import cv2

    x0, y0, side = box
    s = size / side
    affine = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(image, affine, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    inside = cv2.warpAffine(np.ones(image.shape[:2], np.uint8), affine, (size, size), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if inside.all():
        return crop
    outside_dist = cv2.distanceTransform((1 - inside).astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.clip(outside_dist / (0.06 * size), 0.0, 1.0)[..., None]
    soft = cv2.GaussianBlur(crop, (0, 0), 0.03 * size)
    return (crop * (1 - fade) + soft * fade).astype(np.uint8)


def head_box(points: np.ndarray, margin: float) -> tuple[float, float, float]:
    """A square around the face mesh, widened by `margin` x the face height, the face a little
    above centre so hair and some shoulders are in view (as in VASA-1's crops)."""
    x_min, y_min = points[:, 0].min(), points[:, 1].min()
    x_max, y_max = points[:, 0].max(), points[:, 1].max()
    face = max(x_max - x_min, y_max - y_min)
    side = face * margin
    cx = (x_min + x_max) / 2
    cy = (y_min + y_max) / 2 + 0.05 * face
    return (cx - side / 2, cy - side / 2, side)


def fit_box(box: tuple[float, float, float], points: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """Keep the square inside the picture where that costs little: an edge replicated into the
    crop turns into streaks as soon as the head moves. The square may shrink to 1.75x the face
    and slide off-centre; where even that leaves the picture, it overhangs as little as it can."""
    x0, y0, side = box
    face = max(float(np.ptp(points[:, 0])), float(np.ptp(points[:, 1])))
    side = min(side, max(float(min(width, height)), 1.75 * face))
    cx, cy = x0 + box[2] / 2, y0 + box[2] / 2
    x0, y0 = cx - side / 2, cy - side / 2
    fx0, fx1 = float(points[:, 0].min()), float(points[:, 0].max())
    fy0, fy1 = float(points[:, 1].min()), float(points[:, 1].max())
    pad = 0.1 * face
    if side <= width:   # slide inside, but never so far that the face leaves the square
        x0 = float(np.clip(x0, 0.0, width - side))
        x0 = float(np.clip(x0, fx1 + pad - side, fx0 - pad))
    if side <= height:
        y0 = float(np.clip(y0, 0.0, height - side))
        y0 = float(np.clip(y0, fy1 + 2.5 * pad - side, fy0 - pad))   # room below the chin for the jaw
    return (x0, y0, side)


def refine_inner_lips(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where the mouth is open, the mesh often puts the inner lip contour on the teeth or in the
    dark of the mouth. Slide each inner lip point towards its outer lip point until the pixels
    are lip, not teeth or cavity: the lips' own texture must not carry teeth when they close."""
    import cv2

    pts = points.copy()
    if lm.mouth_opening(pts) < 0.04:
        return pts
    size = image.shape[0]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sat = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
    face = lm.face_oval_mask(pts, size) > 0.5
    if face.sum() < 50:
        return pts
    bright = 0.75 * float(np.percentile(grey[face], 90))
    dark = 0.45 * float(np.median(grey[face]))

    def at(img, x: float, y: float) -> float:
        return float(img[int(round(min(max(y, 0), size - 1))), int(round(min(max(x, 0), size - 1)))])

    for inner, outer in ((lm.LIPS_UPPER_INNER, lm.LIPS_UPPER_OUTER), (lm.LIPS_LOWER_INNER, lm.LIPS_LOWER_OUTER)):
        # the lip's own colour, from the outer part of its band: teeth are whiter than that
        samples = [pts[i, :2] + (pts[o, :2] - pts[i, :2]) * t for i, o in zip(inner[2:-2], outer[2:-2])
                   for t in (0.7, 0.8, 0.9)]
        lip_sat = float(np.median([at(sat, *q) for q in samples]))
        lip_grey = float(np.median([at(grey, *q) for q in samples]))

        def interior(x: float, y: float) -> bool:
            g, sa = at(grey, x, y), at(sat, x, y)
            teeth = g > max(bright, 1.1 * lip_grey) and sa < 0.6 * lip_sat
            return teeth or g < min(dark, 0.5 * lip_grey)

        for i, o in zip(inner[2:-2], outer[2:-2]):
            a, b = pts[i, :2].astype(np.float64), pts[o, :2].astype(np.float64)
            length = float(np.linalg.norm(b - a))
            if length < 2:
                continue
            steps = int(np.ceil(0.45 * length))
            moved = 0.0
            for k in range(steps + 1):
                t = k / max(length, 1e-6)
                q = a + (b - a) * t
                if not interior(q[0], q[1]):
                    break
                moved = t
            if moved > 0:
                pts[i, :2] = (a + (b - a) * min(moved + 0.5 / length, 0.45)).astype(np.float32)
    return pts


def analyse(image: np.ndarray, size: int = 512, face_index: int = 0, name: str = "portrait") -> Portrait:
    with quiet_native_stderr():
        return _analyse(image, size, face_index, name)


def _analyse(image: np.ndarray, size: int, face_index: int, name: str) -> Portrait:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    boxes = detect_faces(image)
    if not boxes:
        # The detector misses some stylised faces the mesh still finds.
        pts = mesh_points(image)
        if pts is None:
            raise PortraitError(f"no face found in {name}")
        boxes = [(float(pts[:, 0].min()), float(pts[:, 1].min()), float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])))]
    if not 0 <= face_index < len(boxes):
        raise PortraitError(f"--face-index {face_index} is out of range: {len(boxes)} face(s) found in {name}")
    bx, by, bw, bh = boxes[face_index]
    # First pass: a generous crop around the detected box, to run the mesh at a good scale.
    side = max(bw, bh) * 2.2
    coarse = (bx + bw / 2 - side / 2, by + bh / 2 - side / 2, side)
    coarse_img = square_crop(image, coarse, 512)
    pts = mesh_points(coarse_img)
    if pts is None:
        raise PortraitError(f"no face found in {name} (a face was detected but its landmarks were not)")
    pts_src = pts.copy()
    pts_src[:, :3] *= coarse[2] / 512
    pts_src[:, 0] += coarse[0]
    pts_src[:, 1] += coarse[1]
    # Second pass: the final crop, measured again so the points match the crop exactly.
    box = fit_box(head_box(pts_src, margin=2.0), pts_src, image.shape[1], image.shape[0])
    crop = square_crop(image, box, size)
    pts = mesh_points(crop)
    if pts is None:  # fall back to the first pass, mapped into the final crop
        pts = pts_src.copy()
        pts[:, 0] -= box[0]
        pts[:, 1] -= box[1]
        pts[:, :3] *= size / box[2]
    pts = refine_inner_lips(crop, pts.astype(np.float32))
    mask = person_mask(crop)
    # Everything inside the face oval is person, whatever the segmenter thinks (paintings, statues).
    mask = np.maximum(mask, lm.face_oval_mask(pts, size))
    return Portrait(image=crop, points=pts.astype(np.float32), person_mask=mask, crop_box=box, source=image, name=name)
