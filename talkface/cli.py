"""Command line: `talkface generate | drive | batch | bench | verify | eval | train | serve | voices`.

Every user error (a talkface.errors.TalkfaceError, or a bad option) ends in one line on stderr
and exit code 2; nothing half-written stays, also when the process is sent SIGTERM. Anything
else is a bug and shows as one: its traceback, exit code 1.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from talkface.errors import InputError, TalkfaceError
from talkface.motion.generator import DEFAULT_MOTION, MOTION_SOURCES
from talkface.native import silence_native_stderr
from talkface.progress import progress_bar  # noqa: F401  (the CLI's old home of progress_bar)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM
UserError = InputError   # the CLI's old name for a user error
SIZE_RANGE = (64, 2048)  # = talkface.pipeline.SIZE_RANGE (kept here so `--help` stays light)
# an option's value that starts with a minus and is a number or a list of numbers: "-30,0,0"
_NEGATIVE_VALUE = re.compile(r"^-\.?\d[\d.eE+-]*(\s*,\s*-?\.?\d[\d.eE+-]*)*$")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (exit 2), not the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"talkface: error: {message} (see: {self.prog} --help)\n")


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl+C, so partial files are removed on the way out."""


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None


def _non_negative_int(text: str) -> int:
    v = _whole(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 or more, got {v}")
    return v


def _positive_int(text: str) -> int:
    v = _whole(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number 1 or more, got {v}")
    return v


def _size(text: str) -> int:
    v = _whole(text)
    if not SIZE_RANGE[0] <= v <= SIZE_RANGE[1]:
        raise argparse.ArgumentTypeError(f"must be between {SIZE_RANGE[0]} and {SIZE_RANGE[1]} pixels, got {v}")
    return v


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def join_negative_values(argv: list[str]) -> list[str]:
    """`--head-pose -30,0,0` as `--head-pose=-30,0,0`: argparse would take the value for an option."""
    out: list[str] = []
    for arg in argv:
        prev = out[-1] if out else ""
        if prev.startswith("--") and "=" not in prev and _NEGATIVE_VALUE.match(arg):
            out[-1] = f"{prev}={arg}"
        else:
            out.append(arg)
    return out


def add_control_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("controls")
    g.add_argument("--gaze", help="YAW,PITCH in degrees, or 'camera'")
    g.add_argument("--head-pose", help="YAW,PITCH,ROLL offset in degrees")
    g.add_argument("--head-distance", type=_float, default=1.0, help="0.6 (closer) .. 1.5 (farther); default 1")
    g.add_argument("--emotion", default="neutral", help="neutral, happy, sad, angry or surprised")
    g.add_argument("--emotion-strength", type=_float, default=0.6, help="0..1; default 0.6")
    g.add_argument("--motion-scale", type=_float, default=1.0, help="0 still head, 1 natural, 2 lively")
    g.add_argument("--controls", help="JSON file of keyframed controls over time")


def controls_from_args(args: argparse.Namespace):
    from talkface.motion.controls import Controls, ControlTrack, parse_floats, parse_gaze

    gaze, camera = parse_gaze(args.gaze) if args.gaze else (None, False)
    pose = parse_floats(args.head_pose, 3, "--head-pose") if args.head_pose else (0.0, 0.0, 0.0)
    base = Controls(gaze=gaze, gaze_camera=camera, head_pose=pose, head_distance=args.head_distance,
                    emotion=args.emotion, emotion_strength=args.emotion_strength,
                    motion_scale=args.motion_scale)
    if args.controls:
        return ControlTrack.from_json(args.controls, base)
    return ControlTrack(base=base)


def options_from_args(args: argparse.Namespace):
    from talkface.engine import GenerateOptions

    values = dict(fps=getattr(args, "fps", 25.0), seed=getattr(args, "seed", 0), watermark_id=args.watermark_id,
                  label=args.label, framing=args.framing, motion=getattr(args, "motion", None) or DEFAULT_MOTION)
    if hasattr(args, "head_pose"):
        values["controls"] = controls_from_args(args)
    return GenerateOptions(**values)


def _render(job) -> int:
    from talkface.pipeline import render_file

    with progress_bar(None, "rendering") as bar:
        result = render_file(job, progress=bar)
    print(str(result.output))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from talkface.pipeline import Job

    if args.audio is None and args.text is None:
        raise InputError('give --audio FILE or --text "..."')
    job = Job(output=Path(args.output), image=_path(args.image), audio=_path(args.audio), text=args.text,
              voice=args.voice, options=options_from_args(args), size=args.size, face_index=args.face_index,
              c2pa=_signing_identity(args))
    return _render(job)


def cmd_drive(args: argparse.Namespace) -> int:
    from talkface.analysis.audio import MAX_DURATION_S
    from talkface.pipeline import Job

    job = Job(output=Path(args.output), image=Path(args.image), driver=Path(args.video), options=options_from_args(args),
              size=args.size, face_index=args.face_index,
              max_seconds=MAX_DURATION_S if args.max_seconds is None else args.max_seconds)
    return _render(job)


def _path(text: str | None) -> Path | None:
    return Path(text) if text is not None else None


def _signing_identity(args: argparse.Namespace):
    if not (args.c2pa or args.c2pa_cert or args.c2pa_key):
        return None
    from talkface.marking.provenance import SigningIdentity, local_identity, require_c2pa

    require_c2pa()
    if bool(args.c2pa_cert) != bool(args.c2pa_key):
        raise InputError("--c2pa-cert and --c2pa-key go together")
    if args.c2pa_cert:
        for path in (args.c2pa_cert, args.c2pa_key):
            if not Path(path).is_file():
                raise InputError(f"file not found: {path}")
        return SigningIdentity(Path(args.c2pa_cert), Path(args.c2pa_key))
    return local_identity()


def cmd_bench(args: argparse.Namespace) -> int:
    from talkface.evaluation.bench import run_bench

    return run_bench(args)


def cmd_verify(args: argparse.Namespace) -> int:
    from talkface.marking.watermark import verify_file

    path = Path(args.file)
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a video or image file")
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    result = verify_file(path)
    from talkface.marking.provenance import read_manifest

    manifest = read_manifest(path) if path.suffix.lower() in (".mp4", ".m4v", ".mov") else None
    if manifest is not None and manifest.present:
        trust = "trusted signer" if manifest.trusted else "signer not on a trust list"
        print(f"C2PA manifest: {manifest.digital_source_type or 'no source type'}, by {manifest.generator}, "
              f"signed by {manifest.signer} ({trust})")
    if result.found:
        p = result.payload
        what = f"version {p.version}, id {p.user_id}" if p else "id not readable (too degraded)"
        print(f"talkface watermark FOUND in {path}: {what}, "
              f"confidence {result.confidence:.4f} ({result.frames_used} frame(s) checked)")
        return 0
    print(f"no talkface watermark found in {path} ({result.frames_used} frame(s) checked)")
    return 1


def cmd_voices(args: argparse.Namespace) -> int:
    from talkface.analysis.speech import list_voices

    print(" ".join(list_voices()))
    return 0


# Commands that live in their own stage's module: each module has `add_arguments(parser)`
# and `run(args) -> int`. (name, help, module)
PLUGIN_COMMANDS = (
    ("batch", "render many jobs from a JSONL file, locally or on a Ray cluster", "talkface.batch.command"),
    ("serve", "live web app and HTTP API", "talkface.live.server"),
)
EVAL_COMMANDS = (
    ("lipsync", "lip sync against real videos", "talkface.evaluation.lipsync_eval"),
    ("bilabial", "do the rendered lips close on p, b, m (real clips and espeak-ng speech)", "talkface.evaluation.bilabial"),
    ("reenact", "re-render real videos from their first frame", "talkface.evaluation.reenact"),
    ("dynamics", "head, blink and gaze statistics: generated vs real", "talkface.evaluation.dynamics"),
    ("controls", "how well the controls are obeyed", "talkface.evaluation.controls_eval"),
    ("turns", "head turns: identity, pose reached and seams", "talkface.evaluation.turns"),
    ("watermark", "watermark robustness and false positives", "talkface.evaluation.watermark_eval"),
    ("stability", "identity drift and flicker over a long render", "talkface.evaluation.stability"),
    ("batch", "batch jobs per minute on a Ray cluster of 1 node vs 2 (needs talkface[ray])", "talkface.evaluation.batch_bench"),
)
DATA_COMMANDS = (
    ("prepare", "track real clips once and cache them for training", "talkface.data.prepare"),
)
TRAIN_COMMANDS = (
    ("lipsync", "train the audio->mouth model", "talkface.training.lipsync"),
    ("motion", "train the head, gaze, blink and brow model", "talkface.training.motion"),
)


def _add_plugins(sub, table) -> None:
    import importlib.util

    for name, help_text, module in table:
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        mod = importlib.import_module(module)
        if hasattr(mod, "add_arguments"):
            p = sub.add_parser(name, help=help_text)
            mod.add_arguments(p)
            p.set_defaults(func=mod.run)
        elif hasattr(mod, "main"):  # a module with its own argparse: hand it the rest of the line
            p = sub.add_parser(name, help=help_text, add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=lambda args, mod=mod: mod.main(args.rest))


def add_picture_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--face-index", type=_non_negative_int, default=0, help="which face, largest first; default 0")
    p.add_argument("--framing", choices=("crop", "full"), default="crop",
                   help="crop: the head crop (default); full: the whole picture, head animated inside it")
    p.add_argument("--watermark-id", type=_whole, default=0, help="0..65535, carried in the invisible watermark")
    p.add_argument("--label", help="visible corner caption, e.g. 'AI-generated'")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="talkface", description="Make a still portrait talk.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="portrait + audio -> talking-face MP4")
    g.add_argument("--image", help="portrait image (default: the built-in astronaut photo)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--audio", help="speech or song: wav, mp3, m4a, flac, ogg, or a video's audio")
    src.add_argument("--text", help="speak this text offline instead of --audio")
    g.add_argument("--voice", default="en", help="language for --text (see `talkface voices`); default en")
    g.add_argument("-o", "--output", required=True, help="output .mp4")
    g.add_argument("--size", type=_size, default=512, help="output size in pixels (64..2048); default 512")
    g.add_argument("--fps", type=_float, default=25.0, help="frames per second; default 25")
    g.add_argument("--seed", type=_non_negative_int, default=0, help="random seed for the motion; default 0")
    add_picture_arguments(g)
    g.add_argument("--motion", choices=MOTION_SOURCES, default=None,
                   help="head, gaze, blink and brow motion: learned from real people, or the procedural rules "
                        "(default: %s)" % DEFAULT_MOTION)
    g.add_argument("--c2pa", action="store_true",
                   help="embed a signed C2PA manifest (needs c2pa-python; a local certificate is created if none is given)")
    g.add_argument("--c2pa-cert", help="PEM certificate chain for --c2pa (end-entity first)")
    g.add_argument("--c2pa-key", help="PEM private key for --c2pa")
    add_control_arguments(g)
    g.set_defaults(func=cmd_generate)

    d = sub.add_parser("drive", help="animate a portrait with a driving video's pose, expression and audio")
    d.add_argument("--image", required=True, help="portrait to animate")
    d.add_argument("--video", required=True, help="driving video (a face; its audio is used)")
    d.add_argument("-o", "--output", required=True, help="output .mp4")
    d.add_argument("--size", type=_size, default=512, help="output size in pixels (64..2048); default 512")
    d.add_argument("--max-seconds", type=_float, default=None, help="use only the start of the driver")
    add_picture_arguments(d)
    d.set_defaults(func=cmd_drive)

    b = sub.add_parser("bench", help="per-stage timings and end-to-end fps")
    b.add_argument("--json", help="also write the figures to this JSON file")
    b.add_argument("--seconds", type=_float, default=None, help="audio length; default 30 (300 with --stream)")
    b.add_argument("--size", type=_size, default=512)
    b.add_argument("--fps", type=_float, default=None, help="default 25 (40 with --stream)")
    b.add_argument("--image", help="portrait (default: built-in)")
    b.add_argument("--audio", help="audio (default: built-in spoken sentence, repeated)")
    b.add_argument("--stream", action="store_true", help="benchmark the streaming engine instead")
    b.add_argument("--sessions", type=_positive_int, help="with --stream: live sessions at once; default 1")
    b.add_argument("--trials", type=int, help="with --stream: first-frame trials before; default 20")
    b.add_argument("--soak", action="store_true", help="mixed traffic against a loopback server (see --minutes)")
    b.add_argument("--minutes", type=_float, default=30.0, help="with --soak: how long; default 30")
    b.set_defaults(func=cmd_bench)

    v = sub.add_parser("verify", help="is this video or image marked as talkface-generated?")
    v.add_argument("file")
    v.set_defaults(func=cmd_verify)

    vo = sub.add_parser("voices", help="list the languages --text can speak")
    vo.set_defaults(func=cmd_voices)

    _add_plugins(sub, PLUGIN_COMMANDS)
    ev = sub.add_parser("eval", help="measure talkface against real material")
    _add_plugins(ev.add_subparsers(dest="what", required=True), EVAL_COMMANDS)
    da = sub.add_parser("data", help="prepare real talking-face clips for training")
    _add_plugins(da.add_subparsers(dest="what", required=True), DATA_COMMANDS)
    tr = sub.add_parser("train", help="train talkface's models")
    _add_plugins(tr.add_subparsers(dest="what", required=True), TRAIN_COMMANDS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A TalkfaceError is the user's to fix: one line, exit 2. Any other
    exception is a bug and propagates with its traceback (exit 1)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    previous = _on_sigterm_unwind()
    restore_stderr = silence_native_stderr()
    try:
        return args.func(args)
    except TalkfaceError as exc:
        print(f"talkface: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("talkface: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("talkface: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        restore_stderr()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm_unwind():
    """Make SIGTERM unwind the main thread (temporary files removed on the way out); returns
    the previous handler, or None where no handler can be set (not the main thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit(main())
