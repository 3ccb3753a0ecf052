"""An EventBridge client from the settings: default chain, profile, or an assumed role."""

from __future__ import annotations

from typing import Any

from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.errors import ConfigError, CredentialsError, Problem


def make_client(settings: Settings) -> Any:
    """The classic PutEvents client: our lean one (wire.py), or boto3's for a global endpoint."""
    session, cfg = _session(settings)
    client = _client(session, "events", settings.endpoint_url, cfg, "endpoint_url / --endpoint-url",
                     "https://events.us-east-1.amazonaws.com")
    if settings.endpoint_id:
        return GlobalEndpointClient(client, settings.endpoint_id)
    from dbt_eventbridge.delivery.wire import PutEventsClient

    return PutEventsClient.wrap(client, session.get_credentials())


def make_v2_client(settings: Settings, bus_arn: str) -> Any:
    """PutEvents on one Custom Event Bus (eventbridgev2: smithy-rpc-v2-cbor, SigV4): our lean
    client (wire_v2.py) over boto3's, which it falls back to behind a proxy. In the bus's own
    region, which its ARN names (the settings' region is for the classic buses)."""
    import botocore.config

    session, cfg = _session(settings)
    region = bus_arn.split(":")[3]
    client = _client(session, "eventbridgev2", settings.v2_endpoint_url,
                     cfg.merge(botocore.config.Config(region_name=region)), "v2_endpoint_url",
                     "https://eventsv2.us-east-1.amazonaws.com", region)
    from dbt_eventbridge.delivery.wire_v2 import V2Client

    return V2Client.for_bus(client, session.get_credentials(), bus_arn)


class GlobalEndpointClient:
    """PutEvents through a global endpoint: boto3's client with ``EndpointId``, which botocore
    signs with SigV4a (an ECDSA signature valid in every region of the endpoint). botocore
    does SigV4a only with the AWS CRT, which the ``global`` extra installs."""

    def __init__(self, boto_client: Any, endpoint_id: str) -> None:
        from botocore.compat import HAS_CRT

        if not HAS_CRT:
            raise ConfigError([Problem(
                f"endpoint_id {endpoint_id!r} needs SigV4a signing, which botocore does only with the AWS CRT, "
                "and it is not installed", path="vars.eventbridge.endpoint_id / DBT_EVENTBRIDGE_ENDPOINT_ID",
                fix="pip install 'dbt-eventbridge[global]' (it adds awscrt), or unset endpoint_id")])
        self._client = boto_client
        self.endpoint_id = endpoint_id
        self.meta = boto_client.meta

    def put_events(self, Entries: list[Any]) -> Any:
        return self._client.put_events(Entries=Entries, EndpointId=self.endpoint_id)


def make_schemas_client(settings: Settings) -> Any:
    """A boto3 client of the EventBridge Schema Registry (botocore's retries: a handful of
    calls, not a stream to pace)."""
    import botocore.config

    session, cfg = _session(settings)
    return _client(session, "schemas", settings.schemas_endpoint_url,
                   cfg.merge(botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 5})),
                   "schemas_endpoint_url", "https://schemas.us-east-1.amazonaws.com")


def _client(session: Any, service: str, endpoint_url: str | None, cfg: Any, path: str, example: str,
            region: str | None = None) -> Any:
    try:
        return session.client(service, endpoint_url=endpoint_url, config=cfg, region_name=region)
    except ValueError as e:  # botocore: "Invalid endpoint: ..."
        raise ConfigError([Problem(f"{e}", path=f"vars.eventbridge.{path}",
                                   fix=f"Give a URL such as {example}, or unset it")]) from None


def _session(settings: Settings) -> tuple[Any, Any]:
    """The boto3 session (default chain, profile or assumed role) and the client config."""
    import boto3
    import botocore.config
    import botocore.exceptions

    try:
        session = boto3.Session(profile_name=settings.aws_profile, region_name=settings.region)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError([Problem(f"the AWS profile '{settings.aws_profile}' is not in your AWS config",
                                   path="vars.eventbridge.aws_profile / --aws-profile",
                                   fix="Check ~/.aws/config or AWS_CONFIG_FILE, or unset aws_profile")]) from None
    region = session.region_name
    if not region:
        raise ConfigError([Problem("no AWS region is set", path="vars.eventbridge.region",
                                   fix="Set vars.eventbridge.region, DBT_EVENTBRIDGE_REGION, --region or AWS_REGION")])
    if settings.role_arn:
        session = _assumed_role_session(session, settings, region)
    cfg = botocore.config.Config(
        region_name=region,
        # One retry layer, ours (publish.py): it retries whole requests and failed entries
        # with backoff, and it must see every throttle to slow the request rate down.
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(10, settings.concurrency + 2),
        connect_timeout=5, read_timeout=30, tcp_keepalive=True,
    )
    return session, cfg


def _assumed_role_session(base: Any, settings: Settings, region: str) -> Any:
    """A session whose credentials come from sts:AssumeRole and refresh before they expire."""
    import boto3
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    source = base.get_credentials()
    if source is None:
        raise CredentialsError("no AWS credentials were found to assume the role with",
                               fix="Configure credentials for the source identity (environment, profile, SSO "
                                   "or instance role)")
    extra: dict[str, Any] = {"RoleSessionName": settings.role_session_name,
                             "DurationSeconds": settings.role_duration_seconds}
    if settings.external_id:
        extra["ExternalId"] = settings.external_id

    def client_creator(service: str, **kwargs: Any) -> Any:
        return base.client(service, region_name=region, endpoint_url=settings.endpoint_url, **kwargs)

    fetcher = AssumeRoleCredentialFetcher(client_creator=client_creator, source_credentials=source,
                                          role_arn=settings.role_arn, extra_args=extra)
    creds = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)
    bs = botocore.session.Session()
    bs._credentials = creds  # botocore has no public setter for refreshable credentials
    return boto3.Session(botocore_session=bs, region_name=region)
