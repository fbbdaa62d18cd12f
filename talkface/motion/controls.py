"""User controls: gaze, head pose offset, head distance, emotion and its strength, how
much the head moves. Constant values, or keyframed tracks over time from a JSON file,
interpolated smoothly.
"""
from __future__ import annotations

import bisect
import json
import math
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path

from talkface.errors import ControlError  # noqa: F401  (re-exported: the name stays importable here)

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")



@dataclass(frozen=True)
class Controls:
    """The controls in force at one instant."""

    gaze: tuple[float, float] | None = None       # (yaw, pitch) degrees from the camera direction, > 0 to
                                                  # the image's right / up; None = the portrait's own gaze
    gaze_camera: bool = False                     # look straight into the camera (= gaze (0, 0))
    head_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # yaw, pitch, roll offset in degrees
    head_distance: float = 1.0                    # 0.6 (closer) .. 1.5 (farther)
    emotion: str = "neutral"
    emotion_strength: float = 0.6
    motion_scale: float = 1.0                     # 0 still head, 1 natural, 2 lively

    def __post_init__(self) -> None:
        """Every Controls in existence is in range: checked here, not when a caller remembers."""
        if self.gaze is not None:
            _check_range("gaze yaw", self.gaze[0], -30, 30)
            _check_range("gaze pitch", self.gaze[1], -20, 20)
        for name, v, lim in zip(("yaw", "pitch", "roll"), self.head_pose, (30, 20, 20)):
            _check_range(f"head-pose {name}", v, -lim, lim)
        _check_range("head-distance", self.head_distance, 0.6, 1.5)
        if self.emotion not in EMOTIONS:
            raise ControlError(f"unknown emotion '{self.emotion}' (choose one of: {', '.join(EMOTIONS)})")
        _check_range("emotion-strength", self.emotion_strength, 0.0, 1.0)
        _check_range("motion-scale", self.motion_scale, 0.0, 2.0)

    def validated(self) -> "Controls":
        """Kept for callers written before the check moved into the constructor."""
        return self


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value) or not lo <= value <= hi:
        raise ControlError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")


def parse_floats(text: str, count: int, name: str) -> tuple[float, ...]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ControlError(f"{name} takes {count} comma-separated numbers, got '{text}'") from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ControlError(f"{name} takes {count} comma-separated numbers, got '{text}'")
    return values


def parse_gaze(text: str, name: str = "--gaze") -> tuple[tuple[float, float] | None, bool]:
    """'camera' or 'YAW,PITCH' in degrees (in the camera's frame: 0,0 is the camera)."""
    if str(text).strip().lower() == "camera":
        return None, True
    yaw, pitch = parse_floats(text, 2, f"{name} (YAW,PITCH in degrees, or 'camera')")
    return (yaw, pitch), False


@dataclass(frozen=True)
class Keyframe:
    time: float
    values: dict


@dataclass(frozen=True)
class ControlTrack:
    """Base controls plus keyframes; `at(t)` gives the controls in force at time t.

    Numbers are eased between keyframes (smoothstep), so a change never jumps; the emotion
    kind switches at the midpoint between two keyframes while its strength eases to zero
    there, so one expression fades out before the next fades in. Gaze 'camera' is the
    direction (0, 0) and blends with directions; between the portrait's own gaze (no gaze
    key) and a direction the target switches at the midpoint and the eyes ease across.
    Keys missing from a keyframe keep the value in force before it (or the base).
    """

    base: Controls = field(default_factory=Controls)
    keyframes: tuple[Keyframe, ...] = ()

    def at(self, t: float) -> Controls:
        if not self.keyframes:
            return self.base
        frames = self.keyframes
        if t <= frames[0].time:
            return _apply(self.base, frames[0].values)
        if t >= frames[-1].time:
            return _apply(self.base, _merged(frames, len(frames) - 1))
        i = bisect.bisect_right([k.time for k in frames], t) - 1
        a, b = _merged(frames, i), _merged(frames, i + 1)
        u = (t - frames[i].time) / max(frames[i + 1].time - frames[i].time, 1e-9)
        s = _smoothstep(u)
        values = {}
        a, b = _camera_as_direction(a, b, self.base), _camera_as_direction(b, a, self.base)
        for key in set(a) | set(b):
            va, vb = a.get(key, _default(self.base, key)), b.get(key, _default(self.base, key))
            if key == "emotion":
                values[key] = va if u < 0.5 else vb
            elif key == "gaze_camera":
                values[key] = va if u < 0.5 else vb
            elif isinstance(va, tuple) or isinstance(vb, tuple):
                if va is None or vb is None:
                    values[key] = va if u < 0.5 else vb
                else:
                    values[key] = tuple(x + (y - x) * s for x, y in zip(va, vb))
            else:
                values[key] = va + (vb - va) * s
        ea, eb = a.get("emotion", self.base.emotion), b.get("emotion", self.base.emotion)
        if ea != eb:
            sa = a.get("emotion_strength", self.base.emotion_strength)
            sb = b.get("emotion_strength", self.base.emotion_strength)
            values["emotion_strength"] = sa * (1 - _smoothstep(2 * u)) if u < 0.5 else sb * _smoothstep(2 * u - 1)
        return _apply(self.base, values)

    @classmethod
    def from_json(cls, path: str | Path, base: Controls) -> "ControlTrack":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ControlError(f"controls file not found: {path}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ControlError(f"cannot read controls file {path}: {exc}") from None
        items = data.get("keyframes", data) if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise ControlError(f"{path}: expected a list of keyframes like [{{\"time\": 0, \"emotion\": \"happy\"}}]")
        keyframes = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict) or "time" not in item:
                raise ControlError(f"{path}: keyframe {n}: every keyframe needs a 'time' in seconds")
            where = f"{path}: keyframe {n} (time {item['time']!r})"
            values = _keyframe_values(item, where)
            try:
                _apply(base, values).validated()
            except ControlError as exc:
                raise ControlError(f"{where}: {exc}") from None
            keyframes.append(Keyframe(float(item["time"]), values))
        keyframes.sort(key=lambda k: k.time)
        return cls(base=base, keyframes=tuple(keyframes))


def controls_from_mapping(values: dict, base: Controls = Controls(), where: str = "controls") -> Controls:
    """Controls from their JSON names (as in a --controls keyframe, without 'time'), over `base`:
    {"emotion": "happy", "head_pose": [-10, 0, 0], "gaze": "camera"}. One-line ControlError."""
    if not isinstance(values, dict):
        raise ControlError(f"{where}: expected an object of controls, got {values!r}")
    parsed = _keyframe_values({k: v for k, v in values.items() if k != "time"}, where)
    try:
        return _apply(base, parsed)
    except ControlError as exc:
        raise ControlError(f"{where}: {exc}") from None


_KEYS = {"gaze", "head_pose", "head_distance", "emotion", "emotion_strength", "motion_scale", "time"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers_text(value, where: str, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
        return ",".join(map(str, value))
    raise ControlError(f"{where}: {key} must be a list of numbers or a 'a,b,...' string, got {value!r}")


def _keyframe_values(item: dict, where: str) -> dict:
    values: dict = {}
    for key, value in item.items():
        k = str(key).replace("-", "_")
        if k not in _KEYS:
            raise ControlError(f"{where}: unknown control '{key}' (known: {', '.join(sorted(_KEYS - {'time'}))})")
        try:
            if k == "time":
                if not _is_number(value) or value < 0:
                    raise ControlError(f"time must be a number of seconds >= 0, got {value!r}")
            elif k == "gaze":
                gaze, camera = parse_gaze(_numbers_text(value, where, key), "gaze")
                values["gaze"], values["gaze_camera"] = gaze, camera
            elif k == "head_pose":
                values[k] = parse_floats(_numbers_text(value, where, key), 3, "head_pose (YAW,PITCH,ROLL in degrees)")
            elif k == "emotion":
                if not isinstance(value, str):
                    raise ControlError(f"emotion must be one of: {', '.join(EMOTIONS)}; got {value!r}")
                values[k] = value.strip().lower()
            else:
                if not _is_number(value):
                    raise ControlError(f"{key} must be a number, got {value!r}")
                values[k] = float(value)
        except ControlError as exc:
            msg = str(exc)
            raise ControlError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    return values


def _smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


def _camera_as_direction(mine: dict, other: dict, base: Controls) -> dict:
    """'camera' is the direction (0, 0): blend it with a direction in the other keyframe."""
    camera = mine.get("gaze_camera", base.gaze_camera)
    other_gaze = other.get("gaze", base.gaze)
    if camera and other_gaze is not None and not other.get("gaze_camera", base.gaze_camera):
        mine = dict(mine, gaze=(0.0, 0.0), gaze_camera=False)
    return mine


def _merged(frames: tuple[Keyframe, ...], upto: int) -> dict:
    """Values in force at keyframe `upto`: later keyframes override earlier ones key by key."""
    out: dict = {}
    for k in frames[: upto + 1]:
        out.update(k.values)
    return out


def _default(base: Controls, key: str):
    return getattr(base, key)


def _apply(base: Controls, values: dict) -> Controls:
    return replace(base, **values)
