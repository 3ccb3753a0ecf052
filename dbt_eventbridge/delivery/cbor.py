"""CBOR (RFC 8949), the part the Custom Event Bus API (smithy-rpc-v2-cbor) uses.

Encoding: maps with text keys, arrays, text and byte strings, integers, floats (as
doubles), booleans, None, and datetimes as tag 1 (epoch seconds), as botocore sends them.
Decoding: every major type, definite and indefinite lengths, half/single/double floats and
tags (tag 1 gives a datetime; other tags give their content), so any answer a server may
encode is read. botocore's own codec walks the service model for every value (about 20 us
an entry each way, measured); this one knows the request's shape.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

_FLOAT = struct.Struct(">d")


def _head(major: int, n: int) -> bytes:
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return bytes((m | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((m | 26,)) + n.to_bytes(4, "big")
    return bytes((m | 27,)) + n.to_bytes(8, "big")


def text(s: str) -> bytes:
    b = s.encode("utf-8")
    return _head(3, len(b)) + b


def encode(value: Any) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    if isinstance(value, str):
        out.append(text(value))
    elif isinstance(value, dict):
        out.append(_head(5, len(value)))
        for k, v in value.items():
            out.append(text(k))
            _encode(v, out)
    elif isinstance(value, list | tuple):
        out.append(_head(4, len(value)))
        for v in value:
            _encode(v, out)
    elif value is None:
        out.append(b"\xf6")
    elif value is True:
        out.append(b"\xf5")
    elif value is False:
        out.append(b"\xf4")
    elif isinstance(value, int):
        out.append(_head(0, value) if value >= 0 else _head(1, -1 - value))
    elif isinstance(value, float):
        out.append(b"\xfb" + _FLOAT.pack(value))
    elif isinstance(value, bytes | bytearray):
        out.append(_head(2, len(value)) + bytes(value))
    elif isinstance(value, dt.datetime):
        t = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        out.append(b"\xc1")  # tag 1: epoch seconds
        _encode(t.timestamp(), out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


class DecodeError(ValueError):
    pass


_BREAK = object()


def decode(data: bytes) -> Any:
    value, end = _decode(data, 0)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} bytes after the value")
    return value


def _length(data: bytes, pos: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None or pos + size > len(data):
        raise DecodeError(f"bad length at byte {pos}")
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def _decode(data: bytes, pos: int) -> tuple[Any, int]:
    if pos >= len(data):
        raise DecodeError("the data ends inside a value")
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        return _simple(data, pos, info)
    if info == 31:  # indefinite length
        if major in (2, 3):
            chunks = []
            while data[pos] != 0xFF:
                chunk, pos = _decode(data, pos)
                chunks.append(chunk)
            return (b"" if major == 2 else "").join(chunks), pos + 1
        if major == 4:
            items: list[Any] = []
            while True:
                item, pos = _decode(data, pos)
                if item is _BREAK:
                    return items, pos
                items.append(item)
        if major == 5:
            d: dict[Any, Any] = {}
            while True:
                key, pos = _decode(data, pos)
                if key is _BREAK:
                    return d, pos
                d[key], pos = _decode(data, pos)
        raise DecodeError(f"an indefinite length for major type {major}")
    n, pos = _length(data, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major in (2, 3):
        if pos + n > len(data):
            raise DecodeError("the data ends inside a string")
        raw = data[pos:pos + n]
        return (raw if major == 2 else raw.decode("utf-8")), pos + n
    if major == 4:
        items = []
        for _ in range(n):
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos
    if major == 5:
        d = {}
        for _ in range(n):
            key, pos = _decode(data, pos)
            d[key], pos = _decode(data, pos)
        return d, pos
    # major 6: a tag; tag 1 is epoch seconds
    value, pos = _decode(data, pos)
    if n == 1 and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC), pos
    return value, pos


def _simple(data: bytes, pos: int, info: int) -> tuple[Any, int]:
    if info == 20:
        return False, pos
    if info == 21:
        return True, pos
    if info in (22, 23):
        return None, pos
    if info == 25:
        return struct.unpack(">e", data[pos:pos + 2])[0], pos + 2
    if info == 26:
        return struct.unpack(">f", data[pos:pos + 4])[0], pos + 4
    if info == 27:
        return _FLOAT.unpack(data[pos:pos + 8])[0], pos + 8
    if info == 31:
        return _BREAK, pos
    if info == 24:
        return data[pos], pos + 1
    return info, pos
