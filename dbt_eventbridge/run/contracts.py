"""A sync's event contracts, from what dbt declares of its model and what the warehouse has."""

from __future__ import annotations

from typing import Any

from dbt_eventbridge.config.definitions import ColumnResolver, SyncConfig
from dbt_eventbridge.delivery.contracts import Column, EventContract, contracts
from dbt_eventbridge.delivery.render import detail_templates
from dbt_eventbridge.delivery.templates import environment
from dbt_eventbridge.errors import ConfigError, Problem
from dbt_eventbridge.warehouse.nodes import ModelNode


def model_columns(node: ModelNode, relation: list[tuple[str, str]]) -> list[Column]:
    """The relation's columns, typed as the model's contract declares them where it does (a
    YAML column matched as every other name is: exactly, else the one that differs by case)."""
    declared = {name: (data_type, not_null) for name, data_type, not_null in node.declared_columns}
    resolver = ColumnResolver(list(declared))
    out = []
    for name, data_type in relation:
        found = resolver.find(name)
        d_type, not_null = declared.get(found, (None, False)) if found is not None else (None, False)
        out.append(Column(name, d_type or data_type or "", nullable=not not_null, declared=bool(d_type)))
    return out


def contract_columns(node: ModelNode) -> list[tuple[str, str]] | None:
    """The columns of a model whose contract dbt enforces (each with its data_type): what it
    builds, known without the warehouse (a pull request's CI need not build the models)."""
    declared = [(n, t) for n, t, _ in node.declared_columns if t]
    if node.contract_enforced and declared and len(declared) == len(node.declared_columns):
        return declared
    return None


def sync_contracts(project: Any, node: ModelNode, sync: SyncConfig, relation: list[tuple[str, str]], *,
                   event_id_in_detail: bool, checked: bool = False) -> list[EventContract]:
    """Each event shape of ``sync`` with the JSON Schema of its detail (``checked``: the
    schemas rows are checked against, see delivery.contracts.column_schema)."""
    found = contracts(sync, model_columns(node, relation), detail_templates(sync, project.project_dir),
                      environment(text=False), event_id_in_detail=event_id_in_detail, checked=checked)
    if event_id_in_detail:
        for c in found:
            if c.detail.get("properties", {}).get("event_id", {}).get("description") != "the change's event_id":
                raise ConfigError([Problem(
                    "event_id_in_detail adds an 'event_id' field to the detail, but the detail already has a "
                    "field of that name", sync.model_name, sync.name, sync.yaml_path + ".detail",
                    "Rename the column in the detail (detail: {columns: {event_id: another_name}}), or unset "
                    "event_id_in_detail")])
    return found
