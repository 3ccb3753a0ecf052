"""Warehouse values to JSON values, the same way in every payload mode.

Each type's JSON is pinned (the README's type table, one test per row on DuckDB and
PostgreSQL). The rule: a consumer in any language reads back exactly the value the
warehouse held. JSON numbers are doubles in most consumers (JavaScript, jq), so a number
that a double cannot hold exactly is sent as a string of its exact digits.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

# Doubles hold 15 significant decimal digits exactly; beyond that a Decimal would be
# silently rounded, so it is sent as a string instead (consumers of money values care).
_EXACT_FLOAT_DIGITS = 15
# Integers beyond 2^53 lose their last digits in a double (JavaScript's Number).
MAX_SAFE_INT = 2 ** 53 - 1


def _float(value: float) -> Any:
    if math.isfinite(value):
        return value
    # JSON has no NaN or infinities; their names keep the value (as BigQuery and protobuf's JSON do).
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def duration(value: dt.timedelta) -> str:
    """An interval as an ISO 8601 duration: P1DT2H3M4.5S (drivers give months as 30 days)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    days = value.days
    seconds = value.seconds
    micro = value.microseconds
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    text = f"{sign}P{days}D" if days else f"{sign}P"
    time_part = ""
    if h:
        time_part += f"{h}H"
    if m:
        time_part += f"{m}M"
    if s or micro or not (days or h or m):
        time_part += f"{s}.{micro:06d}".rstrip("0").rstrip(".") + "S" if micro else f"{s}S"
    return text + ("T" + time_part if time_part else "")


def to_json_value(value: Any) -> Any:
    """A value json.dumps accepts, chosen so that consumers get natural JSON types."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
        if value == value.to_integral_value():
            n = int(value)
            return n if -MAX_SAFE_INT <= n <= MAX_SAFE_INT else str(n)
        # Significant digits counted from the digits themselves: normalize() rounds to the
        # context's 28 digits first, and sent 10000000000000000000.000000001 as 1e+19.
        if len("".join(map(str, value.as_tuple().digits)).strip("0")) <= _EXACT_FLOAT_DIGITS:
            return float(value)
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {_key(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(v) for v in value]
    return str(value)


def _key(k: Any) -> str:
    """A MAP's key as an object key: text as is, other values as their JSON text (1 -> "1")."""
    if isinstance(k, str):
        return k
    v = to_json_value(k)
    return v if isinstance(v, str) else dumps(v)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON, unicode kept as is (EventBridge counts UTF-8 bytes, escapes only cost size)."""
    return _ENCODER.encode(value)


def to_text(value: Any) -> str:
    """A value as text, for places that are not JSON (source, detail-type, resources)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    v = to_json_value(value)
    if isinstance(v, (dict, list)):
        return dumps(v)
    return str(v)
