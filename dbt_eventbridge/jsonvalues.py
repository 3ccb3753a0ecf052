"""Warehouse values to JSON values, the same way in every payload mode."""

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


def to_json_value(value: Any) -> Any:
    """A value json.dumps accepts, chosen so that consumers get natural JSON types."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return int(value)
        if len(value.as_tuple().digits) <= _EXACT_FLOAT_DIGITS:
            return float(value)
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_json_value(v) for v in value]
    return str(value)


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
    if v is None:  # NaN, infinities
        return ""
    if isinstance(v, (dict, list)):
        return dumps(v)
    return str(v)
