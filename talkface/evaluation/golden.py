"""Golden frames: fixed motion frames rendered on built-in portraits, stored under
tests/golden/ and compared by tests/test_golden.py, so a change to the rig or the renderer
that alters the picture shows up as a failing test (and one that should not, does not).

The portraits' analysis (landmarks, person mask, crop box) is stored next to the frames:
the frames then depend on the rig and the renderer only, not on the face models' numerics.
Each portrait's neutral frame is stored whole; every case frame as the box where it
differs from that, holding the difference (modulo 256, so the rebuild is exact).

    python -m talkface.evaluation.golden --write          # (re)write tests/golden/
    python -m talkface.evaluation.golden --check          # per-frame PSNR against them
    python -m talkface.evaluation.golden --sheet out.png  # a contact sheet to look at
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from talkface.analysis.portrait import Portrait, square_crop
from talkface.evaluation.reenact import psnr
from talkface.face.rig import FaceRig
from talkface.motion.generator import EMOTION_STYLES, Expression, MotionFrame
from talkface.render.renderer import Renderer

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "tests" / "golden"
SIZE = 256                 # pixels: small references, the same code paths as 512
MIN_PSNR_DB = 45.0         # what a change may cost per frame before the test fails
MASK_SCALE = 65535         # the person mask is stored as 16-bit PNG
BOX_PAD = 2                # pixels round the changed box

E = Expression
SPEECH = (MotionFrame(), MotionFrame(expression=E(jaw_open=0.3, lip_spread=0.4)),
          MotionFrame(expression=E(jaw_open=0.6)), MotionFrame(expression=E(jaw_open=0.2, lip_round=0.8)),
          MotionFrame(expression=E(lip_press=1.0)), MotionFrame(expression=E(jaw_open=0.15, smile=0.3)))
TURNS = (MotionFrame(yaw=20.0), MotionFrame(yaw=-20.0), MotionFrame(pitch=15.0), MotionFrame(pitch=-10.0),
         MotionFrame(roll=15.0), MotionFrame(yaw=20.0, pitch=10.0, roll=-10.0, tx=0.02, scale=1.05,
                                             expression=E(jaw_open=0.4)))
EYES = (MotionFrame(expression=E(blink_left=0.5, blink_right=0.5)),
        MotionFrame(expression=E(blink_left=1.0, blink_right=1.0)),
        MotionFrame(expression=E(blink_left=1.0)), MotionFrame(expression=E(eye_open=1.0)),
        MotionFrame(expression=E(eye_open=-0.5)), MotionFrame(expression=E(gaze_yaw=20.0)),
        MotionFrame(expression=E(gaze_yaw=-20.0, gaze_pitch=10.0)), MotionFrame(expression=E(gaze_pitch=-15.0)))
EMOTIONS = tuple(MotionFrame(expression=style.face) for name, style in EMOTION_STYLES.items() if name != "neutral")
WIDE = (MotionFrame(expression=E(jaw_open=1.0)), MotionFrame(expression=E(jaw_open=1.0, lip_spread=0.5)),
        MotionFrame(expression=E(mouth_rest=1.0)))
CASES: dict[str, tuple[MotionFrame, ...]] = {
    "speech": SPEECH, "turns": TURNS, "eyes": EYES, "emotions": EMOTIONS, "wide": WIDE,
}
# a second built-in picture (grey, small face, upscaled): fewer cases
SHORT_CASES = ("speech", "turns")


@dataclass(frozen=True)
class GoldenPortrait:
    name: str                 # a skimage.data function
    cases: tuple[str, ...]


PORTRAITS = (GoldenPortrait("astronaut", tuple(CASES)), GoldenPortrait("camera", SHORT_CASES))


def _source_image(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    return np.ascontiguousarray(np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3])


def _analysis_path(name: str, folder: Path) -> Path:
    return folder / f"{name}_analysis.npz"


def write_analysis(name: str, folder: Path) -> None:
    """Analyse the built-in picture with the face models and store what the rig needs."""
    p = Portrait.from_image(_source_image(name), size=SIZE, name=name)
    mask = np.round(np.clip(p.person_mask, 0, 1) * MASK_SCALE).astype(np.uint16)
    np.savez_compressed(_analysis_path(name, folder), points=p.points, person_mask=mask,
                        crop_box=np.array(p.crop_box, np.float64))


def load_portrait(name: str, folder: Path = GOLDEN_DIR) -> Portrait:
    """The golden portrait from its stored analysis (no face models run)."""
    with np.load(_analysis_path(name, folder)) as a:
        points, mask, box = a["points"], a["person_mask"], tuple(float(v) for v in a["crop_box"])
    source = _source_image(name)
    image = square_crop(source, box, SIZE)
    return Portrait(image=image, points=points.astype(np.float32),
                    person_mask=mask.astype(np.float32) / MASK_SCALE, crop_box=box, source=source, name=name)


def render_case(renderer: Renderer, rig: FaceRig, motions: tuple[MotionFrame, ...]) -> list[np.ndarray]:
    return [renderer.render(rig.targets(m)) for m in motions]


def _changed_box(frame: np.ndarray, base: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) round the pixels where frame differs from base (empty: 0, 0, 0, 0)."""
    ys, xs = np.nonzero((frame != base).any(axis=2))
    if not len(ys):
        return 0, 0, 0, 0
    h, w = frame.shape[:2]
    return (max(int(xs.min()) - BOX_PAD, 0), max(int(ys.min()) - BOX_PAD, 0),
            min(int(xs.max()) + BOX_PAD + 1, w), min(int(ys.max()) + BOX_PAD + 1, h))


def _png_path(folder: Path, portrait: str, case: str, index: int) -> Path:
    return folder / f"{portrait}_{case}_{index:02d}.png"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def _read_png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _manifest_path(folder: Path) -> Path:
    return folder / "manifest.json"


def _faces(folder: Path):
    for gp in PORTRAITS:
        portrait = load_portrait(gp.name, folder)
        rig = FaceRig(portrait)
        yield gp, rig, Renderer(portrait, rig)


def render_neutral(folder: Path = GOLDEN_DIR) -> dict[str, np.ndarray]:
    return {gp.name: renderer.render(rig.targets(MotionFrame())) for gp, rig, renderer in _faces(folder)}


def render_all(folder: Path = GOLDEN_DIR) -> dict[str, list[np.ndarray]]:
    """Every golden frame as the code renders it now, keyed '<portrait>_<case>'."""
    out = {}
    for gp, rig, renderer in _faces(folder):
        for case in gp.cases:
            out[f"{gp.name}_{case}"] = render_case(renderer, rig, CASES[case])
    return out


def _neutral_path(folder: Path, portrait: str) -> Path:
    return folder / f"{portrait}_neutral.png"


def write_golden(folder: Path = GOLDEN_DIR, reanalyse: bool = False) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for gp in PORTRAITS:
        if reanalyse or not _analysis_path(gp.name, folder).exists():
            write_analysis(gp.name, folder)
    for old in folder.glob("*.png"):
        old.unlink()
    manifest: dict[str, list[list[int]]] = {}
    neutral = render_neutral(folder)
    for name, frame in neutral.items():
        _write_png(_neutral_path(folder, name), frame)
    for key, frames in render_all(folder).items():
        portrait, case = key.split("_", 1)
        base = neutral[portrait]
        boxes = []
        for i, frame in enumerate(frames):
            x0, y0, x1, y1 = box = _changed_box(frame, base)
            if x1 > x0:
                diff = frame[y0:y1, x0:x1].astype(np.int16) - base[y0:y1, x0:x1]
                _write_png(_png_path(folder, portrait, case, i), (diff % 256).astype(np.uint8))
            boxes.append(list(box))
        manifest[key] = boxes
    _manifest_path(folder).write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {sum(len(b) for b in manifest.values())} golden frames to {folder} ({total / 1e6:.2f} MB)")
    return 0


def reference_frames(folder: Path = GOLDEN_DIR) -> dict[str, list[np.ndarray]]:
    """The stored frames, each rebuilt whole: the neutral frame plus its stored difference."""
    manifest = json.loads(_manifest_path(folder).read_text())
    out = {}
    for key, boxes in manifest.items():
        portrait, case = key.split("_", 1)
        base = _read_png(_neutral_path(folder, portrait))
        frames = []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            frame = base.copy()
            if x1 > x0:
                diff = _read_png(_png_path(folder, portrait, case, i))
                frame[y0:y1, x0:x1] = ((base[y0:y1, x0:x1].astype(np.int16) + diff) % 256).astype(np.uint8)
            frames.append(frame)
        out[key] = frames
    return out


def compare(folder: Path = GOLDEN_DIR) -> dict[str, list[float]]:
    """Per-frame PSNR (dB; 100 = identical) of the frames rendered now against the stored ones."""
    reference = reference_frames(folder)
    rendered = render_all(folder)
    if set(reference) != set(rendered):
        raise RuntimeError(f"golden cases differ from the stored ones: {sorted(set(reference) ^ set(rendered))}")
    return {key: [psnr(a, b) for a, b in zip(rendered[key], reference[key], strict=True)] for key in rendered}


def contact_sheet(frames: dict[str, list[np.ndarray]]) -> np.ndarray:
    """One row per case, frames side by side."""
    width = max(len(f) for f in frames.values())
    rows = []
    for row in frames.values():
        pad = [np.zeros_like(row[0])] * (width - len(row))
        rows.append(np.concatenate(list(row) + pad, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m talkface.evaluation.golden", description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="render and store the golden frames")
    ap.add_argument("--reanalyse", action="store_true", help="with --write: re-run the face models on the pictures")
    ap.add_argument("--check", action="store_true", help="print per-frame PSNR against the stored frames")
    ap.add_argument("--sheet", help="write a contact sheet of the frames rendered now (PNG)")
    ap.add_argument("--dir", type=Path, default=GOLDEN_DIR)
    args = ap.parse_args(argv)
    if args.write:
        write_golden(args.dir, args.reanalyse)
    if args.check:
        scores = compare(args.dir)
        for key, values in scores.items():
            print(f"  {key:22s} worst {min(values):6.1f} dB  " + " ".join(f"{v:5.1f}" for v in values))
        worst = min(min(v) for v in scores.values())
        print(f"worst frame {worst:.1f} dB (threshold {MIN_PSNR_DB:g})")
        if worst < MIN_PSNR_DB:
            return 1
    if args.sheet:
        _write_png(Path(args.sheet), contact_sheet(render_all(args.dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
