"""A tiny writer of ZipCrypto ("traditional PKWARE") encrypted zips, for test fixtures only.

Python's zipfile reads these archives but cannot write them. Members are stored
(uncompressed); that is all the tests need.
"""

from __future__ import annotations

import struct
import zlib

_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _TABLE.append(_c)


class _Keys:
    def __init__(self, password: bytes) -> None:
        self.k = [0x12345678, 0x23456789, 0x34567890]
        for b in password:
            self.update(b)

    @staticmethod
    def _crc(crc: int, b: int) -> int:
        return (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]

    def update(self, b: int) -> None:
        k0, k1, k2 = self.k
        k0 = self._crc(k0, b)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = self._crc(k2, k1 >> 24)
        self.k = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for p in data:
            t = (self.k[2] | 2) & 0xFFFF
            out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            self.update(p)
        return bytes(out)


def encrypted_zip(members: dict[str, bytes], password: bytes) -> bytes:
    local = bytearray()
    central = bytearray()
    for name, data in members.items():
        crc = zlib.crc32(data) & 0xFFFFFFFF
        header = bytes(range(11)) + bytes([crc >> 24])
        payload = _Keys(password).encrypt(header + data)
        fname = name.encode()
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, 0, 0x21, crc, len(payload), len(data), len(fname), 0)
        local += fname + payload
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            1,
            0,
            0,
            0x21,
            crc,
            len(payload),
            len(data),
            len(fname),
            0,
            0,
            0,
            0,
            0o100644 << 16,
            offset,
        )
        central += fname
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    return bytes(local + central + eocd)
