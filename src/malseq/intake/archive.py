"""Bounded, in-memory reading of hostile archives.

Nothing is ever written to disk: members are read into memory under the limits in
`Limits`, and every member that is not a plain file with a safe relative path is
skipped and recorded. Formats are recognised by content, never by file name.
"""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import Protocol

from malseq._deadline import Deadline
from malseq.errors import (
    ArchiveFormatError,
    ArchiveLimitError,
    ArchivePasswordError,
    CorruptArchiveError,
)
from malseq.intake.limits import Limits
from malseq.intake.package import SkippedMember

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Member:
    path: str
    data: bytes


@dataclass(frozen=True)
class ArchiveContents:
    format: str
    members: tuple[Member, ...]
    skipped: tuple[SkippedMember, ...]


def sniff_format(data: bytes) -> str | None:
    """The archive format of `data` from its magic bytes, or None."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:3] == b"BZh":
        return "bzip2"
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if len(data) >= 263 and data[257:262] == b"ustar":
        return "tar"
    if len(data) >= 512 and _looks_like_v7_tar(data[:512]):
        return "tar"
    return None


def _looks_like_v7_tar(header: bytes) -> bool:
    # Old tar headers have no magic; the checksum field is the only real signature.
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
    return stored == computed


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _ZlibAdapter:
    """zlib's decompressobj with the bz2/lzma `decompress(data, max_length)` shape."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        buf = self._pending + data if self._pending else data
        out = self._d.decompress(buf, max_length if max_length > 0 else 0)
        self._pending = self._d.unconsumed_tail
        return out

    @property
    def needs_input(self) -> bool:
        return not self._pending


def _bounded_decompress(data: bytes, fmt: str, limits: Limits, deadline: Deadline) -> bytes:
    """Decompress one gzip/bzip2/xz stream, refusing to produce more than the limits allow."""
    dec: _Decompressor
    if fmt == "gzip":
        dec = _ZlibAdapter()
    elif fmt == "bzip2":
        dec = bz2.BZ2Decompressor()
    else:
        dec = lzma.LZMADecompressor()
    out = io.BytesIO()
    produced = 0
    pos = 0
    try:
        while True:
            deadline.check(f"decompressing {fmt}")
            feed = b""
            if _needs_input(dec) and pos < len(data):
                feed = data[pos : pos + _CHUNK]
                pos += len(feed)
            chunk = dec.decompress(feed, _CHUNK)
            produced += len(chunk)
            out.write(chunk)
            _check_size_and_ratio(produced, len(data), limits, f"{fmt} stream")
            if dec.eof:
                break
            if not chunk and pos >= len(data) and _needs_input(dec):
                raise CorruptArchiveError(
                    f"{fmt} stream is truncated: it ends before its end marker",
                    hint="the download may be incomplete; fetch the archive again",
                )
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise CorruptArchiveError(f"{fmt} stream is corrupt: {exc}") from exc
    return out.getvalue()


def _needs_input(dec: _Decompressor) -> bool:
    return bool(getattr(dec, "needs_input", True))


def _check_size_and_ratio(produced: int, compressed: int, limits: Limits, what: str) -> None:
    if produced > limits.max_total_bytes:
        raise ArchiveLimitError(
            f"{what} expands past the limit of {limits.max_total_bytes} bytes: possible decompression bomb",
        )
    if produced > limits.ratio_floor_bytes and produced > limits.max_ratio * max(compressed, 1):
        raise ArchiveLimitError(
            f"{what} expands more than {limits.max_ratio:g} times its compressed size "
            f"({produced} bytes from {compressed}): possible decompression bomb",
        )


def safe_member_path(name: str) -> tuple[str | None, str | None]:
    """Normalise an archive member name to a safe relative POSIX path.

    Returns (path, None) when safe, or (None, reason) when the name must be skipped.
    """
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        return None, "absolute path"
    if "\0" in cleaned:
        return None, "NUL in path"
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None, "path traversal (..)"
    if not parts:
        return None, "empty path"
    normalised = posixpath.join(*parts)
    # Names that were not valid UTF-8 arrive with surrogate escapes: keep them
    # printable and stable instead of letting them reach a terminal or a JSON encoder.
    normalised = normalised.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return normalised, None


class _Collector:
    """Accumulates members under the count and size limits."""

    def __init__(self, limits: Limits, deadline: Deadline) -> None:
        self.limits = limits
        self.deadline = deadline
        self.members: list[Member] = []
        self.skipped: list[SkippedMember] = []
        self.total = 0
        self.seen = 0
        self._paths: set[str] = set()

    def count(self) -> None:
        self.seen += 1
        if self.seen > self.limits.max_members:
            raise ArchiveLimitError(
                f"archive has more than {self.limits.max_members} members",
                hint="packages are rarely this large; this looks like an archive bomb",
            )
        if self.seen % 256 == 0:
            self.deadline.check("listing archive members")

    def skip(self, path: str, reason: str) -> None:
        display = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self.skipped.append(SkippedMember(display, reason))

    def too_large(self, size: int) -> bool:
        return size > self.limits.max_file_bytes

    def add(self, path: str, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.limits.max_total_bytes:
            raise ArchiveLimitError(
                f"archive members add up to more than {self.limits.max_total_bytes} bytes",
                hint="possible decompression bomb",
            )
        if path in self._paths:
            self.skip(path, "duplicate member name (first kept)")
            return
        self._paths.add(path)
        self.members.append(Member(path, data))


def _read_tar(raw: bytes, col: _Collector) -> None:
    try:
        tf = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.TarError as exc:
        raise CorruptArchiveError(f"not a readable tar archive: {exc}") from exc
    try:
        while True:
            try:
                info = tf.next()
            except (tarfile.TarError, EOFError) as exc:
                raise CorruptArchiveError(f"tar archive is truncated or corrupt: {exc}") from exc
            if info is None:
                break
            col.count()
            path, why = safe_member_path(info.name)
            if path is None:
                col.skip(info.name, why or "unsafe path")
                continue
            if info.isdir():
                continue
            if info.issym():
                col.skip(path, f"symbolic link to {info.linkname!r}")
                continue
            if info.islnk():
                col.skip(path, f"hard link to {info.linkname!r}")
                continue
            if info.ischr() or info.isblk() or info.isfifo():
                col.skip(path, "device or FIFO")
                continue
            if not info.isreg():
                col.skip(path, "not a regular file")
                continue
            if col.too_large(info.size):
                col.skip(path, f"too large ({info.size} bytes)")
                continue
            fh = tf.extractfile(info)
            if fh is None:
                col.skip(path, "unreadable member")
                continue
            try:
                data = fh.read(info.size)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise CorruptArchiveError(f"tar member {path!r} is truncated: {exc}") from exc
            if len(data) != info.size:
                raise CorruptArchiveError(f"tar member {path!r} is truncated")
            col.add(path, data)
    finally:
        tf.close()


def _read_zip(data: bytes, col: _Collector, password: bytes | None) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptArchiveError(f"zip archive is corrupt or truncated: {exc}") from exc
    infos = zf.infolist()
    if len(infos) > col.limits.max_members:
        raise ArchiveLimitError(
            f"zip archive has {len(infos)} members, more than the limit of {col.limits.max_members}",
            hint="packages are rarely this large; this looks like an archive bomb",
        )
    declared = sum(i.file_size for i in infos)
    _check_size_and_ratio(declared, len(data), col.limits, "zip archive")
    with zf:
        for info in infos:
            col.count()
            path, why = safe_member_path(info.filename)
            if path is None:
                col.skip(info.filename, why or "unsafe path")
                continue
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                col.skip(path, "symbolic link")
                continue
            if mode and not (stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0):
                col.skip(path, "device or special file")
                continue
            if col.too_large(info.file_size):
                col.skip(path, f"too large ({info.file_size} bytes)")
                continue
            encrypted = bool(info.flag_bits & 0x1)
            if encrypted and password is None:
                raise ArchivePasswordError(
                    f"zip member {path!r} is encrypted",
                    hint="pass the password with --zip-password (malware datasets use 'infected')",
                )
            try:
                with zf.open(info, pwd=password if encrypted else None) as fh:
                    content = _read_bounded(fh, col)
            except RuntimeError as exc:
                raise ArchivePasswordError(
                    f"cannot decrypt zip member {path!r}: {exc}",
                    hint="check the value given to --zip-password",
                ) from exc
            except NotImplementedError as exc:
                raise ArchiveFormatError(f"zip member {path!r} uses an unsupported method: {exc}") from exc
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
                msg = str(exc)
                if encrypted and "CRC" in msg:
                    raise ArchivePasswordError(
                        f"cannot decrypt zip member {path!r}: wrong password",
                        hint="check the value given to --zip-password",
                    ) from exc
                raise CorruptArchiveError(f"zip member {path!r} is corrupt: {exc}") from exc
            col.add(path, content)


def _read_bounded(fh: io.BufferedIOBase | zipfile.ZipExtFile, col: _Collector) -> bytes:
    buf = io.BytesIO()
    size = 0
    while True:
        col.deadline.check("reading an archive member")
        chunk = fh.read(_CHUNK)
        if not chunk:
            return buf.getvalue()
        size += len(chunk)
        if size > col.limits.max_file_bytes:
            raise ArchiveLimitError(
                "a member expands past its declared size and the per-file limit: possible bomb"
            )
        buf.write(chunk)


def read_archive(
    data: bytes,
    limits: Limits,
    deadline: Deadline,
    password: bytes | None = None,
    _depth: int = 1,
) -> ArchiveContents:
    """Read every safe member of the archive in `data` into memory.

    An archive that holds exactly one file which is itself an archive (a zip around
    an npm tarball, say) is unwrapped, up to `limits.max_nesting` levels.
    """
    if _depth > limits.max_nesting:
        raise ArchiveLimitError(f"archives nested deeper than {limits.max_nesting} levels")
    if len(data) > limits.max_archive_bytes:
        raise ArchiveLimitError(
            f"archive is {len(data)} bytes, more than the limit of {limits.max_archive_bytes}"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ArchiveFormatError(
            "not an archive malseq can read (expected tar, tar.gz/bz2/xz, zip, wheel, egg or npm tgz)"
        )
    col = _Collector(limits, deadline)
    label = fmt
    if fmt == "zip":
        _read_zip(data, col, password)
    else:
        raw = data if fmt == "tar" else _bounded_decompress(data, fmt, limits, deadline)
        if fmt != "tar":
            _check_size_and_ratio(len(raw), len(data), limits, f"{fmt} archive")
            if sniff_format(raw) != "tar":
                raise ArchiveFormatError(f"{fmt} stream does not hold a tar archive")
            label = f"tar+{fmt}"
        _read_tar(raw, col)
    if len(col.members) == 1 and not col.skipped:
        inner = col.members[0]
        if sniff_format(inner.data) is not None:
            nested = read_archive(inner.data, limits, deadline, password, _depth + 1)
            return ArchiveContents(f"{label}>{nested.format}", nested.members, nested.skipped)
    return ArchiveContents(label, tuple(col.members), tuple(col.skipped))
