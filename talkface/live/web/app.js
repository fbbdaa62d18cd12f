// talkface live: one WebSocket carries JPEG frames + PCM audio from the server, and the
// microphone / file audio, text and control changes to it. Each frame's audio is scheduled on
// the Web Audio clock and the frame is drawn when that audio starts playing, so lips and sound
// stay together whatever the network does.
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let token = params.get("token") || sessionStorage.getItem("talkface-token") || "";
if (params.has("token")) {   // keep the token for this tab, but not in the address bar or its history
  sessionStorage.setItem("talkface-token", token);
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : "") + location.hash);
}

const JITTER_S = 0.06;            // playout delay that absorbs network jitter
const UNDERRUN_S = 0.01;          // a frame due sooner than this (or late) restarts the buffer at JITTER_S
const MAX_BUFFER_S = 0.15;        // a burst beyond this drops frames to stay live (trimming removes smaller excess)
const TRIM_WINDOW_S = 0.5;        // the buffer's minimum over this much audio is what jitter really needed
const TRIM_MARGIN_S = 0.015;      // excess over JITTER_S tolerated before trimming
const TRIM_FRACTION = { idle: 0.5, speech: 0.2 };   // most of one frame's audio trimmed (silence: more)
const FADE_S = 0.003;             // fade-in where trimmed audio resumes (no click)

// The playout buffer, on any clock (the Web Audio clock here; a test drives it with its own).
// Every frame's audio follows the previous one without a gap. After a stall, the late frame
// restarts the buffer at JITTER_S and the server's catch-up burst piles up behind it: without
// trimming, that excess stays for the rest of the session (each stall adds to it). So when the
// buffer has stayed above JITTER_S for TRIM_WINDOW_S, the excess is trimmed from the start of
// the next frames' audio, a small part of each, until the buffer is back at JITTER_S.
class Playout {
  constructor(target = JITTER_S) { this.target = target; this.reset(); }
  reset() { this.head = 0; this.window = []; this.debt = 0; }
  // now: clock time of the frame's arrival (s); dur: its audio (s). Returns null (drop the
  // frame) or {at, skip, lead}: play from `skip` s into its audio at clock time `at`, which
  // is `lead` s after arrival (the buffer figure the page reports).
  plan(now, dur, speech) {
    if (this.head < now + UNDERRUN_S) { this.head = now + this.target; this.window = []; this.debt = 0; }
    if (this.head > now + MAX_BUFFER_S) return null;
    const lead = this.head - now;
    this.window.push([lead, dur]);
    let span = this.window.reduce((a, w) => a + w[1], 0);
    if (span >= TRIM_WINDOW_S) {
      const excess = Math.min(...this.window.map((w) => w[0])) - this.target;
      if (excess > TRIM_MARGIN_S) { this.debt = excess; this.window = []; }
      while (this.window.length && span - this.window[0][1] >= TRIM_WINDOW_S) span -= this.window.shift()[1];
    }
    const skip = Math.min(this.debt, dur * (speech ? TRIM_FRACTION.speech : TRIM_FRACTION.idle));
    this.debt -= skip;
    const at = this.head;
    this.head += dur - skip;
    return { at, skip, lead };
  }
}
const stats = (window.talkface = {
  received: 0, shown: 0, speechFrames: 0, distinct: 0, dropped: 0, fps: 0, errors: [], session: null,
  connected: false, clock: "none", shownAt: [], transitMs: [], bufferMs: [], trimmedMs: 0, Playout,
});
const canvas = $("view");
const g2d = canvas.getContext("2d");
let ws = null, audioCtx = null, outGain = null, session = null;
const playout = new Playout();
let pending = [];                  // decoded frames waiting for their time: {bmp, at, index, key, flags}
let mic = null, lastKey = null;

function status(text) { $("status").textContent = text; }
function setLive(on) { $("speech").disabled = $("controls").disabled = !on; stats.connected = on; }
function showError(text) { $("error").textContent = text || ""; if (text) stats.errors.push(text); }
function authHeaders() { return token ? { Authorization: "Bearer " + token } : {}; }
function audioRunning() { return audioCtx && audioCtx.state === "running"; }
function clockNow() { return audioRunning() ? audioCtx.currentTime : performance.now() / 1000; }

async function detail(response) {
  try { const j = await response.json(); return j.detail || JSON.stringify(j); } catch (e) { return response.statusText; }
}

async function start() {
  showError("");
  if (ws) { ws.onclose = null; ws.close(); ws = null; }
  setLive(false);
  session = stats.session = null;
  if (!audioCtx) {
    audioCtx = new AudioContext();
    outGain = audioCtx.createGain();
    outGain.connect(audioCtx.destination);
  }
  try { await audioCtx.resume(); } catch (e) { /* no audio device: frames still play on the page clock */ }
  let pid = "builtin";
  if (document.querySelector("input[name=portrait]:checked").value === "upload") {
    const file = $("image").files[0];
    if (!file) { showError("choose an image first"); return; }
    status("analysing the portrait…");
    const fd = new FormData();
    fd.append("image", file);
    const r = await fetch("/v1/portraits", { method: "POST", body: fd, headers: authHeaders() });
    if (!r.ok) { showError("portrait: " + (await detail(r)) + " (the session is stopped; choose another image and press Start)"); status("not connected"); return; }
    pid = (await r.json()).id;
  }
  const url = new URL("/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("portrait", pid);
  if (token) url.searchParams.set("token", token);
  status("connecting…");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onmessage = onMessage;
  ws.onclose = (e) => {
    setLive(false);
    status("disconnected" + (e.code !== 1000 && e.code !== 1005 ? ` (${e.code})` : ""));
    if (e.reason) showError(e.reason);
  };
}

function onMessage(ev) {
  if (typeof ev.data === "string") {
    const m = JSON.parse(ev.data);
    if (m.type === "ready") {
      session = stats.session = m;
      playout.reset();
      setLive(true);
      status(`live · ${m.size}×${m.size} · ${m.fps} fps`);
      sendControls();
    } else if (m.type === "error") {
      showError(m.message);
    }
    return;
  }
  const dv = new DataView(ev.data);
  if (dv.getUint32(0, true) !== 0x31464654) return;   // "TFF1"
  const index = dv.getUint32(4, true);
  const sent = dv.getFloat64(16, true);
  const flags = dv.getUint8(24);
  const jlen = dv.getUint32(28, true), plen = dv.getUint32(32, true);
  const jpeg = new Uint8Array(ev.data, 36, jlen);
  const pcm = new Int16Array(ev.data.slice(36 + jlen, 36 + jlen + plen));
  stats.received++;
  const transit = Date.now() - sent * 1000;   // same clock only when browser and server share a machine
  stats.transitMs.push(transit);
  if (stats.transitMs.length > 250) stats.transitMs.shift();
  const at = schedule(pcm, flags & 1);
  if (at === null) return;
  if (jlen === 0) {   // the server skipped this picture to keep up: keep showing the previous one
    pending.push({ bmp: null, at, index, key: lastKey, flags });
    return;
  }
  let key = jlen;
  for (let i = 0; i < jlen; i += 61) key = (key * 31 + jpeg[i]) >>> 0;
  createImageBitmap(new Blob([jpeg], { type: "image/jpeg" })).then((bmp) => {
    pending.push({ bmp, at, index, key, flags });
    pending.sort((a, b) => a.index - b.index);
  });
}

function schedule(pcm, speech) {
  if (!audioRunning()) { stats.clock = "page"; return clockNow(); }
  stats.clock = "audio";
  const rate = session.audio_rate;
  const now = audioCtx.currentTime;
  const plan = playout.plan(now, pcm.length / rate, speech);
  if (plan === null) { stats.dropped++; return null; }
  const first = Math.round(plan.skip * rate);
  if (pcm.length > first) {
    const buf = audioCtx.createBuffer(1, pcm.length - first, rate);
    const ch = buf.getChannelData(0);
    const fade = first ? Math.round(FADE_S * rate) : 0;
    for (let i = 0; i < ch.length; i++) ch[i] = (pcm[first + i] / 32768) * (i < fade ? i / fade : 1);
    const src = audioCtx.createBufferSource();
    src.buffer = buf;
    src.connect(outGain);
    src.start(plan.at);
  }
  stats.trimmedMs += plan.skip * 1000;
  stats.bufferMs.push(plan.lead * 1000);
  if (stats.bufferMs.length > 500) stats.bufferMs.shift();
  return plan.at;
}

function tick() {
  const now = clockNow();
  let show = null;
  while (pending.length && pending[0].at <= now) {
    if (show && show.bmp) show.bmp.close();
    show = pending.shift();
  }
  if (!show) return;
  if (show.bmp) {
    g2d.drawImage(show.bmp, 0, 0, canvas.width, canvas.height);
    show.bmp.close();
  }
  stats.shown++;
  if (show.flags & 1) stats.speechFrames++;
  if (show.key !== lastKey) stats.distinct++;
  lastKey = show.key;
  const t = performance.now();
  stats.shownAt.push(t);
  while (stats.shownAt.length && stats.shownAt[0] < t - 2000) stats.shownAt.shift();
  stats.fps = stats.shownAt.length / 2;
  $("speaking").textContent = show.flags & 1 ? "speaking" : "idle";
}
// draw on every display refresh; a timer keeps frames coming where the page is not painted (background tab, headless)
function loop() { tick(); requestAnimationFrame(loop); }
requestAnimationFrame(loop);
setInterval(tick, 12);
setInterval(() => {
  $("fps").textContent = stats.fps.toFixed(1);
  $("latency").textContent = audioRunning() && playout.head ? `buffer ${Math.max(0, (playout.head - audioCtx.currentTime) * 1000).toFixed(0)} ms` : "page clock";
}, 500);

function send(obj) {
  if (ws && ws.readyState === 1) { ws.send(JSON.stringify(obj)); return true; }
  return false;
}

function toInt16(f32) {
  const out = new Int16Array(f32.length);
  for (let i = 0; i < f32.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(f32[i] * 32767)));
  return out;
}

async function sendAudioFile(file) {
  showError("");
  if (!file || !ws) return;
  let decoded;
  try { decoded = await audioCtx.decodeAudioData(await file.arrayBuffer()); }
  catch (e) { showError("cannot decode this audio file in the browser"); return; }
  if (decoded.duration > session.max_seconds) { showError(`audio is longer than the ${session.max_seconds} s limit`); return; }
  const n = decoded.length, mono = new Float32Array(n);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const ch = decoded.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += ch[i] / decoded.numberOfChannels;
  }
  send({ type: "interrupt" });
  send({ type: "audio_format", rate: decoded.sampleRate });
  const step = Math.round(decoded.sampleRate * 0.1);
  for (let i = 0; i < n; i += step) ws.send(toInt16(mono.subarray(i, i + step)).buffer);
  send({ type: "end_of_speech" });
}

async function toggleMic() {
  if (mic) {
    mic.tracks.forEach((t) => t.stop());
    mic.node.disconnect();
    mic = null;
    send({ type: "end_of_speech" });
    $("mic").classList.remove("on");
    outGain.gain.value = 1;
    return;
  }
  try {
    const media = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 } });
    const source = audioCtx.createMediaStreamSource(media);
    const node = audioCtx.createScriptProcessor(1024, 1, 1);
    const sink = audioCtx.createGain();
    sink.gain.value = 0;
    send({ type: "audio_format", rate: audioCtx.sampleRate });
    node.onaudioprocess = (e) => { if (ws && ws.readyState === 1) ws.send(toInt16(e.inputBuffer.getChannelData(0)).buffer); };
    source.connect(node);
    node.connect(sink);
    sink.connect(audioCtx.destination);
    mic = { tracks: media.getTracks(), node };
    $("mic").classList.add("on");
    outGain.gain.value = $("hear").checked ? 1 : 0;
  } catch (e) {
    showError("microphone: " + e.message);
  }
}

let controlsTimer = null;
function sendControls() {
  clearTimeout(controlsTimer);
  controlsTimer = setTimeout(() => {
    const v = (id) => parseFloat($(id).value);
    send({
      type: "controls", emotion: $("emotion").value, emotion_strength: v("emotion_strength"),
      motion_scale: v("motion_scale"), head_distance: v("head_distance"),
      gaze: $("gaze_free").checked ? null : `${v("gaze_yaw")},${v("gaze_pitch")}`,
      head_pose: `${v("head_yaw")},${v("head_pitch")},${v("head_roll")}`,
    });
  }, 60);
}
document.querySelectorAll("#controls input, #controls select").forEach((el) => {
  const out = el.parentElement.querySelector("output");
  const show = () => { if (out) out.textContent = el.value; };
  show();
  el.addEventListener("input", () => {
    if ((el.id === "gaze_yaw" || el.id === "gaze_pitch") && $("gaze_free").checked) $("gaze_free").checked = false;
    show(); sendControls();
  });
});

async function download() {
  if (!session) return;
  const r = await fetch(`/v1/sessions/${session.session}/recording.mp4`, { headers: authHeaders() });
  if (!r.ok) { showError("download: " + (await detail(r))); return; }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = "talkface-session.mp4";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

$("start").addEventListener("click", start);
$("image").addEventListener("change", () => { if ($("image").files.length) $("portrait_upload").checked = true; });
$("token").value = token;
$("token").addEventListener("change", () => { token = $("token").value.trim(); sessionStorage.setItem("talkface-token", token); });
$("say").addEventListener("click", () => {
  showError("");
  if (!send({ type: "say", text: $("text").value, voice: $("voice").value })) showError("not connected: press Start first");
});
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter") $("say").click(); });
$("audio").addEventListener("change", (e) => sendAudioFile(e.target.files[0]));
$("mic").addEventListener("click", toggleMic);
$("hear").addEventListener("change", () => { if (mic) outGain.gain.value = $("hear").checked ? 1 : 0; });
$("stop").addEventListener("click", () => send({ type: "interrupt" }));
$("download").addEventListener("click", download);
