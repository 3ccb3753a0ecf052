"""Global endpoints (`endpoint_id`): PutEvents with EndpointId, signed with SigV4a.

The request is sent through our publisher to a local endpoint that records it; the test
checks its shape and verifies its ECDSA signature with a SigV4a verifier written here from
the specification (the key derived from the secret key with the NIST SP 800-108 counter-mode
KDF; the string to sign over the canonical request). botocore's own CRT signer made it, so
a pass shows the request is what AWS verifies."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.delivery.aws import GlobalEndpointClient, make_client
from dbt_eventbridge.delivery.publisher import Publisher
from dbt_eventbridge.errors import ConfigError
from dbt_eventbridge.model import Entry, Outcome, entry_json, entry_size

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class Capture:
    """A PutEvents endpoint on 127.0.0.1 that records each request and accepts every entry."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.answer_xml = False  # answer as another AWS service would (S3's ListAllMyBuckets)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                       body))
                n = len(json.loads(body)["Entries"])
                answer = json.dumps({"FailedEntryCount": 0,
                                     "Entries": [{"EventId": f"id-{i}"} for i in range(n)]}).encode()
                if outer.answer_xml:
                    answer = b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>'

                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Capture:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


@pytest.fixture
def capture() -> Iterator[Capture]:
    with Capture() as c:
        yield c


def sigv4a_public_key(access_key: str, secret_key: str) -> ec.EllipticCurvePublicKey:
    """SigV4a's signing key: derived from the secret key (NIST SP 800-108, HMAC-SHA256 in
    counter mode, label AWS4-ECDSA-P256-SHA256, context access key + counter byte)."""
    for counter in range(1, 255):
        fixed = (1).to_bytes(4, "big") + b"AWS4-ECDSA-P256-SHA256" + b"\x00" + access_key.encode() \
            + bytes([counter]) + (256).to_bytes(4, "big")
        candidate = int.from_bytes(hmac.new(b"AWS4A" + secret_key.encode(), fixed, hashlib.sha256).digest(), "big")
        if candidate <= P256_ORDER - 2:
            return ec.derive_private_key(candidate + 1, ec.SECP256R1()).public_key()
    raise AssertionError("no key in 254 tries")


def verify_sigv4a(method: str, path: str, headers: dict[str, str], body: bytes, access_key: str,
                  secret_key: str) -> None:
    auth = headers["authorization"]
    algorithm, rest = auth.split(" ", 1)
    assert algorithm == "AWS4-ECDSA-P256-SHA256"
    parts = dict(p.strip().split("=", 1) for p in rest.split(","))
    signed = parts["SignedHeaders"].split(";")
    scope = parts["Credential"].split("/", 1)[1]
    canonical = "\n".join([method, quote(path, safe="/~"), "",
                           *[f"{h}:{' '.join(headers[h].split())}" for h in signed], "",
                           parts["SignedHeaders"], hashlib.sha256(body).hexdigest()])
    to_sign = f"{algorithm}\n{headers['x-amz-date']}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    sigv4a_public_key(access_key, secret_key).verify(bytes.fromhex(parts["Signature"]), to_sign.encode(),
                                                     ec.ECDSA(hashes.SHA256()))


def entries(n: int) -> list[Entry]:
    out = []
    for i in range(n):
        e = {"Source": "shop.orders", "DetailType": "order.added", "Detail": json.dumps({"id": i, "name": "Zoë"}),
             "EventBusName": "orders"}
        out.append(Entry(i, "added", {"id": i}, "", e, entry_size(e), entry_json(e)))
    return out


def test_put_events_through_a_global_endpoint_is_signed_with_sigv4a(aws_env: None, capture: Capture) -> None:
    client = make_client(Settings(region="eu-west-1", endpoint_url=capture.url, endpoint_id="abcde.veo"))
    assert isinstance(client, GlobalEndpointClient)
    got: list[Outcome] = []
    p = Publisher(client, concurrency=2)
    try:
        p.publish(entries(25), got.append)
    finally:
        p.close()
    assert sum(len(o.accepted) for o in got) == 25
    assert len(capture.requests) == 3
    for method, path, headers, body in capture.requests:
        sent = json.loads(body)
        assert sent["EndpointId"] == "abcde.veo"
        assert headers["x-amz-target"] == "AWSEvents.PutEvents"
        assert headers["x-amz-region-set"] == "*"  # valid in every region the endpoint fails over to
        assert "/events/aws4_request" in headers["authorization"] and "eu-west-1" not in headers["authorization"]
        verify_sigv4a(method, path, headers, body, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    first = json.loads(capture.requests[0][3])["Entries"][0]
    assert first == entries(1)[0].entry


def test_a_tampered_request_fails_the_verifier(aws_env: None, capture: Capture) -> None:
    """The verifier above can fail: one byte of the body changed after signing."""
    p = Publisher(make_client(Settings(region="eu-west-1", endpoint_url=capture.url, endpoint_id="abcde.veo")))
    try:
        p.publish(entries(1), lambda out: None)
    finally:
        p.close()
    method, path, headers, body = capture.requests[0]
    with pytest.raises(InvalidSignature):
        verify_sigv4a(method, path, headers, body.replace(b"abcde", b"abcdf"), "AKIDEXAMPLE",
                      "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def test_without_an_endpoint_url_it_goes_to_the_global_endpoints_host(aws_env: None) -> None:
    client = make_client(Settings(region="us-east-1", endpoint_id="abcde.veo"))
    seen: list[str] = []

    def stop(request: Any, **_: Any) -> None:
        seen.append(request.url)
        raise KeyboardInterrupt  # nothing leaves this machine

    client._client.meta.events.register("before-send.events.PutEvents", stop)
    with pytest.raises(KeyboardInterrupt):
        client.put_events(Entries=[entries(1)[0].entry])
    assert seen == ["https://abcde.veo.endpoint.events.amazonaws.com/"]


def test_without_the_crt_the_error_says_what_to_install(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.compat

    monkeypatch.setattr(botocore.compat, "HAS_CRT", False)  # botocore's flag, as without awscrt installed
    with pytest.raises(ConfigError) as e:
        make_client(Settings(region="us-east-1", endpoint_id="abcde.veo"))
    text = str(e.value)
    assert "SigV4a" in text and "dbt-eventbridge[global]" in text and "endpoint_id" in text


def test_an_endpoint_id_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load({"endpoint_id": "https://abcde.veo.endpoint.events.amazonaws.com"})
    assert "is not a global endpoint's id" in str(e.value)


def test_an_endpoint_that_is_not_eventbridge_stops_the_run(aws_env: None, capture: Capture) -> None:
    """A 200 without Entries (another service behind endpoint_url) is the endpoint's fault, not
    the rows': the run stops (exit 2) instead of rejecting rows as if EventBridge had."""
    from dbt_eventbridge.errors import EndpointError

    capture.answer_xml = True
    p = Publisher(make_client(Settings(region="eu-west-1", endpoint_url=capture.url, endpoint_id="abcde.veo")))
    got: list[Outcome] = []
    try:
        with pytest.raises(EndpointError) as e:
            p.publish(entries(3), got.append)
    finally:
        p.close()
    assert "not an EventBridge answer" in str(e.value) and "endpoint_url" in str(e.value)
    assert got == []
