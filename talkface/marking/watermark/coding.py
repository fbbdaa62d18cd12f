"""Channel coding of the payload: a rate-1/2, K=7 convolutional code with
soft-decision Viterbi decoding, and the closed-form codewords of every user
id (for the maximum-likelihood payload test)."""

from __future__ import annotations

import functools

import numpy as np

from talkface.marking.watermark.payload import MSG_BITS, USER_ID_BITS, Payload

CONV_G = (0o133, 0o171)  # NASA standard K=7 rate-1/2 code
CONV_K = 7
CODED_BITS = 2 * (MSG_BITS + CONV_K - 1)  # 108
N_USER_IDS = 1 << USER_ID_BITS


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 K=7 encoding, terminated with K-1 zeros."""
    state = 0
    out = []
    for b in list(bits) + [0] * (CONV_K - 1):
        state = ((state << 1) | int(b)) & ((1 << CONV_K) - 1)
        for g in CONV_G:
            out.append(bin(state & g).count("1") & 1)
    return np.array(out, np.uint8)


def _viterbi_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ns = 1 << (CONV_K - 1)
    prev = np.zeros((ns, 2), np.int64)  # the two predecessor states of each state
    outs = np.zeros((ns, 2, 2), np.float64)  # +/-1 symbols emitted on those edges
    inp = np.zeros(ns, np.uint8)  # input bit that leads into each state
    for s in range(ns):
        b = s & 1
        inp[s] = b
        for j, hi in enumerate((0, 1)):
            p = (s >> 1) | (hi << (CONV_K - 2))
            prev[s, j] = p
            reg = (p << 1) | b
            for k, g in enumerate(CONV_G):
                outs[s, j, k] = 2.0 * (bin(reg & g).count("1") & 1) - 1.0
    return prev, outs, inp


_VITERBI_TABLES = _viterbi_tables()


def viterbi(soft: np.ndarray, n_bits: int = MSG_BITS) -> np.ndarray:
    """Soft-decision Viterbi; soft > 0 means coded bit 1. Returns n_bits bits."""
    prev, outs, inp = _VITERBI_TABLES
    ns = prev.shape[0]
    metric = np.full(ns, -1e18)
    metric[0] = 0.0
    steps = n_bits + CONV_K - 1
    choice = np.zeros((steps, ns), np.uint8)
    soft = soft.reshape(steps, 2)
    for t in range(steps):
        cand = metric[prev] + outs @ soft[t]  # (ns, 2)
        j = np.argmax(cand, axis=1)
        choice[t] = j
        metric = cand[np.arange(ns), j]
    s = 0  # terminated trellis ends in state 0
    bits = np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = inp[s]
        s = prev[s, choice[t, s]]
    return bits[:n_bits]


def coded_symbols(payload: Payload) -> np.ndarray:
    """The +/-1 coded symbols the pattern carries for a payload."""
    return 2.0 * conv_encode(payload.to_bits()).astype(np.float64) - 1.0


def fwht(a: np.ndarray) -> np.ndarray:
    """Walsh-Hadamard transform along the last axis (length 2^m):
    out[..., u] = sum_w a[..., w] * (-1)^popcount(u & w)."""
    shape = a.shape
    n = shape[-1]
    h = 1
    while h < n:
        a = a.reshape(-1, n // (2 * h), 2, h)
        a = np.stack((a[:, :, 0] + a[:, :, 1], a[:, :, 0] - a[:, :, 1]), axis=2)
        h *= 2
    return a.reshape(shape)


@functools.lru_cache(maxsize=None)
def codeword_map(version: int) -> tuple[np.ndarray, np.ndarray]:
    """The coded bits of every payload of a version, in closed form.

    The CRC and the convolutional code are affine over GF(2), so the coded
    bits of user id u are c(u) = c(0) xor sum_k u_k d_k, with d_k the change
    made by bit k alone.  Returns the +/-1 signs of c(0) and, for each coded
    bit j, the 16-bit word w_j = sum_k d_k[j] 2^k: bit j of c(u) is that of
    c(0) flipped when popcount(u & w_j) is odd.
    """
    c0 = conv_encode(Payload(version, 0).to_bits())
    word = np.zeros(CODED_BITS, np.int64)
    for b in range(USER_ID_BITS):
        word |= (conv_encode(Payload(version, 1 << b).to_bits()) ^ c0).astype(np.int64) << b
    return 2.0 * c0 - 1.0, word


def user_id_scores(soft: np.ndarray, version: int) -> np.ndarray:
    """Correlation of soft coded bits (..., CODED_BITS) with the codeword of
    every user id (..., 65536; index = user id), all at once with one
    Walsh-Hadamard transform."""
    sign0, word = codeword_map(version)
    soft = np.asarray(soft, np.float64)
    f = np.zeros(soft.shape[:-1] + (N_USER_IDS,))
    np.add.at(f, (..., word), soft * sign0)
    return fwht(f)
