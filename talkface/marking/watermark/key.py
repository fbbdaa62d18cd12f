"""The public key of the pattern: which frequency bins carry the sync and which
carry each coded bit, with their pseudo-random phases, and the tile built
from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkface.marking.watermark.coding import CODED_BITS

# Pattern geometry.  The tile period at the 512 px reference size is 128 px:
# 4 periods across a generated frame still give an autocorrelation peak after
# a 10 % crop or a rescale to 256 px, and 654 frequency bins leave about four
# bins per coded bit (frequency diversity against codec losses) plus a large
# sync pattern whose phase-only correlation does not saturate.
TILE = 128  # px at REF_SIZE
REF_SIZE = 512  # px
# Annulus of frequencies used, in cycles per tile: 0.055 .. 0.17 cycles/px at
# 512 px.  Measured on H.264 CRF 35, the bins below ~0.05 drown in face
# content and those above ~0.19 are quantised away; the middle survives.
BAND_LO = 7.0
BAND_HI = 22.0
N_SYNC_PAIRS = 220  # conjugate-symmetric bin pairs reserved for the sync pattern
SEED = 0x7A1CFACE  # public key of the pattern; changing it breaks compatibility
NOISE_NEIGHBOURS = 9  # noise power of a key bin: averaged over this many nearest key bins
PEAK_CLIP = 2.5  # the tile's rare Gaussian peaks are clipped at this many RMS
SMALLEST_PERIOD_FRACTION = 0.5  # small frames keep a period of at least TILE / 2


@dataclass(frozen=True)
class Key:
    fy: np.ndarray  # (n,) frequency of each half-plane bin, cycles per tile
    fx: np.ndarray
    phase: np.ndarray  # (n,) unit complex pseudo-random phase
    owner: np.ndarray  # (n,) -1 for sync, else index of the coded bit
    sync_idx: np.ndarray
    radius: np.ndarray  # (n,) |f| in cycles per tile
    near: np.ndarray  # (n, NOISE_NEIGHBOURS) nearest key bins of each bin (itself first)


def _band_bins() -> tuple[np.ndarray, np.ndarray]:
    """One bin of each conjugate pair (half plane, fx > 0) in the annulus.

    Bins on the axes are left out: crop borders, letterboxing and row/column
    artefacts of codecs put their energy there."""
    half = TILE // 2
    fys, fxs = [], []
    for fy in range(-half + 1, half):
        for fx in range(1, half):
            if fy != 0 and BAND_LO <= math.hypot(fx, fy) <= BAND_HI:
                fys.append(fy)
                fxs.append(fx)
    return np.array(fys), np.array(fxs)


def make_key() -> Key:
    rng = np.random.default_rng(SEED)
    fy, fx = _band_bins()
    n = fy.size
    order = rng.permutation(n)
    owner = np.empty(n, np.int64)
    owner[order[:N_SYNC_PAIRS]] = -1
    rest = order[N_SYNC_PAIRS:]
    if rest.size < CODED_BITS:
        raise RuntimeError("band too narrow for the payload")
    owner[rest] = np.arange(rest.size) % CODED_BITS
    phase = np.exp(2j * np.pi * rng.random(n))
    sync_idx = np.flatnonzero(owner < 0)
    d2 = (fy[:, None] - fy[None, :]) ** 2 + (fx[:, None] - fx[None, :]) ** 2
    near = np.argsort(d2, axis=1, kind="stable")[:, :NOISE_NEIGHBOURS]
    return Key(fy, fx, phase, owner, sync_idx, np.hypot(fx, fy), near)


KEY = make_key()


def tile(symbols: np.ndarray) -> np.ndarray:
    """The TILE x TILE pattern for +/-1 coded symbols, zero mean, unit RMS."""
    k = KEY
    amp = np.ones(k.fy.size)
    own = k.owner >= 0
    amp[own] = symbols[k.owner[own]]
    spec = np.zeros((TILE, TILE), np.complex128)
    spec[k.fy % TILE, k.fx % TILE] = amp * k.phase
    spec[(-k.fy) % TILE, (-k.fx) % TILE] = amp * np.conj(k.phase)
    t = np.real(np.fft.ifft2(spec))
    t /= t.std()
    # Limit rare peaks (Gaussian tails): single bright/dark specks are what a
    # viewer would notice first.
    t = np.clip(t, -PEAK_CLIP, PEAK_CLIP)
    return (t / t.std()).astype(np.float32)


def period_for(h: int, w: int) -> float:
    """Pattern period (px) for a frame size: TILE at 512 px, proportional to
    the frame size (so a 1024 px render is marked like an upscaled 512 px
    one), but at least TILE / 2 so small frames keep a usable period."""
    return TILE * max(SMALLEST_PERIOD_FRACTION, min(h, w) / REF_SIZE)
