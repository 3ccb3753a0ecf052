"""PutEvents on a Custom Event Bus (eventbridgev2) without botocore's per-call machinery.

botocore's client walks the service model for every value it sends and reads: 82 us of
CPU an event at 100 entries a request (serializing 23, parsing the answer 21, validating
16; cProfile, 2026-12-07, against devtools/eventbridgev2_endpoint.py). This client sends
the same request: ``POST /service/AWSEventsV2/operation/PutEvents``, ``smithy-protocol:
rpc-v2-cbor``, a CBOR body (cbor.py), SigV4 with the signing name ``events``; on the
keep-alive connections of wire.py, at the boto3 client's endpoint with its credentials.
Errors are raised as botocore's ``ClientError`` with the code it would give (the answer's
``__type`` after ``#``), so the publisher handles this client and botocore's alike. With
a proxy or a client certificate configured, botocore's client is used instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from dbt_eventbridge.delivery import cbor
from dbt_eventbridge.delivery.wire import Headers, PutEventsClient, authorization, signing_key

PATH = "/service/AWSEventsV2/operation/PutEvents"
CONTENT_TYPE = "application/cbor"
_SIGNED = "accept;content-type;host;smithy-protocol;x-amz-date"


def sigv4_v2_headers(*, body: bytes, host: str, region: str, access_key: str, secret_key: str, token: str | None,
                     now: dt.datetime, key_cache: dict[tuple[str, str], bytes] | None = None,
                     path: str = PATH) -> dict[str, str]:
    """The headers of a SigV4-signed smithy-rpc-v2-cbor request (POST, no query string)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    key = signing_key(secret_key, day, region, key_cache)
    canonical_headers = (f"accept:{CONTENT_TYPE}\ncontent-type:{CONTENT_TYPE}\nhost:{host}\n"
                         f"smithy-protocol:rpc-v2-cbor\nx-amz-date:{amz_date}\n")
    signed = _SIGNED
    if token:
        canonical_headers += f"x-amz-security-token:{token}\n"
        signed += ";x-amz-security-token"
    canonical = f"POST\n{path}\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
    headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE, "Host": host,
               "smithy-protocol": "rpc-v2-cbor", "X-Amz-Date": amz_date,
               "Authorization": authorization(canonical, signed, amz_date, region, access_key, key)}
    if token:
        headers["X-Amz-Security-Token"] = token
    return headers


def request_body(bus_arn: str, entries: list[Mapping[str, Any]]) -> bytes:
    return cbor.encode({"EventBusArn": bus_arn, "Entries": entries})


class V2Client(PutEventsClient):
    """``put_events(EventBusArn=..., Entries=...)`` of botocore's eventbridgev2 client, lean."""

    path = PATH

    @classmethod
    def for_bus(cls, boto_client: Any, credentials: Any, bus_arn: str) -> Any:
        """This client over botocore's, for one bus, or botocore's own where this one does not apply.

        The URL is the one botocore's endpoint rules give PutEvents on that bus: on AWS the
        bus owner's account leads the host (``<account>.eventsv2.<region>.amazonaws.com``, the
        service's cell routing), which the client's own endpoint URL does not say."""
        if getattr(getattr(boto_client, "_endpoint", None), "http_session", None) is None:
            return boto_client
        try:
            endpoint = boto_client._ruleset_resolver.construct_endpoint(
                operation_model=boto_client.meta.service_model.operation_model("PutEvents"),
                call_args={"EventBusArn": bus_arn, "Entries": []}, request_context={})
            url = str(endpoint.url)
        except Exception:  # noqa: BLE001 - botocore's internals changed: its own client resolves it
            return boto_client
        client = cls(boto_client, credentials, url)
        return client if client.fast else boto_client

    def put_events(self, EventBusArn: str, Entries: list[Mapping[str, Any]]) -> dict[str, Any]:  # type: ignore[override]
        return self.send_body(request_body(EventBusArn, Entries))

    def _headers(self, body: bytes, creds: Any) -> dict[str, str]:
        return sigv4_v2_headers(body=body, host=self._host, region=self._region, access_key=creds.access_key,
                                secret_key=creds.secret_key, token=creds.token,
                                now=dt.datetime.now(dt.UTC), key_cache=self._keys)

    def _answer(self, status: int, content: bytes, headers: Headers) -> dict[str, Any]:
        import botocore.exceptions as bx

        try:
            body = cbor.decode(content) if content else {}
        except (cbor.DecodeError, ValueError, IndexError):
            body = None
        if status == 200:
            if not isinstance(body, dict):
                raise bx.ClientError({"Error": {"Code": "InvalidResponse",
                                                "Message": f"unreadable answer: {content[:200]!r}"},
                                      "ResponseMetadata": {"HTTPStatusCode": status}}, "PutEvents")
            return body
        # As botocore's RpcV2CBORParser reads an error: the code from __type, after any
        # namespace ("ns#Code") and before any ":"; without one, the HTTP status.
        code = message = ""
        if isinstance(body, dict):
            code = str(body.get("__type") or "")
            message = str(body.get("message") or body.get("Message") or "")
        code = code.split("#")[-1].split(":")[0] or str(status)
        raise bx.ClientError({"Error": {"Code": code, "Message": message or f"HTTP {status}"},
                              "ResponseMetadata": {"HTTPStatusCode": status,
                                                   "RequestId": headers.get("x-amzn-RequestId")}}, "PutEvents")
