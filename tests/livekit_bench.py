"""Benchmark of the LiveKit generator path (not a test): a scripted conversation through the real
QueueAudioOutput -> AvatarRunner -> TalkfaceVideoGenerator -> talkface serve -> AVSynchronizer ->
local tracks (tests/livekit_probe.py explains the stack). Run with the agent venv's Python:

    .venv-livekit/bin/python tests/livekit_bench.py WS_URL [--seconds 60] [--server-pid PID] [--json out.json]

Prints JSON: latency from an utterance's first TTS frame entering the agent's audio output to
the first speech frame leaving the generator and to its sound leaving the audio track (p50/p95),
frame rate out of the video track, frames dropped, pictures the server skipped, and the CPU share
(CPU seconds per second; 1.0 = one core) of this process (agent side + worker) and of the server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import QueueAudioOutput
from livekit_probe import LocalRunner, Recorder, RecordingGenerator, say

from talkface.integrations.livekit_worker import start_runner

SENTENCES = ("Hello there, how are you today?", "Tell me about the weather in the mountains, please.",
             "I am a talking portrait, running on this computer.", "This answer will be cut off in the middle.")
PAUSE_S, CUT_AFTER_S, SPEECH_RMS = 1.0, 0.8, 300.0


def server_cpu_s(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float]) -> dict:
    return {"p50": round(float(np.percentile(values, 50)) * 1000, 1),
            "p95": round(float(np.percentile(values, 95)) * 1000, 1), "n": len(values)} if values else {}


def first_after(rows, start: float) -> float | None:
    hits = [t for t, level in rows if t > start and level > SPEECH_RMS]
    return hits[0] - start if hits else None


async def conversation(output: QueueAudioOutput, rec: Recorder, seconds: float) -> list[float]:
    finished = asyncio.Event()
    output.on("playback_finished", lambda ev: finished.set())
    starts, turn = [], 0
    while rec.now() < seconds:
        await asyncio.sleep(PAUSE_S)
        finished.clear()
        starts.append(rec.now())
        await say(output, SENTENCES[turn % len(SENTENCES)])
        if turn % len(SENTENCES) == len(SENTENCES) - 1:   # every fourth answer is interrupted
            await asyncio.sleep(CUT_AFTER_S)
            output.clear_buffer()
        await asyncio.wait_for(finished.wait(), 30.0)
        turn += 1
    return starts


async def main(url: str, seconds: float, server_pid: int | None) -> dict:
    rec = Recorder(Path(tempfile.mkdtemp(prefix="talkface-livekit-bench-")))
    rec.images = False
    RecordingGenerator.recorder = LocalRunner.recorder = rec
    generator = await RecordingGenerator.connect(url)
    output = QueueAudioOutput(sample_rate=generator.options.audio_sample_rate)
    runner = await start_runner(rtc.Room(), output, generator, runner_cls=LocalRunner)
    cpu0, server0, wall0 = time.process_time(), server_cpu_s(server_pid), time.perf_counter()
    starts = await conversation(output, rec, seconds)
    wall = time.perf_counter() - wall0
    cpu, server = time.process_time() - cpu0, server_cpu_s(server_pid) - server0
    await runner.aclose()
    await generator.aclose()
    for task in runner.readers:
        task.cancel()
    shutil.rmtree(rec.out, ignore_errors=True)
    gen_audio = [(t, level) for t, kind, level in rec.gen if kind == "audio"]
    out_audio = [(t, level) for t, _, level in rec.audio]
    to_gen = [d for s in starts if (d := first_after(gen_audio, s)) is not None]
    to_track = [d for s in starts if (d := first_after(out_audio, s)) is not None]
    video = [t for t, _ in rec.video]
    return {"seconds": round(wall, 1), "utterances": len(starts),
            "push_to_generator_ms": pct(to_gen), "push_to_track_audio_ms": pct(to_track),
            "fps_out": round((len(video) - 1) / (video[-1] - video[0]), 2),
            "frame_interval_ms_p95": round(float(np.percentile(np.diff(video), 95)) * 1000, 1),
            "frames_dropped_by_generator": generator.dropped, "frames_yielded": len(rec.frames),
            "server_skipped_pictures_share": round(float(np.mean([f[5] for f in rec.frames])), 3),
            "cpu_share_worker": round(cpu / wall, 3), "cpu_share_server": round(server / wall, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    figures = asyncio.run(main(args.url, args.seconds, args.server_pid))
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
