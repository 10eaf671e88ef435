"""What a reader guards against in an archive it did not write (see ``_reader``).

- :class:`SeenKeys`: a key listed twice in one scope (the manifest's digests are
  not a signature, so a forger can list a key twice and re-sign the manifest).
- :class:`Inflating`: a compressed archive decompressed in bounded pieces (one
  stream or several of one format back to back), with nothing else after the end.
- :func:`read_line` / :func:`check_record_size`: no line or JSON member longer
  than :data:`MAX_LINE_BYTES` is ever read whole.
- :func:`expect_only_padding`: nothing but NUL padding after the manifest.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import zlib
from typing import IO, Any

from dq_metadata.errors import IntegrityError

__all__ = [
    "MAX_LINE_BYTES",
    "Inflating",
    "SeenKeys",
    "check_record_size",
    "expect_only_padding",
    "open_decompressed",
    "read_line",
]

#: The longest archive line (one key's whole history) and the largest JSON member
#: (header, results metadata, manifest) a reader accepts, and the longest line a
#: writer writes: 1 GiB. No SQL backend stores a value that long (PostgreSQL's
#: limit for one ``bytea`` is 1 GB, SQLite's default 10^9 bytes), and a reader
#: holds one line in memory, so it refuses a longer one after reading at most
#: this many bytes (plus one).
MAX_LINE_BYTES = 1 << 30

_READ = 1 << 16
_GZIP, _XZ, _BZIP2 = b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh"


def read_line(stream: IO[bytes], limit: int, where: str) -> bytes:
    """The next line of ``stream`` (``b""`` at its end), at most ``limit`` bytes.

    Raises:
        IntegrityError: the line is longer than ``limit`` bytes (``where`` names
            the member and line); at most ``limit + 1`` bytes were read.
    """
    line = stream.readline(limit + 1)
    if len(line) > limit:
        raise IntegrityError(
            f"{where}: a line longer than {limit} bytes (the archive's maximum record "
            "size): the archive is damaged or forged"
        )
    return line


def check_record_size(name: str, size: int, limit: int) -> None:
    """A JSON member (header, results metadata, manifest) is at most ``limit`` bytes."""
    if size > limit:
        raise IntegrityError(
            f"archive member {name!r} is {size} bytes, over the archive's maximum record "
            f"size of {limit} bytes: the archive is damaged or forged"
        )


class SeenKeys:
    """The ``(kind, key)`` pairs of one scope read so far, to refuse one listed twice.

    Exact up to a 128-bit digest collision. Memory: an open-addressing table of
    16-byte digests at most two-thirds full — 24 to 48 bytes per key of the scope
    (about 32 MB for a million keys; half as much again for a moment while it
    grows), freed by :meth:`clear`.
    """

    _SLOT = 16

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._slots = 1 << 10
        self._table = bytearray(self._slots * self._SLOT)
        self._used = 0

    @classmethod
    def _digest(cls, kind: str, key: str) -> bytes:
        digest = bytearray(
            hashlib.blake2b(f"{kind}\x00{key}".encode(), digest_size=cls._SLOT).digest()
        )
        digest[0] |= 1  # never all zero: zero marks an empty slot
        return bytes(digest)

    def add(self, kind: str, key: str) -> bool:
        """Remember ``kind``/``key``; False when it was already there."""
        if 3 * (self._used + 1) > 2 * self._slots:
            self._grow()
        added = self._insert(self._table, self._slots, self._digest(kind, key))
        self._used += added
        return added

    def __len__(self) -> int:
        return self._used

    @classmethod
    def _insert(cls, table: bytearray, slots: int, digest: bytes) -> bool:
        mask = slots - 1
        at = int.from_bytes(digest[8:], "little") & mask
        empty = bytes(cls._SLOT)
        while True:
            start = at * cls._SLOT
            held = table[start : start + cls._SLOT]
            if held == digest:
                return False
            if held == empty:
                table[start : start + cls._SLOT] = digest
                return True
            at = (at + 1) & mask

    def _grow(self) -> None:
        old, self._slots = self._table, self._slots * 2
        self._table = bytearray(self._slots * self._SLOT)
        empty = bytes(self._SLOT)
        for start in range(0, len(old), self._SLOT):
            digest = bytes(old[start : start + self._SLOT])
            if digest != empty:
                self._insert(self._table, self._slots, digest)


class Inflating(io.RawIOBase):
    """The decompressed bytes of a gzip, xz or bzip2 file, in bounded pieces.

    Each call decompresses at most the bytes asked for (a small compressed piece
    may expand enormously). Like ``zcat``, ``xzcat`` and ``bzcat``, a file of
    several compressed streams of its format back to back (gzip's "series of
    members"; ``pbzip2`` and ``bgzip`` write them) reads as their concatenation;
    the tar they hold is checked as one. The last stream must end where the file
    ends: a file that ends inside a stream is truncated, and any byte after a
    stream that does not start another one of the same format is refused.
    """

    def __init__(self, raw: IO[bytes], magic: bytes) -> None:
        self._raw = raw
        self._magic = magic
        self._zlib = magic == _GZIP
        self._dec: Any = self._decompressor()
        self._input = b""

    def _decompressor(self) -> Any:
        if self._zlib:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return lzma.LZMADecompressor() if self._magic == _XZ else bz2.BZ2Decompressor()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        while want:
            if self._dec.eof and not self._next_stream():
                return 0
            try:
                if self._zlib:
                    if not self._input:
                        self._input = self._fill()
                    out = self._dec.decompress(self._input, want)
                    self._input = self._dec.unconsumed_tail
                else:
                    data = b""
                    if self._dec.needs_input:
                        data, self._input = self._input or self._fill(), b""
                    out = self._dec.decompress(data, want)
            except (zlib.error, lzma.LZMAError, OSError, EOFError) as exc:
                raise IntegrityError(f"the archive's compressed data is damaged: {exc}") from exc
            if out:
                buffer[: len(out)] = out
                return len(out)
        return 0

    def _fill(self) -> bytes:
        chunk = self._raw.read(_READ)
        if not chunk:
            raise IntegrityError(
                "the archive is truncated: its compressed stream ends before its end marker"
            )
        return chunk

    def _next_stream(self) -> bool:
        """After a stream's end: False at the end of the file, True when another
        stream of the same format follows (now being read), else refused."""
        # Everything after the stream's end is in ``unused_data`` (zlib may leave a
        # stale copy of it in ``unconsumed_tail``; lzma and bz2 hold no input here).
        rest = self._dec.unused_data
        while len(rest) < len(self._magic):
            more = self._raw.read(_READ)
            if not more:
                break
            rest += more
        if not rest:
            return False
        if not rest.startswith(self._magic):
            raise IntegrityError(
                "bytes after the end of the archive (after its compressed stream): the "
                "archive was altered"
            )
        self._dec, self._input = self._decompressor(), rest
        return True


def open_decompressed(handle: io.BufferedReader) -> IO[bytes]:
    """``handle`` itself for a plain tar, else its contents decompressed (by magic)."""
    magic = handle.peek(len(_XZ))[: len(_XZ)]
    for known in (_GZIP, _XZ, _BZIP2):
        if magic.startswith(known):
            return io.BufferedReader(Inflating(handle, known), _READ)
    return handle


def expect_only_padding(stream: Any) -> None:
    """What follows the manifest (its padding, the end-of-archive blocks and the
    record padding a tar writer adds) must be NUL bytes, up to the end of the file.

    ``stream``: the tar stream (``TarFile.fileobj`` of a stream-mode ``TarFile``),
    positioned after the manifest's last data byte.
    """
    while chunk := stream.read(_READ):
        if chunk.count(0) != len(chunk):
            raise IntegrityError(
                "bytes after the end of the archive (after the manifest, its last "
                "member): the archive was altered"
            )
