"""The lean PutEvents client: same signature as botocore's, same request and answers as boto3's."""

from __future__ import annotations

import datetime as dt
import json
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
