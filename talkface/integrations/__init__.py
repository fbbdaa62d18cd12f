"""Voice-agent integrations. They run in the agent's own process and environment, and talk to a
`talkface serve` process over its `WS /v1/live` protocol, so they import neither mediapipe nor
OpenCV nor the engine (docs/pipecat.md explains why it is two processes)."""
