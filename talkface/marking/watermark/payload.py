"""What the watermark says: the 48-bit message (tag, version, user id, CRC-16)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkface.errors import InputError

# 1: the tile carrier alone; 2: the tile plus the presence carrier
# (presence.py).  Detection tests every version up to this one, so files of
# format 1 still verify.
FORMAT_VERSION = 2
TAG = 0x54  # 'T' for talkface: 8 bits that a random decode must also hit
TAG_BITS = 8
VERSION_BITS = 8
USER_ID_BITS = 16
MAX_USER_ID = (1 << USER_ID_BITS) - 1
MAX_VERSION = (1 << VERSION_BITS) - 1
DATA_BITS = TAG_BITS + VERSION_BITS + USER_ID_BITS  # 32
CRC_BITS = 16
MSG_BITS = DATA_BITS + CRC_BITS
_CRC_POLY = 0x1021  # CRC-16/CCITT-FALSE
_CRC_INIT = 0xFFFF


def crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT-FALSE over a bit array (MSB first)."""
    crc = _CRC_INIT
    for b in bits:
        top = ((crc >> 15) & 1) ^ int(b)
        crc = (crc << 1) & 0xFFFF
        if top:
            crc ^= _CRC_POLY
    return crc


def int_to_bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def bits_to_int(bits: np.ndarray) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


@dataclass(frozen=True)
class Payload:
    """What the watermark says: talkface made this, with which version, for whom."""

    version: int  # watermark format version, small int (0..255); talkface writes FORMAT_VERSION
    user_id: int = 0  # 0..65535, set with --watermark-id

    def __post_init__(self) -> None:
        if not 0 <= int(self.version) <= MAX_VERSION:
            raise ValueError(f"version must be in 0..{MAX_VERSION}")
        if (isinstance(self.user_id, bool) or not isinstance(self.user_id, (int, np.integer))
                or not 0 <= self.user_id <= MAX_USER_ID):
            raise InputError(f"watermark id must be a whole number between 0 and {MAX_USER_ID}, got {self.user_id!r}")

    @classmethod
    def written(cls, user_id: int = 0) -> "Payload":
        """The payload talkface writes into its output: FORMAT_VERSION, the one
        version range the payload test searches (a weak mark of any other
        version is only found by the sync path)."""
        return cls(version=FORMAT_VERSION, user_id=user_id)

    def to_bits(self) -> np.ndarray:
        """48 bits (uint8 0/1): tag, version, user_id, CRC-16 of the first 32."""
        data = (int_to_bits(TAG, TAG_BITS) + int_to_bits(self.version, VERSION_BITS)
                + int_to_bits(self.user_id, USER_ID_BITS))
        crc = crc16(np.array(data, np.uint8))
        return np.array(data + int_to_bits(crc, CRC_BITS), np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "Payload | None":
        """Inverse of ``to_bits``; None unless the tag and the CRC both check."""
        bits = np.asarray(bits).astype(np.uint8).ravel()
        if bits.size != MSG_BITS:
            return None
        if crc16(bits[:DATA_BITS]) != bits_to_int(bits[DATA_BITS:]):
            return None
        if bits_to_int(bits[:TAG_BITS]) != TAG:
            return None
        v0 = TAG_BITS
        u0 = v0 + VERSION_BITS
        return cls(version=bits_to_int(bits[v0:u0]), user_id=bits_to_int(bits[u0:DATA_BITS]))
