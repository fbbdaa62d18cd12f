"""One clip, tracked once: the face mesh per frame (with its timestamps on the audio's
clock), the face measurements, the audio features, the audio-video offset and the quality
checks, written to one .npz (atomically: a half-written file never looks complete).

Arrays in the .npz (T video frames, A audio feature frames at 100 Hz):
  times (T,)          video frame times, seconds from the first audio sample
  aligned_times (T,)  times + the estimated offset: the audio time that goes with each frame
  points (T, 478, 3)  face mesh, pixels (NaN: no face)
  n_faces (T,)        faces the tracker found (up to 2)
  usable (T,) bool, reason (T,) int8 (quality.REASONS index, -1 usable)
  mouth, pose, eyes, gaze, brows, face: face_features.FaceFeatures
  log_mel (A, 40), rms_db (A,) (the raw loudness, dBFS), pitch_hz (A,): talkface.analysis.audio
  meta: a JSON string (the index.json row)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkface.data.face_features import MOUTH_FEATURES, face_features
from talkface.data.quality import MIN_SYNC_R, REASONS, check
from talkface.data.sync import MAX_LAG_S, SYNC_VERSION, estimate_offset

PIPELINE_VERSION = 1
NO_SPEECH = "no speech: motion-only footage (silent, music or another voice)"
MAX_FACES = 2


@dataclass(frozen=True)
class ClipJob:
    path: str
    clip_id: str
    speaker: str
    emotion: str | None
    out: str                    # the .npz to write
    no_speech: bool = False     # motion-only footage (silent, music): never for lip sync

    def labels(self) -> dict:
        """What index.json takes from this job over the cached file's own record."""
        out = {"speaker": self.speaker, "emotion": self.emotion}
        if self.no_speech:
            out.update(use_lipsync=False, lipsync_rejected=NO_SPEECH)
        return out

    def source_key(self) -> str:
        st = Path(self.path).stat()
        return f"{st.st_size}:{int(st.st_mtime)}:v{PIPELINE_VERSION}"


def is_complete(job: ClipJob) -> bool:
    """The cache file exists, opens, and was made from this very source file by this pipeline
    (labels, like the speaker, are not part of it: index.json carries the current ones)."""
    try:
        with np.load(job.out) as z:
            meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError):
        return False
    return meta.get("source_key") == job.source_key()


def read_meta(path: str | Path) -> dict:
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def _track(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    from talkface.analysis.tracking import FaceTracker
    from talkface.output.video import iter_video_frames

    tracker = FaceTracker(max_faces=MAX_FACES)
    times, pts, counts, size = [], [], [], (0, 0)
    try:
        for t, img in iter_video_frames(path):
            faces = tracker.faces(img)
            size = (img.shape[1], img.shape[0])
            times.append(t)
            counts.append(len(faces))
            pts.append(faces[0] if faces else np.full((478, 3), np.nan, np.float32))
    finally:
        tracker.close()
    return np.array(times, np.float64), np.array(pts, np.float32).reshape(-1, 478, 3), np.array(counts, np.int8), size


def _audio(path: Path):
    from talkface.analysis.audio import AudioError, extract_features, load_audio

    try:
        return extract_features(load_audio(path)), None
    except AudioError as exc:
        return None, str(exc)


def sync_fields(times: np.ndarray, usable: np.ndarray, opening: np.ndarray, feats, not_for_lipsync: str | None) -> dict:
    """The offset estimate and the lip-sync verdict, as index fields (and the aligned times)."""
    sync = estimate_offset(times, np.where(usable, opening, np.nan), feats) if feats is not None and len(feats) else None
    reason = not_for_lipsync
    if reason is None and sync is not None and not (sync.r_max >= MIN_SYNC_R):
        reason = f"audio unrelated to the mouth: best mouth-loudness r {sync.r_max:.2f} within +-{MAX_LAG_S:g} s"
    return {"av_lag_s": sync.lag_s if sync else None, "av_r": _round(sync.r) if sync else None,
            "av_r_zero": _round(sync.r_zero) if sync else None, "av_gain": _round(sync.gain) if sync else None,
            "av_reliable": sync.reliable if sync else False, "av_offset_s": sync.offset_s if sync else 0.0,
            "use_lipsync": reason is None, "lipsync_rejected": reason, "sync_version": SYNC_VERSION}


def prepare_clip(job: ClipJob) -> dict:
    """Track, measure, check and write one clip; returns its index row."""
    from talkface.analysis.tracking import stream_start_gap

    path = Path(job.path)
    meta = {"clip": job.clip_id, "source": str(path), "source_key": job.source_key(), "speaker": job.speaker,
            "emotion": job.emotion, "pipeline_version": PIPELINE_VERSION}
    try:
        times, points, n_faces, size = _track(path)
        gap = stream_start_gap(path)
    except Exception as exc:  # an unreadable file is a rejected clip, not a crashed run
        meta.update(rejected=f"cannot read video: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                    use_lipsync=False, use_motion=False)
        _write(job.out, {}, meta)
        return meta
    times = times + gap
    feats, audio_error = _audio(path)
    ff = face_features(points)
    q = check(times, ff.face, n_faces)
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    meta.update({
        "frames": int(len(times)), "duration_s": round(float(len(times) * dt), 3), "fps": round(1.0 / dt, 3) if dt else None,
        "frame_size": list(size), "stream_start_gap_s": round(gap, 4),
        "median_iod_px": round(float(np.nanmedian(ff.face[:, 2])), 1) if np.isfinite(ff.face[:, 2]).any() else None,
        "usable_s": round(float(q.usable.sum() * dt), 3), "rejected": q.clip_rejected, "rejected_stretches": q.stretches,
        "audio": audio_error or "ok", "audio_frames": int(len(feats)) if feats is not None else 0,
        "use_motion": q.clip_rejected is None, "mouth_features": list(MOUTH_FEATURES), "reasons": list(REASONS),
        **sync_fields(times, q.usable, ff.mouth[:, 0], feats,
                      q.clip_rejected or audio_error or (NO_SPEECH if job.no_speech else None)),
    })
    arrays = {"times": times, "aligned_times": times + meta["av_offset_s"], "points": points, "n_faces": n_faces,
              "usable": q.usable, "reason": q.reason, **ff.arrays()}
    if feats is not None:
        arrays.update(log_mel=feats.log_mel, rms_db=feats.rms_db, pitch_hz=feats.pitch_hz)
    _write(job.out, arrays, meta)
    return meta


def refresh_sync(job: ClipJob) -> bool:
    """Re-estimate the offset of a complete cache file made by an older offset estimator
    (no re-tracking); True when the file was rewritten."""
    from talkface.analysis.audio import AudioFeatures

    with np.load(job.out) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("sync_version") == SYNC_VERSION or "times" not in z.files:
            return False
        arrays = {k: z[k] for k in z.files if k != "meta"}
    feats = AudioFeatures(arrays["log_mel"], arrays["rms_db"], arrays["pitch_hz"]) if "log_mel" in arrays else None
    audio_error = None if meta.get("audio") == "ok" else meta.get("audio")
    meta.update(sync_fields(arrays["times"], arrays["usable"], arrays["mouth"][:, 0], feats,
                            meta.get("rejected") or audio_error or (NO_SPEECH if job.no_speech else None)))
    arrays["aligned_times"] = arrays["times"] + meta["av_offset_s"]
    _write(job.out, arrays, meta)
    return True


def _round(v: float) -> float | None:
    return round(float(v), 4) if v is not None and np.isfinite(v) else None


def _write(out: str, arrays: dict, meta: dict) -> None:
    """Write to a temporary name in the same folder, then rename: atomic on POSIX."""
    out = Path(out)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
