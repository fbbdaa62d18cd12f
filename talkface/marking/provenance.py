"""Content Credentials (C2PA) for talkface's MP4 files: a signed manifest that says the
video was created by an algorithm trained on sampled content (IPTC digital source type
trainedAlgorithmicMedia), with talkface as the software agent.

Optional: needs `pip install c2pa-python cryptography`. The signing certificate is the
user's (a PEM chain and key), or a local one that talkface creates on request. A local
certificate is not anchored to any trust list, so C2PA readers report the manifest as
valid but its signer as untrusted: honest for a self-made certificate.
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path

from talkface.errors import ProvenanceError  # noqa: F401  (re-exported: the name stays importable here)

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
LOCAL_CERT_DIR = Path(os.environ.get("TALKFACE_C2PA_DIR", Path.home() / ".config" / "talkface" / "c2pa"))



@dataclass(frozen=True)
class SigningIdentity:
    cert_chain_pem: Path   # end-entity certificate first, then its issuers
    private_key_pem: Path


def require_c2pa():
    """The c2pa module, or a ProvenanceError saying how to install it."""
    try:
        import c2pa  # noqa: F401
    except ImportError:
        raise ProvenanceError("C2PA signing needs the optional packages: pip install c2pa-python cryptography") from None
    return c2pa


def local_identity(directory: Path = LOCAL_CERT_DIR) -> SigningIdentity:
    """A local signing certificate (a small CA and an end-entity certificate, ES256),
    created on first use and reused after."""
    chain, key = directory / "talkface-chain.pem", directory / "talkface-key.pem"
    if chain.is_file() and key.is_file():
        return SigningIdentity(chain, key)
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise ProvenanceError("creating a local certificate needs: pip install cryptography") from None

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talkface (local, self-signed)")])

    def usage(**on) -> x509.KeyUsage:
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                     key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
        flags.update(on)
        return x509.KeyUsage(**flags)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("talkface local CA")).issuer_name(name("talkface local CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee = (x509.CertificateBuilder().subject_name(name("talkface signer")).issuer_name(ca.subject)
          .public_key(ee_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=825))
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(usage(digital_signature=True), critical=True)
          .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ee_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    chain.write_bytes(ee.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(ee_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    key.chmod(0o600)
    return SigningIdentity(chain, key)


def manifest_json(version: str) -> str:
    return json.dumps({
        "claim_generator_info": [{"name": "talkface", "version": version}],
        "title": "talkface generated video",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created",
            "digitalSourceType": DIGITAL_SOURCE_TYPE,
            "softwareAgent": {"name": f"talkface {version}"},
            "description": "Talking-face video synthesised from a still image and an audio clip",
        }]}}],
    })


def sign_mp4(src: Path, dst: Path, identity: SigningIdentity) -> None:
    """Write `dst`: `src` with a signed C2PA manifest embedded."""
    c2pa = require_c2pa()
    from talkface.version import __version__

    try:
        chain = identity.cert_chain_pem.read_bytes()
        key = identity.private_key_pem.read_bytes()
    except OSError as exc:
        raise ProvenanceError(f"cannot read C2PA certificate or key: {exc.strerror}: {exc.filename}") from None
    alg = _algorithm_of(key)
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=alg, sign_cert=chain, private_key=key, ta_url=None))
        with c2pa.Builder(manifest_json(__version__)) as builder, open(src, "rb") as s, open(dst, "w+b") as d:
            builder.sign(signer, "video/mp4", s, d)
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"C2PA signing failed: {str(exc).splitlines()[0]}") from None


def _algorithm_of(key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ProvenanceError("the C2PA private key is not an unencrypted PEM key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: b"es256", 384: b"es384", 521: b"es512"}.get(key.curve.key_size, b"es256")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return b"ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return b"ps256"
    raise ProvenanceError("unsupported C2PA key type (use EC P-256, Ed25519 or RSA)")


@dataclass(frozen=True)
class ManifestReport:
    present: bool
    generator: str | None = None
    digital_source_type: str | None = None
    signer: str | None = None
    trusted: bool = False


def read_manifest(path: Path) -> ManifestReport | None:
    """The C2PA manifest in a file, or None when C2PA support is not installed."""
    try:
        import c2pa
    except ImportError:
        return None
    try:
        reader = c2pa.Reader(str(path))
        data = json.loads(reader.json())
    except Exception:  # no manifest, or a format c2pa does not read: both mean "none here"
        return ManifestReport(present=False)
    active = data.get("manifests", {}).get(data.get("active_manifest", ""), {})
    source_type = None
    for assertion in active.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                source_type = action.get("digitalSourceType", source_type)
    gen = (active.get("claim_generator_info") or [{}])[0]
    untrusted = any(s.get("code") == "signingCredential.untrusted" for s in data.get("validation_status", []))
    return ManifestReport(present=bool(active), generator=f"{gen.get('name', '?')} {gen.get('version', '')}".strip(),
                          digital_source_type=source_type, signer=active.get("signature_info", {}).get("common_name"),
                          trusted=bool(active) and not untrusted)
