"""Provenance beyond the watermark: container tag, C2PA manifest, visible label."""
import numpy as np
import pytest

from talkface.analysis.audio import SAMPLE_RATE, Audio
from talkface.output.video import Mp4Writer, draw_label


def _write_clip(path, c2pa=None):
    rng = np.random.default_rng(0)
    audio = Audio(rng.normal(0, 0.05, SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    with Mp4Writer(path, 128, 25, audio, c2pa=c2pa) as w:
        for i in range(25):
            w.write(np.full((128, 128, 3), 40 + i * 4, np.uint8))
    return path


def test_container_says_ai_generated(tmp_path):
    import av

    out = _write_clip(tmp_path / "tag.mp4")
    with av.open(str(out)) as c:
        assert "AI-generated" in c.metadata["comment"] and "talkface" in c.metadata["comment"]


def test_c2pa_manifest_signed_with_local_certificate(tmp_path, monkeypatch):
    pytest.importorskip("c2pa", reason="c2pa-python not installed")
    from talkface.marking.provenance import DIGITAL_SOURCE_TYPE, local_identity, read_manifest

    identity = local_identity(tmp_path / "certs")
    assert identity.cert_chain_pem.read_text().count("BEGIN CERTIFICATE") == 2
    out = _write_clip(tmp_path / "signed.mp4", c2pa=identity)
    report = read_manifest(out)
    assert report.present and report.digital_source_type == DIGITAL_SOURCE_TYPE
    assert report.generator.startswith("talkface") and report.signer == "talkface signer"
    assert not report.trusted  # a self-made certificate is honestly reported as untrusted
    assert not read_manifest(_write_clip(tmp_path / "plain.mp4")).present
    assert not list(tmp_path.glob(".signed.*")), "temporary files left behind"


def test_bad_c2pa_key_fails_cleanly(tmp_path):
    pytest.importorskip("c2pa", reason="c2pa-python not installed")
    from talkface.marking.provenance import ProvenanceError, SigningIdentity

    bad = SigningIdentity(tmp_path / "chain.pem", tmp_path / "key.pem")
    bad.cert_chain_pem.write_text("not a certificate")
    bad.private_key_pem.write_text("not a key")
    with pytest.raises(ProvenanceError):
        _write_clip(tmp_path / "x.mp4", c2pa=bad)
    assert not (tmp_path / "x.mp4").exists() and not list(tmp_path.glob(".x.*"))


def test_visible_label_is_drawn_in_the_corner():
    img = np.full((256, 256, 3), 200, np.uint8)
    out = draw_label(img, "AI-generated")
    changed = np.abs(out.astype(int) - img).sum(axis=-1) > 0
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() > 180 and xs.min() > 100  # bottom-right only
