"""An EventBridge client from the settings: default chain, profile, or an assumed role."""

from __future__ import annotations

from typing import Any

from dbt_eventbridge.config.settings import Settings
from dbt_eventbridge.errors import ConfigError, CredentialsError, Problem


def make_client(settings: Settings) -> Any:
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
    try:
        client = session.client("events", endpoint_url=settings.endpoint_url, config=cfg)
    except ValueError as e:  # botocore: "Invalid endpoint: ..."
        raise ConfigError([Problem(f"{e}", path="vars.eventbridge.endpoint_url / --endpoint-url",
                                   fix="Give a URL such as https://events.us-east-1.amazonaws.com, or unset it")]
                          ) from None
    from dbt_eventbridge.delivery.wire import PutEventsClient

    return PutEventsClient.wrap(client, session.get_credentials())


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
