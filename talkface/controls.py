"""User controls: gaze, head pose offset, head distance, emotion and its strength, how
much the head moves. Constant values, or keyframed tracks over time from a JSON file,
interpolated smoothly.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised")


class ControlError(ValueError):
    """A control value out of range or malformed; one line for the user."""


@dataclass(frozen=True)
class Controls:
    """The controls in force at one instant."""

    gaze: tuple[float, float] | None = None       # (yaw, pitch) degrees; None = the portrait's own gaze
    gaze_camera: bool = False                     # look straight into the camera
    head_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # yaw, pitch, roll offset in degrees
    head_distance: float = 1.0                    # 0.6 (closer) .. 1.5 (farther)
    emotion: str = "neutral"
    emotion_strength: float = 0.6
    motion_scale: float = 1.0                     # 0 still head, 1 natural, 2 lively

    def validated(self) -> "Controls":
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
        return self


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or not lo <= value <= hi:
        raise ControlError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")


def parse_floats(text: str, count: int, name: str) -> tuple[float, ...]:
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ControlError(f"{name} takes {count} comma-separated numbers, got '{text}'") from None
    if len(values) != count:
        raise ControlError(f"{name} takes {count} comma-separated numbers, got '{text}'")
    return values


def parse_gaze(text: str) -> tuple[tuple[float, float] | None, bool]:
    """'camera' or 'YAW,PITCH' in degrees."""
    if str(text).strip().lower() == "camera":
        return None, True
    yaw, pitch = parse_floats(text, 2, "--gaze")
    return (yaw, pitch), False


@dataclass(frozen=True)
class Keyframe:
    time: float
    values: dict


@dataclass(frozen=True)
class ControlTrack:
    """Base controls plus keyframes; `at(t)` gives the controls in force at time t.

    Numbers are eased between keyframes (smoothstep), so a change never jumps; the emotion
    kind switches at the midpoint between two keyframes while its strength dips to zero
    across the change, so one expression fades out before the next fades in.
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
        i = max(k for k in range(len(frames)) if frames[k].time <= t)
        a, b = _merged(frames, i), _merged(frames, i + 1)
        u = (t - frames[i].time) / max(frames[i + 1].time - frames[i].time, 1e-9)
        s = u * u * (3 - 2 * u)
        values = {}
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
            values["emotion_strength"] = sa * (1 - 2 * u) ** 2 if u < 0.5 else sb * (2 * u - 1) ** 2
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
        for item in items:
            if not isinstance(item, dict) or "time" not in item:
                raise ControlError(f"{path}: every keyframe needs a 'time' in seconds")
            values = _keyframe_values(item, path)
            _apply(base, values).validated()
            keyframes.append(Keyframe(float(item["time"]), values))
        keyframes.sort(key=lambda k: k.time)
        return cls(base=base, keyframes=tuple(keyframes))


_KEYS = {"gaze", "head_pose", "head_distance", "emotion", "emotion_strength", "motion_scale", "time"}


def _keyframe_values(item: dict, path: Path) -> dict:
    values: dict = {}
    for key, value in item.items():
        k = key.replace("-", "_")
        if k not in _KEYS:
            raise ControlError(f"{path}: unknown control '{key}' (known: {', '.join(sorted(_KEYS - {'time'}))})")
        if k == "time":
            if not isinstance(value, (int, float)) or value < 0:
                raise ControlError(f"{path}: time must be a number of seconds >= 0")
        elif k == "gaze":
            gaze, camera = parse_gaze(value if isinstance(value, str) else ",".join(map(str, value)))
            values["gaze"], values["gaze_camera"] = gaze, camera
        elif k == "head_pose":
            values[k] = parse_floats(value if isinstance(value, str) else ",".join(map(str, value)), 3, "head_pose")
        elif k == "emotion":
            values[k] = str(value)
        else:
            if not isinstance(value, (int, float)):
                raise ControlError(f"{path}: {key} must be a number")
            values[k] = float(value)
    return values


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
