"""The lean PutEvents client: same signature as botocore's, same request and answers as boto3's."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from pathlib import Path
from unittest import mock

import boto3
import botocore.config
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.delivery.aws import make_client
from dbt_eventbridge.delivery.wire import PutEventsClient, sigv4_headers
from devtools.fault_endpoint import FaultEndpoint, RequestFault

NOW = dt.datetime(2026, 11, 26, 10, 11, 12)


@pytest.mark.parametrize("token", [None, "session-token/with+chars="])
@pytest.mark.parametrize("host", ["events.eu-west-1.amazonaws.com", "127.0.0.1:4010"])
def test_signature_matches_botocores(token: str | None, host: str) -> None:
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token).get_frozen_credentials()
    body = json.dumps({"Entries": [{"Source": "s", "DetailType": "d", "Detail": '{"a":"é"}'}]}).encode()
    req = AWSRequest(method="POST", url=f"https://{host}/", data=body,
                     headers={"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": "application/x-amz-json-1.1"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW):
        SigV4Auth(creds, "events", "eu-west-1").add_auth(req)
    ours = sigv4_headers(body=body, host=host, region="eu-west-1", access_key=creds.access_key,
                         secret_key=creds.secret_key, token=creds.token, now=NOW.replace(tzinfo=dt.UTC),
                         key_cache={})
    assert ours["Authorization"] == req.headers["Authorization"]
    assert ours["X-Amz-Date"] == req.headers["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == req.headers.get("X-Amz-Security-Token")


def test_signing_key_cache_follows_the_day_and_the_secret() -> None:
    cache: dict = {}
    args = {"body": b"{}", "host": "h", "region": "us-east-1", "access_key": "A", "token": None, "key_cache": cache}
    day1 = sigv4_headers(secret_key="s1", now=dt.datetime(2026, 1, 1, 23, 59, tzinfo=dt.UTC), **args)
    day2 = sigv4_headers(secret_key="s1", now=dt.datetime(2026, 1, 2, 0, 1, tzinfo=dt.UTC), **args)
    rotated = sigv4_headers(secret_key="s2", now=dt.datetime(2026, 1, 2, 0, 1, tzinfo=dt.UTC), **args)
    fresh = sigv4_headers(secret_key="s2", now=dt.datetime(2026, 1, 2, 0, 1, tzinfo=dt.UTC),
                          **{**args, "key_cache": {}})
    assert len({day1["Authorization"], day2["Authorization"], rotated["Authorization"]}) == 3
    assert rotated["Authorization"] == fresh["Authorization"]  # a rotated secret is never signed with the old key


ENTRIES = [
    {"Source": "com.test", "DetailType": "T", "Detail": json.dumps({"id": 1, "text": 'quote " and é'}),
     "EventBusName": "bus", "Resources": ["arn:aws:x:us-east-1:123456789012:thing/1"],
     "Time": dt.datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=dt.UTC)},
    {"Source": "com.test", "DetailType": "T", "Detail": "{}", "EventBusName": "bus"},
]


def test_sends_the_request_boto3_sends_and_reads_its_answer() -> None:
    with FaultEndpoint() as ep:
        settings = Settings(region="us-east-1", endpoint_url=ep.endpoint_url)
        lean = make_client(settings)
        assert isinstance(lean, PutEventsClient) and lean.fast
        plain = boto3.client("events", region_name="us-east-1", endpoint_url=ep.endpoint_url,
                             aws_access_key_id="x", aws_secret_access_key="y",
                             config=botocore.config.Config(retries={"total_max_attempts": 1}))
        with mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}):
            lean = make_client(settings)
            ours = lean.put_events(Entries=ENTRIES)
        theirs = plain.put_events(Entries=ENTRIES)
        assert ours["FailedEntryCount"] == theirs["FailedEntryCount"] == 0
        assert [sorted(e) for e in ours["Entries"]] == [sorted(e) for e in theirs["Entries"]] == [["EventId"]] * 2
        sent = ep.accepted
        assert len(sent) == 4
        strip = [{k: v for k, v in e.items() if k != "EventId"} for e in sent]
        assert strip[:2] == strip[2:]  # the same entries, Time included, as boto3 serializes them


@pytest.mark.parametrize("kind,code", [("throttle", "ThrottlingException"), ("internal", "InternalFailure"),
                                       ("auth", "UnrecognizedClientException")])
def test_errors_are_botocores_client_errors(kind: str, code: str) -> None:
    with FaultEndpoint(request_faults=[RequestFault(kind, first=1)]) as ep, \
            mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}):
        lean = make_client(Settings(region="us-east-1", endpoint_url=ep.endpoint_url))
        with pytest.raises(botocore.exceptions.ClientError) as err:
            lean.put_events(Entries=ENTRIES[1:])
        assert err.value.response["Error"]["Code"] == code
        assert lean.put_events(Entries=ENTRIES[1:])["FailedEntryCount"] == 0  # the connection recovers


@pytest.mark.parametrize("kind,exc", [("drop", botocore.exceptions.ConnectionClosedError),
                                      ("lose_response", botocore.exceptions.ConnectionClosedError)])
def test_lost_connections_are_botocores_connection_errors(kind: str, exc: type) -> None:
    with FaultEndpoint(request_faults=[RequestFault(kind, first=1)]) as ep, \
            mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}):
        lean = make_client(Settings(region="us-east-1", endpoint_url=ep.endpoint_url))
        with pytest.raises(exc):
            lean.put_events(Entries=ENTRIES[1:])
        assert lean.put_events(Entries=ENTRIES[1:])["FailedEntryCount"] == 0


def test_a_proxy_in_the_environment_sends_through_botocores_http_session() -> None:
    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "HTTP_PROXY": "http://127.0.0.1:9"}
    with mock.patch.dict("os.environ", env):
        lean = make_client(Settings(region="us-east-1", endpoint_url="http://127.0.0.1:4010"))
        assert isinstance(lean, PutEventsClient) and not lean.fast
    with mock.patch.dict("os.environ", {**env, "NO_PROXY": "127.0.0.1"}):
        assert make_client(Settings(region="us-east-1", endpoint_url="http://127.0.0.1:4010")).fast


def test_the_botocore_session_path_delivers_too() -> None:
    with FaultEndpoint() as ep, \
            mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}):
        lean = make_client(Settings(region="us-east-1", endpoint_url=ep.endpoint_url))
        lean.fast = False
        assert lean.put_events(Entries=ENTRIES)["FailedEntryCount"] == 0
        assert len(ep.accepted) == 2


# -- the HTTP/1.1 connection: what a server may answer, over TLS as AWS does

ANSWER = b'{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}'


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_an_https_endpoint_is_verified_against_the_ca_bundle(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    creds = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    with FaultEndpoint(tls=tls) as ep:
        assert ep.endpoint_url.startswith("https://")
        settings = Settings(region="us-east-1", endpoint_url=ep.endpoint_url)
        with mock.patch.dict("os.environ", {**creds, "AWS_CA_BUNDLE": str(cert)}):
            lean = make_client(settings)
            assert isinstance(lean, PutEventsClient) and lean.fast
            assert lean.put_events(Entries=ENTRIES)["FailedEntryCount"] == 0
            assert lean.put_events(Entries=ENTRIES[1:])["FailedEntryCount"] == 0
        assert len(ep.accepted) == 3
        with mock.patch.dict("os.environ", creds):
            os.environ.pop("AWS_CA_BUNDLE", None)
            untrusted = make_client(settings)
            with pytest.raises(botocore.exceptions.SSLError):
                untrusted.put_events(Entries=ENTRIES)
        assert len(ep.accepted) == 3


class ScriptedServer:
    """A local HTTP server that answers each request with the next scripted bytes, sent in
    the pieces given (a piece may be ``CLOSE``: the server closes the connection there)."""

    CLOSE = b""

    def __init__(self, answers: list[list[bytes]]) -> None:
        self.answers = list(answers)
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._answer_all(conn)

    def _answer_all(self, conn: socket.socket) -> None:
        buf = b""
        while self.answers:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(buf) < length:
                buf += conn.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
            for piece in self.answers.pop(0):
                if piece == self.CLOSE:
                    return
                conn.sendall(piece)
                time.sleep(0.01)  # separate reads on the client's side

    def close(self) -> None:
        self._sock.close()
        self._thread.join(timeout=5)


def _client(url: str, read_timeout: float = 5.0) -> PutEventsClient:
    with mock.patch.dict("os.environ", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}):
        client = make_client(Settings(region="us-east-1", endpoint_url=url))
    assert isinstance(client, PutEventsClient) and client.fast
    client._timeouts = (5.0, read_timeout)
    return client


def _ok(headers: bytes = b"", body: bytes = ANSWER) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n" + headers + \
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def test_answers_in_pieces_interim_and_chunked_are_read_whole_on_one_connection() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-amzn-RequestId: r-2\r\n\r\n"
               + b"10;ext=1\r\n" + ANSWER[:16] + b"\r\n" + f"{len(ANSWER) - 16:x}".encode() + b"\r\n"
               + ANSWER[16:] + b"\r\n0\r\nTrailer: t\r\n\r\n")
    whole = _ok()
    server = ScriptedServer([
        [whole[:7], whole[7:40], whole[40:]],                              # split mid-line
        [b"HTTP/1.1 100 Continue\r\n\r\n", chunked[:30], chunked[30:]],    # interim answer, then chunks
        [_ok(b"X-Amzn-ErrorType: none\r\n")],
    ])
    try:
        client = _client(server.url)
        for _ in range(3):
            assert client.put_events(Entries=ENTRIES[1:]) == json.loads(ANSWER)
        assert server.connections == 1  # kept alive throughout
        request = server.requests[0]
        assert request.startswith(b"POST / HTTP/1.1\r\n")
        body = request.partition(b"\r\n\r\n")[2]
        assert json.loads(body) == {"Entries": [ENTRIES[1]]}
        assert b"\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x/" in request
    finally:
        server.close()


def test_connection_close_and_http10_answers_end_the_connection() -> None:
    http10 = b"HTTP/1.0 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n\r\n" + ANSWER
    server = ScriptedServer([[_ok(b"Connection: close\r\n")], [http10, ScriptedServer.CLOSE], [_ok()]])
    try:
        client = _client(server.url)
        for _ in range(3):
            assert client.put_events(Entries=ENTRIES[1:])["FailedEntryCount"] == 0
        assert server.connections == 3
    finally:
        server.close()


def test_a_cut_answer_is_a_closed_connection_and_a_slow_one_a_read_timeout() -> None:
    whole = _ok()
    server = ScriptedServer([[whole[:-5], ScriptedServer.CLOSE], [b"garbage\r\n\r\n", ScriptedServer.CLOSE],
                             [_ok()], [b"HTTP/1.1 200 OK\r\n"], [_ok()]])
    try:
        client = _client(server.url, read_timeout=0.3)
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            client.put_events(Entries=ENTRIES[1:])
        with pytest.raises(botocore.exceptions.ConnectionClosedError):
            client.put_events(Entries=ENTRIES[1:])
        assert client.put_events(Entries=ENTRIES[1:])["FailedEntryCount"] == 0
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            client.put_events(Entries=ENTRIES[1:])
        assert client.put_events(Entries=ENTRIES[1:])["FailedEntryCount"] == 0
        assert server.connections == 4  # each failure dropped its connection; the answer after it reused one
    finally:
        server.close()
