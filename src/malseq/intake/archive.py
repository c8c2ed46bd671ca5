"""Bounded, in-memory reading of hostile archives.

Nothing is ever written to disk: members are read into memory under the limits in
`Limits`, and every member that is not a plain file with a safe relative path is
skipped and recorded. Formats are recognised by content, never by file name.

Compressed tars are decompressed as a stream, so the decompressed tar never sits in
memory as a whole: memory is bounded by the input and the members kept (each at most
`max_file_bytes`, all together at most `max_total_bytes`).

Archives cut short (an interrupted download) are salvaged: every complete member before
the cut is read, and the cut is recorded in `skipped`. An archive with no complete member
is an error.
"""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Protocol

from malseq._deadline import Deadline
from malseq.errors import (
    ArchiveFormatError,
    ArchiveLimitError,
    ArchivePasswordError,
    CorruptArchiveError,
    MalseqError,
)
from malseq.intake.limits import Limits
from malseq.intake.package import SkippedMember

_CHUNK = 1024 * 1024
_FEED = 64 * 1024
_TRUNCATED_HINT = "the file may be an incomplete download; fetch it again"
_BOMB_HINT = "packages are rarely this large; this looks like an archive bomb"
# The path used in `skipped` for notes about the archive as a whole.
ARCHIVE_NOTE = "(archive)"
# Links followed through other links, at most.
_MAX_LINK_HOPS = 8
# Reads past the end of a decompressed stream before it counts as a member overrunning it.
_MAX_READS_AT_END = 64


@dataclass(frozen=True)
class Member:
    path: str
    data: bytes
    # Set when the member is a link inside the archive read as a copy of its target:
    # the link's target as the archive gives it.
    link_to: str | None = None


@dataclass(frozen=True)
class ArchiveContents:
    format: str
    members: tuple[Member, ...]
    skipped: tuple[SkippedMember, ...]


_MAGIC_FORMATS = (
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty zip
    (b"PK\x07\x08", "zip"),  # spanned-archive marker before the first local header
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def sniff_format(data: bytes) -> str | None:
    """The archive format of `data` from its magic bytes, or None."""
    for magic, fmt in _MAGIC_FORMATS:
        if data.startswith(magic):
            return fmt
    if len(data) >= 263 and data[257:262] == b"ustar":
        return "tar"
    if len(data) >= 512 and _looks_like_v7_tar(data[:512]):
        return "tar"
    if _find_eocd(data) is not None:
        # A zip with data in front of it (a self-extractor, or junk prepended to
        # dodge magic-byte checks): zip readers, pip's included, find it from the end.
        return "zip"
    return None


def _looks_like_v7_tar(header: bytes) -> bool:
    # Old tar headers have no magic; the checksum field is the only real signature.
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
    return stored == computed


# ---------------------------------------------------------------------------
# Errors from the standard library's parsers

@contextmanager
def _parsing(what: str, exhausted: Callable[[], bool] | None = None) -> Iterator[None]:
    """Turn whatever a standard-library parser raises on hostile bytes into a `MalseqError`.

    tarfile and zipfile are not hardened parsers: besides their own errors they let
    ValueError, struct.error, UnicodeDecodeError, OverflowError... escape on crafted
    input. Every one of them means the archive is damaged.
    """
    try:
        yield
    except MalseqError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring
        detail = str(exc) or type(exc).__name__
        if exhausted is not None and exhausted():
            raise CorruptArchiveError(f"{what} is truncated: {detail}", hint=_TRUNCATED_HINT) from exc
        raise CorruptArchiveError(f"{what} is corrupt: {detail}") from exc


# ---------------------------------------------------------------------------
# Compressed streams

class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _ZlibAdapter:
    """zlib's decompressobj with the bz2/lzma `decompress(data, max_length)` shape."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data + self._d.unconsumed_tail

    @property
    def needs_input(self) -> bool:
        return not self._pending

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        buf = self._pending + data if self._pending else data
        out = self._d.decompress(buf, max_length if max_length > 0 else 0)
        self._pending = self._d.unconsumed_tail
        return out


_STREAM_MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}


def _new_decompressor(fmt: str) -> _Decompressor:
    if fmt == "gzip":
        return _ZlibAdapter()
    if fmt == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


class _DecompressingReader(io.RawIOBase):
    """A read-only stream over gzip/bzip2/xz data that enforces the size and ratio limits.

    Concatenated streams (multi-member gzip) are read through, as gzip, bzip2 and xz
    tools do. A stream that ends before its end marker sets `truncated` and reads as
    the end of the data; trailing bytes that are not another stream are counted in
    `trailing_bytes` and ignored.
    """

    def __init__(self, data: bytes, fmt: str, limits: Limits, deadline: Deadline) -> None:
        super().__init__()
        self._data = data
        self._fmt = fmt
        self._limits = limits
        self._deadline = deadline
        self._dec = _new_decompressor(fmt)
        self._pos = 0
        self._buf = b""
        self._off = 0
        self.produced = 0
        self.streams = 1
        self.finished = False
        self.truncated = False
        self.trailing_bytes = 0
        self._reads_at_end = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        while self._off >= len(self._buf) and not self.finished:
            self._fill()
        n = min(len(view), len(self._buf) - self._off)
        if n == 0:
            # tarfile's stream mode skips a member's data by reading block after block;
            # a header claiming terabytes would keep it reading nothing for ever.
            self._reads_at_end += 1
            if self._reads_at_end > _MAX_READS_AT_END:
                raise CorruptArchiveError(
                    "tar archive is truncated: a member claims more data than the archive holds",
                    hint=_TRUNCATED_HINT,
                )
        view[:n] = self._buf[self._off : self._off + n]
        self._off += n
        return n

    def peek(self, n: int) -> bytes:
        while len(self._buf) - self._off < n and not self.finished:
            rest = self._buf[self._off :]
            self._off = 0
            self._buf = rest
            self._fill(append=True)
        return self._buf[self._off : self._off + n]

    def exhausted(self) -> bool:
        return self.finished and self._off >= len(self._buf)

    def _fill(self, append: bool = False) -> None:
        self._deadline.check(f"decompressing {self._fmt}")
        dec = self._dec
        if dec.eof:
            self._next_stream()
            return
        feed = b""
        if getattr(dec, "needs_input", True) and self._pos < len(self._data):
            feed = self._data[self._pos : self._pos + _FEED]
            self._pos += len(feed)
        try:
            chunk = dec.decompress(feed, _CHUNK)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise CorruptArchiveError(f"{self._fmt} stream is corrupt: {exc}") from exc
        if chunk:
            self.produced += len(chunk)
            check_size_and_ratio(self.produced, len(self._data), self._limits, f"{self._fmt} stream")
            self._buf = self._buf + chunk if append else chunk
            if not append:
                self._off = 0
        elif not dec.eof and self._pos >= len(self._data) and getattr(dec, "needs_input", True):
            self.truncated = True
            self.finished = True

    def _next_stream(self) -> None:
        # Where the finished stream's input ended: what the decompressor did not use.
        start = self._pos - len(self._dec.unused_data)
        rest = self._data[start:]
        stripped = rest.lstrip(b"\0")  # gzip tools allow zero padding between members
        if not stripped:
            self.finished = True
        elif stripped.startswith(_STREAM_MAGIC[self._fmt]):
            self._pos = start + (len(rest) - len(stripped))
            self._dec = _new_decompressor(self._fmt)
            self.streams += 1
        else:
            self.trailing_bytes = len(stripped)
            self.finished = True


def check_size_and_ratio(produced: int, compressed: int, limits: Limits, what: str) -> None:
    if produced > limits.max_total_bytes:
        raise ArchiveLimitError(
            f"{what} expands past the limit of {limits.max_total_bytes} bytes: possible decompression bomb",
            hint=_BOMB_HINT,
        )
    if produced > limits.ratio_floor_bytes and produced > limits.max_ratio * max(compressed, 1):
        raise ArchiveLimitError(
            f"{what} expands more than {limits.max_ratio:g} times its compressed size "
            f"({produced} bytes from {compressed}): possible decompression bomb",
            hint=_BOMB_HINT,
        )


# Kept under its old name for callers outside this module.
_check_size_and_ratio = check_size_and_ratio


# ---------------------------------------------------------------------------
# Member paths and collection

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


def _display(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True)
class _Link:
    path: str
    target: str  # as written in the archive
    hard: bool


class _Collector:
    """Accumulates members under the count and size limits."""

    def __init__(self, limits: Limits, deadline: Deadline) -> None:
        self.limits = limits
        self.deadline = deadline
        self.members: list[Member] = []
        self.skipped: list[SkippedMember] = []
        self.links: list[_Link] = []
        self.total = 0
        self.seen = 0
        self._index: dict[str, int] = {}

    def count(self) -> None:
        self.seen += 1
        if self.seen > self.limits.max_members:
            raise ArchiveLimitError(f"archive has more than {self.limits.max_members} members", hint=_BOMB_HINT)
        if self.seen % 256 == 0:
            self.deadline.check("listing archive members")

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(SkippedMember(_display(path), reason))

    def too_large(self, size: int) -> bool:
        return size > self.limits.max_file_bytes

    def _account(self, size: int) -> None:
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise ArchiveLimitError(
                f"archive members add up to more than {self.limits.max_total_bytes} bytes",
                hint="possible decompression bomb",
            )

    def add(self, path: str, data: bytes, past_end: bool = False) -> None:
        """Keep a member. `past_end`: it comes after the tar's end marker or a damaged block."""
        self._account(len(data))
        if path in self._index:
            at = self._index[path]
            if self.members[at].data == data:
                return  # the same file twice (some sdists hold two copies of their tar)
            if past_end:
                # pip's tarfile and npm's tar stop at the end marker: what they install is
                # the first copy. The other one is listed, not used.
                self.skip(path, "a different copy after the end of the tar archive, not used "
                                "(installers stop at the end marker)")
                return
            # Extraction writes members in order, so a later copy replaces an earlier
            # one: keep what an installer would end up with.
            self.members[at] = Member(path, data)
            self.skip(path, "duplicate member name: an earlier copy with different content, replaced by a later one")
            return
        self._index[path] = len(self.members)
        self.members.append(Member(path, data))

    def resolve_links(self) -> None:
        """Read links that point at a file inside the archive as copies of that file.

        An installer that unpacks the archive creates the link, so `setup.py` linked to
        `data.txt` runs whatever `data.txt` holds. Links pointing outside are only recorded.
        """
        by_path = {link.path: link for link in self.links}
        for link in self.links:
            self.deadline.check("resolving links")
            kind = "hard link" if link.hard else "symbolic link"
            target, why = _follow(link, by_path)
            if target is None or target not in self._index:
                self.skip(link.path, f"{kind} to {_display(link.target)!r} ({why or 'target not in the archive'})")
                continue
            if link.path in self._index:
                self.skip(link.path, f"{kind} to {_display(link.target)!r} (a file of that name was kept)")
                continue
            data = self.members[self._index[target]].data
            self._account(len(data))
            self._index[link.path] = len(self.members)
            self.members.append(Member(link.path, data, link_to=_display(link.target)))
            self.skip(link.path, f"{kind} to {_display(link.target)!r}: read as a copy of {target!r}")


def _follow(link: _Link, links: dict[str, _Link]) -> tuple[str | None, str | None]:
    """The archive path a link ends at, or (None, why)."""
    current = link
    for _ in range(_MAX_LINK_HOPS):
        raw = current.target.replace("\\", "/")
        if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
            return None, "absolute target, outside the package"
        # Hard links name a member from the archive root; symbolic links are relative
        # to the folder holding them.
        joined = raw if current.hard else posixpath.join(posixpath.dirname(current.path), raw)
        normal = posixpath.normpath(joined)
        if normal == ".." or normal.startswith("../"):
            return None, "points outside the package"
        path, why = safe_member_path(normal)
        if path is None:
            return None, why
        nxt = links.get(path)
        if nxt is None:
            return path, None
        if nxt is link:
            return None, "link loop"
        current = nxt
    return None, "too many links in a row"


# ---------------------------------------------------------------------------
# tar

def _read_tar(
    fileobj: io.RawIOBase | io.BytesIO,
    col: _Collector,
    label: str,
    source_size: Callable[[], int | None],
    cut_short: Callable[[], bool],
) -> bool:
    """Read a tar archive from `fileobj`; return whether it was cut short.

    `source_size` gives the size of the whole tar once it is known (for a stream, once
    it has been decompressed to its end), so that an error can be told apart from the
    data running out; `cut_short` says whether the compressed stream itself was cut.
    """
    tf: tarfile.TarFile | None = None

    def exhausted() -> bool:
        size = source_size()
        if size is None:
            return False
        if tf is None:  # tarfile.open failed on the first header
            return size < 512 or cut_short()
        # What tarfile has consumed (its stream layer reads ahead of the parser, so the
        # source's own position would say "at the end" too early).
        return bool(tf.fileobj.tell() >= size)

    # A decompressing stream is read in stream mode: members in order, the tar never held
    # whole. A plain tar is already in memory and read with random access, so skipping a
    # member is a seek, whatever size its header claims.
    # ignore_zeros reads past an end-of-archive marker or a damaged block, as GNU tar -i
    # and npm's tar do: files after them are not hidden from the scan.
    with _parsing(f"{label} archive", exhausted):
        if isinstance(fileobj, io.BytesIO):
            tf = tarfile.open(fileobj=fileobj, mode="r:", ignore_zeros=True)  # noqa: SIM115 - closed below
        else:
            tf = tarfile.open(fileobj=fileobj, mode="r|", ignore_zeros=True)  # noqa: SIM115 - closed below
    truncated = False
    expected = 0
    past_end = False
    try:
        while True:
            try:
                with _parsing(f"{label} archive", exhausted):
                    info = tf.next()
            except CorruptArchiveError:
                if not exhausted():
                    raise
                truncated = True
                break
            if info is None:
                break
            if info.offset > expected:
                col.skip(
                    ARCHIVE_NOTE,
                    f"{info.offset - expected} bytes at offset {expected} are not tar headers "
                    "(an end-of-archive marker or damage); reading went on after them",
                )
                past_end = True
            expected = tf.offset
            col.count()
            path, why = safe_member_path(info.name)
            if path is None:
                col.skip(info.name, why or "unsafe path")
                continue
            if info.isdir():
                continue
            if info.issym() or info.islnk():
                col.links.append(_Link(path, info.linkname, hard=info.islnk()))
                continue
            if info.ischr() or info.isblk() or info.isfifo():
                col.skip(path, "device or FIFO")
                continue
            if not info.isreg():
                col.skip(path, "not a regular file")
                continue
            if info.issparse():
                col.skip(path, "sparse file")
                continue
            if col.too_large(info.size):
                col.skip(path, f"too large ({info.size} bytes)")
                continue
            col.deadline.check("reading an archive member")
            data: bytes | None = None
            try:
                with _parsing(f"tar member {path!r}", exhausted):
                    fh = tf.extractfile(info)
                    data = fh.read(info.size) if fh is not None else None
            except CorruptArchiveError:
                if not exhausted():
                    raise
            if data is None and not exhausted():
                col.skip(path, "unreadable member")
                continue
            if data is None or len(data) != info.size:
                col.skip(path, f"truncated: the archive ends inside this file (declared {info.size} bytes)")
                truncated = True
                break
            col.add(path, data, past_end)
    finally:
        with _parsing(f"{label} archive"):
            tf.close()
    return truncated


def _files(n: int) -> str:
    return f"{n} complete file" if n == 1 else f"{n} complete files"


def _read_compressed_tar(data: bytes, fmt: str, col: _Collector) -> str:
    reader = _DecompressingReader(data, fmt, col.limits, col.deadline)
    head = reader.peek(512)
    label = f"tar+{fmt}"
    if reader.truncated and len(head) < 512:
        raise CorruptArchiveError(
            f"{fmt} stream is truncated: it ends before the first tar header is complete", hint=_TRUNCATED_HINT
        )
    if not head:
        raise CorruptArchiveError(f"{fmt} stream is empty")
    if sniff_format(head) != "tar":
        raise ArchiveFormatError(f"{fmt} stream does not hold a tar archive")
    cut = _read_tar(reader, col, label, lambda: reader.produced if reader.finished else None,
                    lambda: reader.truncated)
    if reader.truncated or cut:
        if not col.members:
            raise CorruptArchiveError(
                f"{label} archive is truncated: it ends before its first complete file", hint=_TRUNCATED_HINT
            )
        why = f"{fmt} stream ends before its end marker" if reader.truncated else "tar ends inside a file"
        col.skip(
            ARCHIVE_NOTE,
            f"archive is truncated ({why}); read the {_files(len(col.members))} before the cut",
        )
    if reader.trailing_bytes:
        col.skip(ARCHIVE_NOTE, f"{reader.trailing_bytes} bytes of trailing data after the {fmt} stream ignored")
    return label


def _read_plain_tar(data: bytes, col: _Collector) -> str:
    cut = _read_tar(io.BytesIO(data), col, "tar", lambda: len(data), lambda: False)
    if cut:
        if not col.members:
            raise CorruptArchiveError(
                "tar archive is truncated: it ends before its first complete file", hint=_TRUNCATED_HINT
            )
        col.skip(ARCHIVE_NOTE, f"archive is truncated; read the {_files(len(col.members))} before the cut")
    return "tar"


# ---------------------------------------------------------------------------
# zip

_EOCD = struct.Struct("<4sHHHHIIH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")


def _find_eocd(data: bytes, strict: bool = True) -> int | None:
    """Offset of the zip end-of-central-directory record, searched from the end.

    Strict: its comment must end the data exactly (used to recognise a zip with data
    prepended). Lenient: the last whole record, as zipfile (and so pip) accepts it.
    """
    lo = max(0, len(data) - (_EOCD.size + 0xFFFF))
    pos = data.rfind(b"PK\x05\x06", lo)
    while pos >= 0:
        if pos + _EOCD.size <= len(data):
            comment_len = struct.unpack_from("<H", data, pos + 20)[0]
            if not strict or pos + _EOCD.size + comment_len == len(data):
                return pos
        pos = data.rfind(b"PK\x05\x06", lo, pos)
    return None


def _count_central_entries(data: bytes, limits: Limits) -> None:
    """Refuse a zip listing too many members before zipfile builds an object for each."""
    eocd = _find_eocd(data, strict=False)
    if eocd is None:
        return
    _, _, _, _, _, cd_size, _, _ = _EOCD.unpack_from(data, eocd)
    end = eocd
    if eocd >= _ZIP64_LOCATOR.size and data[eocd - _ZIP64_LOCATOR.size : eocd - 16] == b"PK\x06\x07":
        # zip64: its end record sits between the directory and the locator.
        zip64_at = struct.unpack_from("<Q", data, eocd - _ZIP64_LOCATOR.size + 8)[0]
        if zip64_at + 56 <= len(data) and data[zip64_at : zip64_at + 4] == b"PK\x06\x06":
            cd_size = struct.unpack_from("<Q", data, zip64_at + 40)[0]
            end = zip64_at
    pos = max(0, end - cd_size)
    count = 0
    while pos + _CENTRAL.size <= end and data[pos : pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        pos += _CENTRAL.size + name_len + extra_len + comment_len
        count += 1
        if count > limits.max_members:
            raise ArchiveLimitError(
                f"zip archive has more than {limits.max_members} members", hint=_BOMB_HINT
            )


def _salvage_zip(data: bytes, limits: Limits) -> tuple[bytes, list[SkippedMember]]:
    """Rebuild a central directory for a zip cut short, from its complete local entries.

    The rebuilt archive then goes through zipfile like any other, so every check
    (CRC, encryption, sizes) still applies to the recovered members.
    """
    entries: list[tuple[int, tuple[int, ...], bytes]] = []
    notes: list[SkippedMember] = []
    pos = 0
    while pos + _LOCAL.size <= len(data) and data[pos : pos + 4] == b"PK\x03\x04":
        sig, version, flags, method, mtime, mdate, crc, csize, usize, name_len, extra_len = _LOCAL.unpack_from(
            data, pos
        )
        name = data[pos + _LOCAL.size : pos + _LOCAL.size + name_len]
        shown = name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        if flags & 0x08 or 0xFFFFFFFF in (csize, usize):
            notes.append(SkippedMember(shown, "truncated archive: members from here on cannot be recovered "
                                              "(their sizes are only stored after their data)"))
            break
        end = pos + _LOCAL.size + name_len + extra_len + csize
        if end > len(data):
            notes.append(SkippedMember(shown, f"truncated: the archive ends inside this file (declared {usize} bytes)"))
            break
        entries.append((pos, (version, flags, method, mtime, mdate, crc, csize, usize), name))
        if len(entries) > limits.max_members:
            raise ArchiveLimitError(f"zip archive has more than {limits.max_members} members", hint=_BOMB_HINT)
        pos = end
    if not entries:
        first = f" and its first member {notes[0].path!r} is cut off" if notes else ""
        raise CorruptArchiveError(
            f"zip archive is truncated: it has no central directory{first}", hint=_TRUNCATED_HINT
        )
    directory = bytearray()
    for offset, (version, flags, method, mtime, mdate, crc, csize, usize), name in entries:
        directory += _CENTRAL.pack(
            b"PK\x01\x02", version, version, flags, method, mtime, mdate, crc, csize, usize,
            len(name), 0, 0, 0, 0, 0, offset,
        )
        directory += name
    eocd = _EOCD.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), pos, 0)
    notes.append(SkippedMember(
        ARCHIVE_NOTE,
        f"zip archive is truncated (no central directory); recovered {_files(len(entries))} "
        "from their local headers",
    ))
    return data[:pos] + bytes(directory) + eocd, notes


def _open_zip(data: bytes, limits: Limits) -> tuple[zipfile.ZipFile, list[SkippedMember]]:
    _count_central_entries(data, limits)
    notes: list[SkippedMember] = []
    if _find_eocd(data, strict=False) is None and data.startswith(b"PK\x03\x04"):
        data, notes = _salvage_zip(data, limits)
    with _parsing("zip archive"):
        return zipfile.ZipFile(io.BytesIO(data)), notes


def _read_zip(data: bytes, col: _Collector, password: bytes | None) -> None:
    zf, notes = _open_zip(data, col.limits)
    with zf:
        infos = zf.infolist()
        if len(infos) > col.limits.max_members:
            raise ArchiveLimitError(
                f"zip archive has {len(infos)} members, more than the limit of {col.limits.max_members}",
                hint=_BOMB_HINT,
            )
        declared = sum(i.file_size for i in infos)
        check_size_and_ratio(declared, len(data), col.limits, "zip archive")
        for info in infos:
            _read_zip_member(zf, info, col, password)
    col.skipped.extend(notes)


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, col: _Collector, password: bytes | None) -> None:
    col.count()
    path, why = safe_member_path(info.filename)
    if path is None:
        col.skip(info.filename, why or "unsafe path")
        return
    if info.is_dir():
        return
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        # Unpacked by zipfile or pip, a zip "link" becomes a file holding the target path.
        col.skip(path, "symbolic link")
        return
    if mode and not (stat.S_ISREG(mode) or stat.S_IFMT(mode) == 0):
        col.skip(path, "device or special file")
        return
    if col.too_large(info.file_size):
        col.skip(path, f"too large ({info.file_size} bytes)")
        return
    encrypted = bool(info.flag_bits & 0x1)
    if encrypted and password is None:
        raise ArchivePasswordError(
            f"zip member {path!r} is encrypted",
            hint="pass the password with --zip-password (malware datasets use 'infected')",
        )
    try:
        with zf.open(info, pwd=password if encrypted else None) as fh:
            content = _read_bounded(fh, col)
    except MalseqError:
        raise
    except RuntimeError as exc:  # zipfile's "Bad password for file"
        raise ArchivePasswordError(
            f"cannot decrypt zip member {path!r}: wrong password",
            hint="check the value given to --zip-password",
        ) from exc
    except NotImplementedError as exc:
        raise ArchiveFormatError(f"zip member {path!r} uses an unsupported method: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile on hostile bytes, see _parsing
        if encrypted:
            # The password check byte matches by chance 1 time in 256; the garbage
            # that follows then fails to inflate or to match its CRC.
            raise ArchivePasswordError(
                f"cannot decrypt zip member {path!r}: wrong password ({exc})",
                hint="check the value given to --zip-password",
            ) from exc
        raise CorruptArchiveError(f"zip member {path!r} is corrupt: {exc or type(exc).__name__}") from exc
    col.add(path, content)


def _read_bounded(fh: IO[bytes], col: _Collector) -> bytes:
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


# ---------------------------------------------------------------------------
# Entry point

_ALWAYS_IGNORED_WRAPPERS = ("__MACOSX/", ".DS_Store")


def _single_inner_archive(col: _Collector) -> Member | None:
    """The one archive this archive wraps (a zip around an npm tgz), if that is all it holds."""
    if col.skipped:
        return None
    kept = [m for m in col.members if not m.path.startswith(_ALWAYS_IGNORED_WRAPPERS)
            and posixpath.basename(m.path) != ".DS_Store"]
    if len(kept) != 1 or sniff_format(kept[0].data) is None:
        return None
    return kept[0]


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
        raise ArchiveLimitError(f"archives nested deeper than {limits.max_nesting} levels", hint=_BOMB_HINT)
    if len(data) > limits.max_archive_bytes:
        raise ArchiveLimitError(
            f"archive is {len(data)} bytes, more than the limit of {limits.max_archive_bytes}"
        )
    if not data:
        raise CorruptArchiveError("file is empty (0 bytes)", hint=_TRUNCATED_HINT)
    fmt = sniff_format(data)
    if fmt is None:
        raise ArchiveFormatError(
            "not an archive malseq can read (expected tar, tar.gz/bz2/xz, zip, wheel, egg or npm tgz)"
        )
    col = _Collector(limits, deadline)
    if fmt == "zip":
        _read_zip(data, col, password)
        label = "zip"
    elif fmt == "tar":
        label = _read_plain_tar(data, col)
    else:
        label = _read_compressed_tar(data, fmt, col)
    col.resolve_links()
    inner = _single_inner_archive(col)
    if inner is not None:
        try:
            nested = read_archive(inner.data, limits, deadline, password, _depth + 1)
        except ArchiveFormatError:
            # Looks like an archive (a lone .gz of one script, say) but is not one we
            # unwrap: keep it as the file it is.
            pass
        else:
            return ArchiveContents(f"{label}>{nested.format}", nested.members, nested.skipped)
    return ArchiveContents(label, tuple(col.members), tuple(col.skipped))
