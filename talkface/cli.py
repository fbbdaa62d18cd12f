"""Command line: `talkface generate | bench | verify | eval | train | drive | serve | voices`.

Every user error ends in one line on stderr and exit code 2; nothing half-written stays.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


class UserError(Exception):
    """Anything the user can fix: printed as one line, exit 2."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


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
                    motion_scale=args.motion_scale).validated()
    if args.controls:
        return ControlTrack.from_json(args.controls, base)
    return ControlTrack(base=base)


def progress_bar(total: int, desc: str):
    """A progress bar on a terminal; silent otherwise (logs stay clean)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not sys.stderr.isatty(), leave=False)


def load_input_audio(args: argparse.Namespace):
    """(analysis audio at 16 kHz, output track at its native quality)."""
    from talkface.analysis.audio import checked_audio, load_audio

    if args.text is not None:
        from talkface.analysis.speech import speak

        spoken = speak(args.text, voice=args.voice)
        track = checked_audio(spoken.samples, spoken.sample_rate, "--text", rate=spoken.sample_rate)
        return checked_audio(spoken.samples, spoken.sample_rate, "--text"), track
    if args.audio is None:
        raise UserError("give --audio FILE or --text \"...\"")
    return load_audio(args.audio), load_audio(args.audio, rate=48000)


def cmd_generate(args: argparse.Namespace) -> int:
    from talkface.engine import FaceModel, GenerateOptions, generate, in_background
    from talkface.analysis.portrait import Portrait
    from talkface.output.video import check_output_path, write_video

    out = check_output_path(args.output)
    controls = controls_from_args(args)
    options = GenerateOptions(fps=args.fps, seed=args.seed, controls=controls, watermark_id=args.watermark_id,
                              label=args.label)
    audio, track = load_input_audio(args)
    portrait = Portrait.from_file(args.image, size=args.size, face_index=args.face_index) if args.image else Portrait.builtin(args.size)
    face = FaceModel(portrait)
    frames = in_background(generate(face, audio, options))
    total = int(round(audio.duration * args.fps))
    with progress_bar(total, "rendering") as bar:
        if args.framing == "full":
            from talkface.render.framing import full_frame

            frames = full_frame(portrait, frames)
        write_video(out, frames, track, fps=args.fps, on_frame=bar.update, c2pa=_signing_identity(args))
    print(str(out))
    return 0


def _signing_identity(args: argparse.Namespace):
    if not (args.c2pa or args.c2pa_cert or args.c2pa_key):
        return None
    from talkface.marking.provenance import SigningIdentity, _require_c2pa, local_identity

    _require_c2pa()
    if bool(args.c2pa_cert) != bool(args.c2pa_key):
        raise UserError("--c2pa-cert and --c2pa-key go together")
    if args.c2pa_cert:
        for path in (args.c2pa_cert, args.c2pa_key):
            if not Path(path).is_file():
                raise UserError(f"file not found: {path}")
        return SigningIdentity(Path(args.c2pa_cert), Path(args.c2pa_key))
    return local_identity()


def cmd_bench(args: argparse.Namespace) -> int:
    from talkface.evaluation.bench import run_bench

    return run_bench(args)


def cmd_verify(args: argparse.Namespace) -> int:
    from talkface.marking.watermark import WatermarkReadError, verify_file

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        result = verify_file(path)
    except WatermarkReadError as exc:
        raise UserError(str(exc)) from None
    from talkface.marking.provenance import read_manifest

    manifest = read_manifest(path) if path.suffix.lower() in (".mp4", ".m4v", ".mov") else None
    if manifest is not None and manifest.present:
        trust = "trusted signer" if manifest.trusted else "signer not on a trust list"
        print(f"C2PA manifest: {manifest.digital_source_type or 'no source type'}, by {manifest.generator}, "
              f"signed by {manifest.signer} ({trust})")
    if result.found:
        p = result.payload
        print(f"talkface watermark FOUND in {path}: version {p.version}, id {p.user_id}, "
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
    ("drive", "animate a portrait with a driving video's pose, expression and audio", "talkface.motion.drive"),
    ("serve", "live web app and HTTP API", "talkface.live.server"),
)
EVAL_COMMANDS = (
    ("lipsync", "lip sync against real videos", "talkface.evaluation.lipsync_eval"),
    ("reenact", "re-render real videos from their first frame", "talkface.evaluation.reenact"),
    ("dynamics", "head, blink and gaze statistics: generated vs real", "talkface.evaluation.dynamics"),
    ("controls", "how well the controls are obeyed", "talkface.evaluation.controls_eval"),
    ("turns", "head turns: identity, pose reached and seams", "talkface.evaluation.turns"),
    ("watermark", "watermark robustness and false positives", "talkface.evaluation.watermark_eval"),
    ("stability", "identity drift and flicker over a long render", "talkface.evaluation.stability"),
)
TRAIN_COMMANDS = (
    ("lipsync", "train the audio->mouth model", "talkface.training.lipsync"),
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkface", description="Make a still portrait talk.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="portrait + audio -> talking-face MP4")
    g.add_argument("--image", help="portrait image (default: the built-in astronaut photo)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--audio", help="speech or song: wav, mp3, m4a, flac, ogg, or a video's audio")
    src.add_argument("--text", help="speak this text offline instead of --audio")
    g.add_argument("--voice", default="en", help="language for --text (see `talkface voices`); default en")
    g.add_argument("-o", "--output", required=True, help="output .mp4")
    g.add_argument("--size", type=_positive_int, default=512, help="output size in pixels; default 512")
    g.add_argument("--fps", type=_float, default=25.0, help="frames per second; default 25")
    g.add_argument("--seed", type=int, default=0, help="random seed for the motion; default 0")
    g.add_argument("--face-index", type=int, default=0, help="which face, largest first; default 0")
    g.add_argument("--framing", choices=("crop", "full"), default="crop",
                   help="crop: the 512x512 head crop (default); full: the whole picture, head animated inside it")
    g.add_argument("--watermark-id", type=int, default=0, help="0..65535, carried in the invisible watermark")
    g.add_argument("--label", help="visible corner caption, e.g. 'AI-generated'")
    g.add_argument("--c2pa", action="store_true",
                   help="embed a signed C2PA manifest (needs c2pa-python; a local certificate is created if none is given)")
    g.add_argument("--c2pa-cert", help="PEM certificate chain for --c2pa (end-entity first)")
    g.add_argument("--c2pa-key", help="PEM private key for --c2pa")
    add_control_arguments(g)
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("bench", help="per-stage timings and end-to-end fps")
    b.add_argument("--json", help="also write the figures to this JSON file")
    b.add_argument("--seconds", type=_float, default=None, help="audio length; default 30 (300 with --stream)")
    b.add_argument("--size", type=_positive_int, default=512)
    b.add_argument("--fps", type=_float, default=None, help="default 25 (40 with --stream)")
    b.add_argument("--image", help="portrait (default: built-in)")
    b.add_argument("--audio", help="audio (default: built-in spoken sentence, repeated)")
    b.add_argument("--stream", action="store_true", help="benchmark the streaming engine instead")
    b.set_defaults(func=cmd_bench)

    v = sub.add_parser("verify", help="is this video or image marked as talkface-generated?")
    v.add_argument("file")
    v.set_defaults(func=cmd_verify)

    vo = sub.add_parser("voices", help="list the languages --text can speak")
    vo.set_defaults(func=cmd_voices)

    _add_plugins(sub, PLUGIN_COMMANDS)
    ev = sub.add_parser("eval", help="measure talkface against real material")
    _add_plugins(ev.add_subparsers(dest="what", required=True), EVAL_COMMANDS)
    tr = sub.add_parser("train", help="train talkface's models")
    _add_plugins(tr.add_subparsers(dest="what", required=True), TRAIN_COMMANDS)
    return parser


def _check_generate_args(args: argparse.Namespace) -> None:
    if getattr(args, "command", None) != "generate":
        return
    if args.image is not None and not Path(args.image).is_file():
        raise UserError(f"image file not found: {args.image}")
    if args.audio is not None and not Path(args.audio).is_file():
        raise UserError(f"audio file not found: {args.audio}")
    if not 64 <= args.size <= 2048:
        raise UserError(f"--size must be between 64 and 2048, got {args.size}")
    if not 0 <= args.watermark_id <= 65535:
        raise UserError(f"--watermark-id must be between 0 and 65535, got {args.watermark_id}")
    if args.face_index < 0:
        raise UserError(f"--face-index must be 0 or more, got {args.face_index}")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    from talkface.analysis.audio import AudioError
    from talkface.motion.controls import ControlError
    from talkface.analysis.portrait import PortraitError
    from talkface.marking.provenance import ProvenanceError
    from talkface.output.video import OutputError

    user_errors: tuple[type[BaseException], ...] = (UserError, ProvenanceError, AudioError, ControlError, PortraitError, OutputError, ValueError)
    try:
        _check_generate_args(args)
        return args.func(args)
    except user_errors as exc:
        print(f"talkface: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("talkface: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, and the traceback on request
        if os.environ.get("TALKFACE_DEBUG"):
            raise
        print(f"talkface: internal error: {type(exc).__name__}: {exc} (set TALKFACE_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
