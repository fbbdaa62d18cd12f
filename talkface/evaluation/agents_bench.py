"""Voice-agent benchmark: the Pipecat example end to end in headless Chromium over WebRTC.

    python -m talkface.evaluation.agents_bench --minutes 5 --json agents.json

A scripted conversation (sentences typed to the bot, pauses, every fourth answer interrupted)
against `talkface serve` + examples/pipecat_bot (needs .venv-pipecat: `make pipecat-env`).
Prints and writes:

- `g2g_first_ms_p50/p95`: glass to glass, from the first TTS chunk of an answer entering
  TalkfaceVideoService to the browser showing the frame that plays it (requestVideoFrameCallback's
  expected display time; one clock, this machine's). `g2g_chunk_ms_*`: the same for every chunk
  (a TTS faster than real time queues its later chunks behind the earlier ones).
- `fps` (distinct frames shown per second), `dropped_frames` / `dropped_share` (frames the bot
  emitted that the browser never showed), `frame_interval_ms_p95`.
- `av_offset_ms_*`: audio onset minus picture onset at the start of each answer (positive: the
  sound comes later), from the page's audio level every 5 ms.
- `interrupt_video_ms_*` / `interrupt_audio_ms_*`: from the barge-in reaching the bot to the first
  shown idle frame / to the sound going silent; `interrupt_bot_*`: the bot's share of that (the
  first idle frame leaving the service and its output queue, the last cut speech audio going out).
- `mouth_*`: the spread of the mouth box's luminance spread over speech frames and over idle frames.
- `stage_*`: server -> bot, in the bot, waiting in the output transport's queue (behind the
  audio before it), from leaving that queue to the screen, and bot -> screen in all.
- `browser_*`: the browser's own delays from its receivers' statistics (jitter buffers, decoding,
  audio playout), averaged over the run.
- `cpu_share_server` / `cpu_share_bot`: CPU seconds per second of one avatar's session
  (1.0 = one core), server (renderer) and bot (Pipecat, WebRTC encoding) separately.
- `load_average_start` / `_end`, `cores`: the machine's 1-minute load around the run; with other
  jobs running the browser's jitter buffers grow and the figures are not talkface's own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SILENT_RMS = 0.01          # the page's audio level below which the voice counts as silent
# the voice is cut once it stays silent this long (at 0.1 s a pause between words counted, when the
# browser delayed the sound by 0.5-1 s)
SILENCE_HOLD_S = 0.5
ONSET_QUIET_S = 0.3        # an answer's audio onset is only measured after this much silence
SENTENCES = (
    "Hello there, how are you today?",
    "What is your name?",
    "Tell me about the weather in the mountains, please.",
    "I would like to hear a longer answer from you, so please keep talking for a while.",
    "What time is it?",
)


def conversation(browser, seconds: float, pause_s: float = 1.5) -> None:
    """Type sentences for `seconds`: wait for each answer to play (about 70 ms per character of
    reply), pause, and interrupt every fourth answer one second in."""
    end, turn = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        text = SENTENCES[turn % len(SENTENCES)]
        browser.say(text)
        if turn % 4 == 3:
            time.sleep(1.8)
            browser.interrupt()
        else:
            time.sleep(1.0 + 0.07 * (len(text) + 12))
        time.sleep(pause_s)
        turn += 1


def _pct(values, name: str) -> dict:
    if len(values) == 0:
        return {f"{name}_p50": None, f"{name}_p95": None, f"{name}_n": 0}
    v = np.asarray(values, float) * 1000.0
    return {f"{name}_p50": round(float(np.percentile(v, 50)), 1), f"{name}_p95": round(float(np.percentile(v, 95)), 1),
            f"{name}_n": int(len(v))}


def shown_frames(trace: dict, browser: dict) -> dict[int, dict]:
    """Frame index -> {shown (Unix s), mouth, speech, ...}: the first display of each bot frame."""
    by_index = {f["index"]: f for f in trace["frames"]}
    shown: dict[int, dict] = {}
    for f in browser["frames"]:
        if f["index"] in by_index and f["index"] not in shown:
            shown[f["index"]] = {**by_index[f["index"]], "shown": f["shown"] / 1000.0, "mouth": f["mouth"]}
    return shown


def first_shown_per_answer(trace: dict, shown: dict[int, dict]) -> list[tuple[float, dict]]:
    """(entry time of an answer's first TTS chunk, the first frame of that answer the browser showed)."""
    pairs, previous, entered = [], None, None
    for f in trace["frames"]:
        if f["speech"] and f["tts_entered"] and (previous is None or not previous["speech"]):
            entered = min(f["tts_entered"])
        if not f["speech"]:
            entered = None
        if entered is not None and f["index"] in shown:
            pairs.append((entered, shown[f["index"]]))
            entered = None
        previous = f
    return pairs


def latency_figures(trace: dict, shown: dict[int, dict]) -> dict:
    first = [f["shown"] - entered for entered, f in first_shown_per_answer(trace, shown)]
    chunks = [f["shown"] - t for f in shown.values() if f["speech"] for t in f["tts_entered"]]
    return {**_pct(first, "g2g_first_ms"), **_pct(chunks, "g2g_chunk_ms")}


def rate_figures(trace: dict, shown: dict[int, dict]) -> dict:
    times = np.sort([f["shown"] for f in shown.values()])
    indices = sorted(shown)
    emitted = [f["index"] for f in trace["frames"] if indices[0] <= f["index"] <= indices[-1]]
    dropped = len(set(emitted) - set(indices))
    span = times[-1] - times[0]
    return {"fps": round((len(times) - 1) / span, 2) if span > 0 else None, "frames_shown": len(times),
            "dropped_frames": dropped, "dropped_share": round(dropped / max(1, len(emitted)), 4),
            **_pct(np.diff(times), "frame_interval_ms")}


def stage_figures(shown: dict[int, dict]) -> dict:
    """Where the time goes: server -> bot (WebSocket and the bot's loop), inside the bot, bot -> screen."""
    f = list(shown.values())
    released = [x for x in f if "released" in x]   # left the output transport's queue (bot.py FrameReleased)
    return {**_pct([x["received"] - x["sent"] for x in f], "stage_server_to_bot_ms"),
            **_pct([x["emitted"] - x["received"] for x in f], "stage_in_bot_ms"),
            **_pct([x["released"] - x["emitted"] for x in released], "stage_transport_queue_ms"),
            **_pct([x["shown"] - x["released"] for x in released], "stage_released_to_screen_ms"),
            **_pct([x["shown"] - x["emitted"] for x in f], "stage_bot_to_screen_ms")}


def browser_delay_figures(browser: dict) -> dict:
    """The browser's own delays, averaged over the run from its receivers' cumulative counters
    (getStats every second): per video frame, the jitter buffer, decoding and receive-to-render
    processing; per audio sample, the jitter buffer and the playout (device) delay."""
    stats = [s for s in browser.get("stats", []) if "video" in s and "audio" in s]
    if len(stats) < 2:
        return {}
    first, last = stats[0], stats[-1]

    def per(kind: str, total: str, count: str) -> float | None:
        a, b = first.get(kind, {}), last.get(kind, {})
        n = b.get(count, 0) - a.get(count, 0)
        return round(1000.0 * (b[total] - a[total]) / n, 1) if total in b and total in a and n > 0 else None

    return {"browser_video_jitter_ms": per("video", "jitterBufferDelay", "jitterBufferEmittedCount"),
            "browser_video_target_ms": per("video", "jitterBufferTargetDelay", "jitterBufferEmittedCount"),
            "browser_video_decode_ms": per("video", "totalDecodeTime", "framesDecoded"),
            "browser_video_processing_ms": per("video", "totalProcessingDelay", "jitterBufferEmittedCount"),
            "browser_audio_jitter_ms": per("audio", "jitterBufferDelay", "jitterBufferEmittedCount"),
            "browser_audio_target_ms": per("audio", "jitterBufferTargetDelay", "jitterBufferEmittedCount"),
            "browser_audio_playout_ms": per("playout", "totalPlayoutDelay", "totalSamplesCount")}


def _levels(browser: dict) -> tuple[np.ndarray, np.ndarray]:
    levels = np.asarray(browser["levels"], float).reshape(-1, 2)
    return levels[:, 0] / 1000.0, levels[:, 1]


def av_offsets(trace: dict, shown: dict[int, dict], browser: dict) -> list[float]:
    """Audio onset minus picture onset for each answer that starts after silence."""
    t, rms = _levels(browser)
    offsets = []
    for _entered, f in first_shown_per_answer(trace, shown):
        quiet = (t > f["shown"] - ONSET_QUIET_S - 0.2) & (t < f["shown"] - 0.2)
        loud = np.flatnonzero((t > f["shown"] - 0.2) & (rms > SILENT_RMS))
        if quiet.any() and (rms[quiet] <= SILENT_RMS).all() and len(loud):
            offsets.append(t[loud[0]] - f["shown"])
    return offsets


def interrupt_latencies(trace: dict, shown: dict[int, dict], browser: dict) -> tuple[list[float], list[float]]:
    """For each barge-in while the face spoke: time to the first shown idle frame, and to silence."""
    t, rms = _levels(browser)
    order = sorted(shown.values(), key=lambda f: f["shown"])
    video, audio = [], []
    for at in trace["interrupts"]:
        before = [f for f in order if f["shown"] <= at]
        after = [f for f in order if f["shown"] > at and not f["speech"]]
        if not before or not before[-1]["speech"] or not after:
            continue
        video.append(after[0]["shown"] - at)
        quiet = np.flatnonzero((t > at) & (rms <= SILENT_RMS))
        for k in quiet:
            hold = (t >= t[k]) & (t <= t[k] + SILENCE_HOLD_S)
            if (rms[hold] <= SILENT_RMS).all():
                audio.append(t[k] - at)
                break
    return video, audio


def bot_interrupt_figures(trace: dict) -> dict:
    """The bot's share of each barge-in: until the first idle frame left the bot (and left its
    output transport for the video track), and until the last cut speech audio went to the audio
    track (0 when none did). The rest of `interrupt_*_ms` is WebRTC and the browser."""
    emitted, released, cut = [], [], []
    for at, out in zip(trace["interrupts"], trace.get("speech_out", [])):
        idle = next((f for f in trace["frames"] if f["emitted"] > at and not f["speech"]), None)
        if idle is None:
            continue
        emitted.append(idle["emitted"] - at)
        if "released" in idle:
            released.append(idle["released"] - at)
        cut.append(max(0.0, out - at) if out else 0.0)
    return {**_pct(emitted, "interrupt_bot_idle_emitted_ms"), **_pct(released, "interrupt_bot_idle_released_ms"),
            **_pct(cut, "interrupt_bot_speech_out_ms")}


def mouth_figures(shown: dict[int, dict]) -> dict:
    """How much the mouth box changes over speech frames and over idle frames (luminance spread)."""
    spread = {True: [], False: []}
    for f in shown.values():
        if f["mouth"] is not None:
            spread[f["speech"]].append(f["mouth"][1])

    def variation(values):
        return round(float(np.percentile(values, 90) - np.percentile(values, 10)), 2) if len(values) > 5 else None

    return {"mouth_speech_variation": variation(spread[True]), "mouth_idle_variation": variation(spread[False]),
            "mouth_speech_frames": len(spread[True]), "mouth_idle_frames": len(spread[False])}


def analyse(trace: dict, browser: dict) -> dict:
    shown = shown_frames(trace, browser)
    if len(shown) < 2:
        return {"frames_shown": len(shown)}
    video, audio = interrupt_latencies(trace, shown, browser)
    return {**latency_figures(trace, shown), **rate_figures(trace, shown), **_pct(av_offsets(trace, shown, browser), "av_offset_ms"),
            **_pct(video, "interrupt_video_ms"), **_pct(audio, "interrupt_audio_ms"), **bot_interrupt_figures(trace),
            **mouth_figures(shown),
            **stage_figures(shown), **browser_delay_figures(browser),
            "nominal_fps": trace["fps"]}


def run(seconds: float, bot_flags: tuple[str, ...] = ()) -> dict:
    from talkface.evaluation.agents_stack import bot_trace, browser_on, cpu_seconds, pipecat_stack

    with pipecat_stack(bot_flags=bot_flags) as stack, tempfile.TemporaryDirectory(prefix="talkface-agents-") as tmp:
        with browser_on(stack, Path(tmp)) as browser:
            cpu0 = cpu_seconds(stack.server_pid), cpu_seconds(stack.bot_pid), time.monotonic()
            load0 = os.getloadavg()[0]
            conversation(browser, seconds)
            cpu1 = cpu_seconds(stack.server_pid), cpu_seconds(stack.bot_pid), time.monotonic()
            load1 = os.getloadavg()[0]
            collected = browser.collected()
        result = analyse(bot_trace(stack), collected)
    wall = cpu1[2] - cpu0[2]
    return {**result, "seconds": round(wall, 1), "cpu_share_server": round((cpu1[0] - cpu0[0]) / wall, 3),
            "cpu_share_bot": round((cpu1[1] - cpu0[1]) / wall, 3),
            # other jobs on the machine starve the WebRTC encoder and Chromium: the figures are only
            # talkface's own when the load stays well under the core count
            "load_average_start": round(load0, 2), "load_average_end": round(load1, 2), "cores": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    from talkface.evaluation.agents_stack import missing_requirements

    p = argparse.ArgumentParser(prog="python -m talkface.evaluation.agents_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="length of the scripted conversation; default 5")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--live-images", action="store_true", help="run the bot with --live-images")
    p.add_argument("--stock-tracks", action="store_true",
                   help="run the bot with SmallWebRTC's own output tracks (A/B against the timed ones)")
    args = p.parse_args(argv)
    reason = missing_requirements()
    if reason:
        print(f"agents_bench: error: {reason}", file=sys.stderr)
        return 2
    if not args.minutes > 0:
        p.error(f"--minutes must be above 0, not {args.minutes:g}")
    if args.json and not args.json.parent.is_dir():
        p.error(f"--json: no such directory: {args.json.parent}")
    flags = ("--live-images",) * args.live_images + ("--stock-tracks",) * args.stock_tracks
    try:
        result = run(args.minutes * 60.0, flags)
    except RuntimeError as exc:   # the server or the bot did not start, or WebRTC did not connect
        print(f"agents_bench: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
