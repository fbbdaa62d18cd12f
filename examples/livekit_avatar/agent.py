"""A LiveKit voice agent with a talkface face, all local: no cloud key, no GPU.

The agent answers what the user types in the room's chat with talkface's offline espeak-ng
voice (EspeakTTS); `AvatarSession` asks the talkface avatar worker to join the room and routes
the agent's speech to it; the worker publishes the talking portrait's video and audio.
See README.md beside this file for the four processes and how to start each.

    LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret \\
        .venv-livekit/bin/python examples/livekit_avatar/agent.py dev
"""
from __future__ import annotations

import os

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli, room_io

from talkface.integrations.livekit import AvatarSession
from talkface.integrations.livekit_tts import EspeakTTS

GREETING = "Hello! I am a talking portrait. Type something in the chat and I will say it back."
server = AgentServer()


def reply_to(text: str) -> str:
    """The agent's 'brain': an echo, so the example needs no language model and no key."""
    return f"You said: {text.strip()}" if text.strip() else "I did not catch that."


async def on_text(session: AgentSession, event: room_io.TextInputEvent) -> None:
    await session.interrupt()               # a new message cuts the current answer short (barge-in)
    session.say(reply_to(event.text))


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    session = AgentSession(tts=EspeakTTS(voice=os.getenv("TALKFACE_VOICE", "en")))
    avatar = AvatarSession(worker_url=os.getenv("TALKFACE_AVATAR_WORKER", "http://127.0.0.1:8089"),
                           portrait=os.getenv("TALKFACE_PORTRAIT", "builtin"))
    await avatar.start(session, room=ctx.room)
    await session.start(agent=Agent(instructions="Repeat what the user types."), room=ctx.room,
                        room_options=room_io.RoomOptions(
                            text_input=room_io.TextInputOptions(text_input_cb=on_text),
                            audio_input=False))   # no speech recogniser: the user types
    session.say(GREETING)


if __name__ == "__main__":
    cli.run_app(server)
