"""Record headers as bytes in the store: a plain length-prefixed layout, never pickle.

Layout: a format byte (1), then for each header a big-endian ``u16`` name length, a ``u32``
value length, the UTF-8 name and the raw value. No headers are stored as NULL. It is about
three times faster than JSON with base64 and as easy to read from another language.
"""

from __future__ import annotations

import struct
from typing import Final

from tidings.exceptions import StorageError
from tidings.records import UNREADABLE_HEADERS, Headers

_FORMAT: Final = 1
_ENTRY: Final = struct.Struct(">HI")
_HEAD: Final = bytes([_FORMAT])


def encode_headers(
    headers: Headers, memo: dict[tuple[str, bytes], bytes] | None = None
) -> bytes | None:
    """Return the stored form of `headers` (None when there are none).

    `memo` keeps the encoded entry of each header seen before: a batch of events shares
    most of its headers (type, source, time, content type), so each is encoded once.
    """
    if not headers:
        return None
    if memo is None:
        memo = {}
    parts = [_HEAD]
    for header in headers:
        entry = memo.get(header)
        if entry is None:
            name, value = header
            raw = name.encode()
            entry = memo[header] = _ENTRY.pack(len(raw), len(value)) + raw + value
        parts.append(entry)
    return b"".join(parts)


def decode_headers(blob: bytes | None) -> Headers:
    """Return the headers stored as `blob` by `encode_headers`.

    Raises:
        StorageError: the blob is not in a format this version understands, is truncated,
            or holds a header name that is not UTF-8.
    """
    if not blob:
        return ()
    if blob[0] != _FORMAT:
        raise StorageError(
            f"Stored headers use format {blob[0]}, unknown to this tidings; upgrade tidings."
        )
    out: list[tuple[str, bytes]] = []
    unpack = _ENTRY.unpack_from
    i, end = 1, len(blob)
    while i < end:
        if i + 6 > end:
            raise StorageError(
                f"Stored headers are truncated: {end - i} byte(s) after entry {len(out)}."
            )
        name_len, value_len = unpack(blob, i)
        i += 6
        if i + name_len + value_len > end:
            raise StorageError(
                f"Stored headers are truncated: entry {len(out)} needs {name_len + value_len} "
                f"bytes, {end - i} are left."
            )
        try:
            name = blob[i : i + name_len].decode()
        except UnicodeDecodeError:
            raise StorageError(
                f"Stored header name {len(out)} is not UTF-8: {blob[i : i + name_len][:64]!r}."
            ) from None
        i += name_len
        out.append((name, blob[i : i + value_len]))
        i += value_len
    return tuple(out)


def read_headers(blob: object) -> Headers:
    """Return `decode_headers(blob)`, or, if it cannot be read, the one header that says why.

    A record whose headers are unreadable reaches the runtime with only
    (UNREADABLE_HEADERS, why) and is dead-lettered there (reason ``bad_headers``), so one
    broken record never stops a fetch.
    """
    try:
        if blob is not None and not isinstance(blob, bytes):
            raise StorageError(f"Stored headers are {type(blob).__name__}, not a blob.")
        return decode_headers(blob)
    except StorageError as exc:
        return ((UNREADABLE_HEADERS, str(exc).encode()),)
