"""Event contracts in the EventBridge Schema Registry: registered, and read back to compare."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dbt_eventbridge.errors import CredentialsError, EndpointError

AUTH_CODES = ("AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
              "ExpiredTokenException", "ForbiddenException", "UnauthorizedException")


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    action: str  # "created", "updated" (a new version), "unchanged"


class SchemaRegistry:
    """One registry, through a boto3 ``schemas`` client."""

    def __init__(self, client: Any, registry: str) -> None:
        self.client = client
        self.registry = registry

    def _call(self, op: str, **kwargs: Any) -> Any:
        import botocore.exceptions as bx

        try:
            return getattr(self.client, op)(**kwargs)
        except bx.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in AUTH_CODES or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (401, 403):
                msg = str(e.response.get("Error", {}).get("Message", "")).split("\n", 1)[0]
                raise CredentialsError(f"the Schema Registry refused {op}: {code} ({msg})",
                                       fix="Allow schemas:DescribeRegistry, CreateRegistry, DescribeSchema, "
                                           "CreateSchema and UpdateSchema for this role") from None
            raise
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                bx.ConnectionClosedError) as e:
            raise EndpointError(f"could not reach the Schema Registry: {e}",
                                fix="Check schemas_endpoint_url / the region and the network") from None

    @staticmethod
    def _missing(e: Exception) -> bool:
        return bool(getattr(e, "response", {}).get("Error", {}).get("Code") == "NotFoundException")

    def ensure_registry(self) -> bool:
        """Creates the registry unless it exists; True when it was created."""
        import botocore.exceptions as bx

        try:
            self._call("describe_registry", RegistryName=self.registry)
            return False
        except bx.ClientError as e:
            if not self._missing(e):
                raise
        try:
            self._call("create_registry", RegistryName=self.registry,
                       Description="Event contracts registered by dbt-eventbridge")
        except bx.ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ConflictException":  # created meanwhile
                raise
        return True

    def latest(self, name: str) -> tuple[str, str] | None:
        """(content, version) of the schema's latest version, or None."""
        import botocore.exceptions as bx

        try:
            r = self._call("describe_schema", RegistryName=self.registry, SchemaName=name)
        except bx.ClientError as e:
            if self._missing(e):
                return None
            raise
        return str(r.get("Content", "")), str(r.get("SchemaVersion", ""))

    def register(self, name: str, content: str, fmt: str, description: str) -> Registered:
        """A new version only when the content changed (compared as JSON, not as text)."""
        now = self.latest(name)
        if now is None:
            r = self._call("create_schema", RegistryName=self.registry, SchemaName=name, Type=fmt, Content=content,
                           Description=description[:256])
            return Registered(name, str(r.get("SchemaVersion", "1")), "created")
        old, version = now
        try:
            same = json.loads(old) == json.loads(content)
        except ValueError:
            same = False
        if same:
            return Registered(name, version, "unchanged")
        r = self._call("update_schema", RegistryName=self.registry, SchemaName=name, Type=fmt, Content=content,
                       Description=description[:256])
        return Registered(name, str(r.get("SchemaVersion", "")), "updated")
