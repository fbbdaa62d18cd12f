"""Lip sync: the shipped learned model streams like batch, closes on silence and noise,
opens on speech, keeps its look-ahead and speed; `talkface eval lipsync` runs end to end."""
import json
import time

import numpy as np
import pytest

from talkface.analysis.audio import SAMPLE_RATE, Audio, FeatureExtractor, extract_features
from talkface.lipsync.mouth import AudioFeatures, default_model, predict_track


@pytest.fixture(scope="module")
def model():
    from talkface.lipsync.shipped import load_trained
    from talkface.lipsync.tcn import TemporalConvMouth

    m = load_trained()
    assert m is not None, "talkface/weights/lipsync.npz is missing"
    assert isinstance(default_model(), TemporalConvMouth)
    return m


def _slice(f: AudioFeatures, a: int, b: int) -> AudioFeatures:
    return AudioFeatures(f.log_mel[a:b], f.rms_db[a:b], f.pitch_hz[a:b])


def test_lookahead_bounded(model):
    assert 0 <= model.lookahead_frames <= 8


def test_chunked_stream_equals_batch(model, speech_audio):
    feats = extract_features(speech_audio)
    whole = predict_track(model, feats)
    assert whole.shape == (len(feats), 4)
    rng = np.random.default_rng(0)
    s = model.stream()
    parts, i = [], 0
    while i < len(feats):
        n = int(rng.choice([0, 1, 3, 8, 17, 50]))
        parts.append(s.push(_slice(feats, i, i + n)))
        i += n
    parts.append(s.flush())
    chunked = np.concatenate([p for p in parts if len(p)])
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    # rows never wait for more than the declared look-ahead
    s = model.stream()
    assert len(s.push(_slice(feats, 0, 100))) == 100 - model.lookahead_frames


def test_samples_pushed_in_chunks_equal_batch(model, speech_audio):
    x = speech_audio.samples[: 3 * SAMPLE_RATE]
    whole = predict_track(model, extract_features(Audio(x, SAMPLE_RATE)))
    ex, s, rows = FeatureExtractor(), model.stream(), []
    for a in range(0, len(x), 1234):
        rows.append(s.push(ex.push(x[a:a + 1234])))
    rows += [s.push(ex.flush()), s.flush()]
    np.testing.assert_allclose(np.concatenate([r for r in rows if len(r)]), whole, atol=1e-5)


def test_silence_keeps_mouth_closed(model):
    rows = predict_track(model, extract_features(Audio(np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)))
    assert rows[:, 0].max() < 0.08


def test_steady_background_noise_keeps_mouth_nearly_closed(model):
    rng = np.random.default_rng(1)
    spec = np.fft.rfft(rng.standard_normal(3 * SAMPLE_RATE)) / np.sqrt(np.arange(3 * SAMPLE_RATE // 2 + 1) + 1.0)
    noise = np.fft.irfft(spec).astype(np.float32)
    noise *= 0.01 / noise.std()
    rows = predict_track(model, extract_features(Audio(noise, SAMPLE_RATE)))
    assert np.median(rows[100:, 0]) < 0.15


def test_spoken_sentence_opens_the_mouth(model, speech_audio):
    rows = predict_track(model, extract_features(speech_audio))
    silent = rows[:80, 0]                      # the fixture starts with 1 s of silence
    speaking = rows[120:-120, 0]
    assert speaking.max() > 0.3
    assert speaking.mean() > silent.mean() + 0.1
    # and closes again in between: bilabials, pauses
    assert np.percentile(speaking, 10) < 0.5 * np.percentile(speaking, 90)


def test_cpu_time_under_a_millisecond_per_frame(model, speech_audio):
    x = np.tile(speech_audio.samples, 4)[: 10 * SAMPLE_RATE]
    feats = extract_features(Audio(x, SAMPLE_RATE))
    t0 = time.process_time()   # CPU time: the machine is shared, wall-clock is noise
    s = model.stream()
    for a in range(0, len(feats), 4):        # 40 ms chunks, as the live stream pushes them
        s.push(_slice(feats, a, a + 4))
    s.flush()
    per_frame_ms = (time.process_time() - t0) / len(feats) * 1000
    assert per_frame_ms < 1.0, f"{per_frame_ms:.3f} ms CPU per 10 ms frame"


def test_numpy_network_matches_the_torch_one_it_was_exported_from():
    torch = pytest.importorskip("torch")
    from talkface.lipsync.tcn import TemporalConvMouth
    from talkface.training.lipsync_tcn import TcnSetup, _network, export

    setup = TcnSetup(channels=8, dilations=(1, 2, 4))
    torch.manual_seed(0)
    net = _network(64, setup)
    x = np.random.default_rng(0).standard_normal((1, 50, 64)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x))[0].numpy()
    params = export(net, np.zeros(64, np.float32), np.ones(64, np.float32), setup)
    model = TemporalConvMouth(params)
    got, state = model.layers(x[0, :20], model.initial_state())     # in two pushes: the state carries over
    rest, _ = model.layers(x[0, 20:], state)
    np.testing.assert_allclose(np.concatenate([got, rest]), want, atol=1e-4)


def test_eval_lipsync_end_to_end_on_a_rendered_video(tmp_path, face, speech_audio):
    """A talking video made by talkface itself (face known to track), scored by the CLI."""
    from talkface.cli import main
    from talkface.engine import GenerateOptions, generate
    from talkface.output.video import write_video

    clip = Audio(speech_audio.samples[int(0.8 * SAMPLE_RATE): int(3.3 * SAMPLE_RATE)], SAMPLE_RATE)
    videos = tmp_path / "videos"
    videos.mkdir()
    frames = [f.image[::2, ::2] for f in generate(face, clip, GenerateOptions(seed=2, watermark_id=None))]
    write_video(videos / "synthetic_talker.mp4", frames, clip, fps=25)
    out = tmp_path / "scores.json"
    code = main(["eval", "lipsync", "--videos", str(videos), "--json", str(out), "--plot", str(tmp_path / "plots"),
                 "--cache", str(tmp_path / "cache")])
    assert code == 0
    scores = json.loads(out.read_text())
    row = scores["videos"][0]
    assert row["name"] == "synthetic_talker"
    for key in ("r_open", "lag", "r_width", "closed_agreement", "baseline_r_open", "ridge_r_open", "rendered_r_open"):
        assert key in row and key in scores["mean"]
    assert abs(row["lag"]) <= 2
    # the video's mouth was driven by this very model: the tracked opening must follow it
    assert row["r_open"] > 0.6
    assert (tmp_path / "plots" / "synthetic_talker.png").is_file()
    assert list((tmp_path / "cache").glob("synthetic_talker-*.npz"))


def test_eval_lipsync_shared_video_held_out(tmp_path):
    from conftest import shared_path

    from talkface.evaluation.lipsync_eval import evaluate

    video = shared_path("videos", "video_man_suit_frontal_01.mp4")
    out = evaluate([video], log=lambda s: None, cache=str(tmp_path))
    row = out["videos"][0]
    assert row["model"].startswith("fold")   # scored by a model that never saw this video
    assert np.isfinite(row["r_open"]) and np.isfinite(row["baseline_r_open"])


def _spoken(text: str, voice: str = "en"):
    from talkface.analysis.audio import checked_audio, frame_time
    from talkface.analysis.speech import speak

    s = speak(text, voice=voice, rate_wpm=150)
    return checked_audio(s.samples, s.sample_rate), s.phonemes, frame_time


@pytest.mark.parametrize("voice,text", [("en", "Mama made a map, Bob paid a bum baby."),
                                        ("de", "Mama und Papa baden im Meer.")])
def test_bilabials_close_the_lips(model, voice, text):
    audio, phonemes, frame_time = _spoken(text, voice)
    rows = predict_track(model, extract_features(audio))
    t = frame_time(np.arange(len(rows)))
    closed = [rows[(t >= p.start - 0.03) & (t <= p.end + 0.03), 0].min() for p in phonemes if p.phoneme[:1] in "pbm"]
    opened = [rows[(t >= p.start) & (t <= p.end), 0].max() for p in phonemes if p.phoneme[:1] in "aAeEoO"]
    assert np.mean(closed) < 0.5 * np.mean(opened)


@pytest.mark.xfail(strict=False, reason="in a sentence of one vowel colour the network's rounding hardly differs (rig "
                   "lip_round 0.14 on /u:/ sentences vs 0.15 on /i:/, with the rounding map): its features carry rounding "
                   "weakly and fire on labials (w, m, b); needs a network trained for it (see notes/lips.md)")
def test_rounded_vowels_round_and_spread_vowels_spread(model):
    out = {}
    for key, text in (("round", "Who knew you do too, woo, soon, moon."), ("spread", "See me eat cheese, tea, key, sit.")):
        audio, _, _ = _spoken(text)
        rows = predict_track(model, extract_features(audio))
        speaking = rows[rows[:, 0] > 0.1]
        out[key] = speaking[:, 1:3].mean(axis=0)   # (lip_spread, lip_round)
    assert out["round"][1] > out["spread"][1] + 0.05
    assert out["spread"][0] > out["round"][0] + 0.05


ROUNDING_SENTENCES = {"en": ("Who would go to the moon? She will see it soon.",
                             "Two blue shoes, three green keys, and a cool new boat.",
                             "We should eat the food at noon, not too sweet."),
                      "de": ("Die Kuh und der Hund sind gut, aber die Biene ist klein.", "Guten Morgen, wie geht es dir heute?"),
                      "fr": ("Où sont les roues du bateau bleu? Ici, il y a du vin.",)}


def test_rig_rounds_rounded_vowels_more_than_spread_ones(model):
    """In mixed speech (en, de, fr), the rig's lip_round (what the render gets: the rounding head
    through its quantile map, plus the predicted narrowing) is larger on /u o w y/ than on /i e/:
    0.42 against 0.15. Before the map it was 0.22 against 0.13: every mouth a little rounded, no
    rounded vowel visibly so. Single sentences vary (English alone: 0.31 against 0.27)."""
    from talkface.analysis.audio import frame_time

    means = {"round": [], "spread": []}
    for voice, texts in ROUNDING_SENTENCES.items():
        for text in texts:
            audio, phonemes, _ = _spoken(text, voice)
            rows = predict_track(model, extract_features(audio))
            t = frame_time(np.arange(len(rows)))
            for p in phonemes:
                kind = "round" if p.phoneme[:1] in "uoOUyYw" else "spread" if p.phoneme[:1] in "iIeE" else None
                span = rows[(t >= p.start) & (t <= p.end), 2]
                if kind and len(span):
                    means[kind].append(span.mean())
    assert np.mean(means["round"]) > np.mean(means["spread"]) + 0.15


def test_sung_long_vowel_holds_the_mouth_open(model):
    """3 s of a sustained 'aah' (glottal pulses through vowel formants) between silences."""
    from scipy.signal import lfilter

    n = 3 * SAMPLE_RATE
    x = np.zeros(n)
    x[:: SAMPLE_RATE // 220] = 1.0
    for f, bw in ((750, 90), (1200, 110), (2600, 160)):
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        x = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE), r * r], x)
    x = 0.3 * x / np.abs(x).max() * np.minimum(1.0, np.arange(n) / 800)
    half = np.zeros(SAMPLE_RATE // 2)
    rows = predict_track(model, extract_features(Audio(np.concatenate([half, x, half]).astype(np.float32), SAMPLE_RATE)))
    held = rows[75:320, 0]   # 0.75 s .. 3.2 s
    assert held.min() > 0.2
    assert rows[:40, 0].max() < 0.08  # silence before


def test_ensemble_of_mlps_is_the_mean_of_its_members():
    from talkface.lipsync.model import MLP, stack_members

    def member(seed):
        r = np.random.default_rng(seed)
        return {"x_mean": np.zeros(5, np.float32), "x_std": np.ones(5, np.float32), "n_layers": np.array(2),
                "W0": r.standard_normal((5, 3)), "b0": r.standard_normal(3),
                "W1": r.standard_normal((3, 4)), "b1": r.standard_normal(4)}

    a, b = member(1), member(2)
    x = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    np.testing.assert_allclose(MLP(stack_members([a, b]))(x), (MLP(a)(x) + MLP(b)(x)) / 2, atol=1e-5)


def test_shipped_weights_stay_small():
    from talkface.lipsync.model import WEIGHTS

    assert WEIGHTS.stat().st_size < 3_000_000


def test_quiet_closed_measures_how_far_silence_means_a_shut_mouth():
    from talkface.evaluation.lipsync_eval import quiet_closed

    rng = np.random.default_rng(0)
    energy = rng.normal(size=400)
    assert quiet_closed(energy + 0.01 * rng.normal(size=400), energy) > 0.9   # shut exactly when quiet
    assert 0.1 < quiet_closed(rng.normal(size=400), energy) < 0.4             # unrelated: chance, 0.25
    assert quiet_closed(-energy, energy) == 0.0                               # open when quiet


def test_bilabial_eval_sentences_are_held_out_from_the_training_corpus():
    import re

    from talkface.evaluation.bilabial import SENTENCES
    from talkface.training.lipsync import CORPUS

    def sentences(text):
        return {s.strip().lower() for s in re.split(r"[.!?。]", text) if len(s.strip()) > 8}

    trained = set().union(*(sentences(t) for texts in CORPUS.values() for t in texts))
    for lang, text in SENTENCES.items():
        assert not sentences(text) & trained, lang
        assert sum(text.lower().count(c) for c in "pbmпбм") >= 6, lang   # enough bilabials to count


def test_grid_names_give_their_sentence_and_forced_alignment_times_its_bilabials():
    from talkface.evaluation.bilabial import aligned_bilabials, grid_sentence

    assert grid_sentence("video_m_grid-sbwe5n_20") == "set blue with e five now"
    assert grid_sentence("video_f_grid-lwbsza_23") == "lay white by s zero again"
    assert grid_sentence("vrt_2") is None
    pytest.importorskip("pocketsphinx")
    from talkface.analysis.audio import resample
    from talkface.analysis.speech import speak

    spoken = speak("bob bought a big map", voice="en-us+f2", rate_wpm=140)   # a voice the recogniser follows
    pad = np.zeros(SAMPLE_RATE // 4, np.float32)
    x = np.concatenate([pad, resample(spoken.samples, spoken.sample_rate, SAMPLE_RATE), pad]) * 0.5
    assert aligned_bilabials(x, "bob bought a big map a big map") is None   # more words than said: no alignment
    found = [(a - 0.25, b - 0.25, ph) for a, b, ph in aligned_bilabials(x, "bob bought a big map")]
    said = [(p.start, p.end) for p in spoken.phonemes if p.phoneme[:1] in "pbm"]
    assert len(found) == len(said) == 6
    assert all(a < s_end + 0.02 and b > s_start - 0.02 for (a, b, _), (s_start, s_end) in zip(found, said))


def test_closure_gate_shuts_the_opening_and_presses_the_lips():
    from talkface.lipsync.tcn import mouth_rows

    raw = np.array([[0.2, 0.0, 0.1, 0.0, -6.0], [0.2, 0.0, 0.1, 0.0, 6.0]], np.float32)
    rows = mouth_rows(raw)
    assert rows.shape == (2, 4)
    assert rows[0, 0] == pytest.approx(0.2) and rows[0, 3] == pytest.approx(0.0)   # unlikely closure: untouched
    assert rows[1, 0] == 0.0 and rows[1, 3] == 1.0                                # likely closure: shut, pressed
    np.testing.assert_array_equal(mouth_rows(raw[:, :4]), raw[:, :4])            # no closure head: as is


def test_closure_head_fitted_on_frozen_features_finds_the_closures():
    pytest.importorskip("torch")
    from talkface.lipsync.tcn import TemporalConvMouth
    from talkface.training.lipsync_heads import fit_heads
    from talkface.training.lipsync_tcn import Sequence, TcnSetup, _network, export

    rng = np.random.default_rng(0)
    setup = TcnSetup(channels=16, dilations=(1, 2, 4))   # reaches back past the 8-frame look-ahead
    params = export(_network(64, setup), np.zeros(64, np.float32), np.ones(64, np.float32), setup)

    def seq(n):
        closed = (rng.random(n) < 0.2).astype(np.float32)
        x = (rng.standard_normal((n, 64)) + 1.5 * closed[:, None]).astype(np.float32)   # a closure is heard
        y = np.full((n, 5), np.nan, np.float32)
        y[:, 2], y[:, 4] = 0.5 * (x[:, 1] > 0), closed
        return Sequence(x, y, np.ones(n, np.float32))

    fitted = fit_heads(params, [seq(3000)], [seq(3000)])
    model = TemporalConvMouth(fitted)
    test = seq(2000)
    padded = np.concatenate([test.x, np.zeros((model.lookahead_frames, 64), np.float32)])
    logit = model.layers(padded, model.initial_state())[0][model.lookahead_frames:, 4]
    closed = test.y[:, 4] == 1
    assert np.mean(logit[closed] > np.median(logit[~closed])) > 0.75   # chance: 0.5


def test_a_closure_shorter_than_a_frame_is_shown_shut_and_no_row_falls_between_frames():
    from talkface.lipsync.mouth import SHUT_JAW, frame_row, frame_span

    spans = [frame_span(4 * i, 25.0) for i in range(1, 50)]   # 25 fps: a frame every 4 feature rows
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in spans])
    assert np.array_equal(covered, np.arange(covered[0], covered[-1] + 1))   # each row in exactly one frame
    rows = np.tile(np.array([0.3, 0.1, 0.0, 0.0], np.float32), (4, 1))
    assert frame_row(rows)[0] == pytest.approx(0.3)
    rows[2] = (0.0, 0.0, 0.0, 1.0)     # one 10 ms row with the lips shut (a short /p/)
    assert frame_row(rows)[0] < SHUT_JAW and frame_row(rows)[3] == 1.0


def test_rounding_map_takes_the_hedged_head_to_the_labels_distribution(model):
    """The rounding map (`talkface train lipsync --round-map-only`) on a few synthetic clips: rising,
    and the head's output mapped through it is spread like the rounding labels, not hedged."""
    from talkface.training.lipsync import _rows, synthetic_set
    from talkface.training.lipsync_heads import hidden, rounding_map
    from talkface.training.lipsync_tcn import sequence

    seqs = [sequence(_rows(f), y) for f, y in synthetic_set(12, 3, log=lambda s: None)]
    qmap = rounding_map(model.params, seqs)
    assert np.all(np.diff(qmap["q_round_pred"]) > 0)
    assert 0.0 <= qmap["q_round_real"].min() and qmap["q_round_real"].max() <= 1.0
    head = np.concatenate([(hidden(model, s.x) @ model.w_out[:, 2] + model.b_out[2])[np.isfinite(s.y[:, 2])] for s in seqs])
    labels = np.concatenate([s.y[np.isfinite(s.y[:, 2]), 2] for s in seqs])
    mapped = np.interp(head, qmap["q_round_pred"], qmap["q_round_real"])
    assert np.std(mapped) > 2 * np.std(head)
    assert abs(np.mean(mapped > 0.3) - np.mean(labels > 0.3)) < 0.05
