"""The delivered state in the warehouse: where it lives, how it is created and committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from dbt_eventbridge.project import DbtProject

_FAILED_INSERT_CHUNK = 1000


@dataclass(frozen=True)
class StateTables:
    """Relations of one sync, all in the state schema, named after the (unique) sync name."""

    state: Any
    plan: Any
    failed: Any
    state_name: str  # quoted identifier alone, for correlated SQL

    @classmethod
    def for_sync(cls, project: DbtProject, schema: str, sync_name: str) -> "StateTables":
        name = sync_name.lower()
        return cls(state=project.state_relation(schema, name),
                   plan=project.state_relation(schema, f"{name}__plan"),
                   failed=project.state_relation(schema, f"{name}__failed"),
                   state_name=project.quote(name))


def exists(project: DbtProject, relation: Any) -> bool:
    return project.adapter.get_relation(relation.database, relation.schema, relation.identifier) is not None


def drop(project: DbtProject, relation: Any) -> None:
    project.execute(f"drop table if exists {relation}")


def ensure_schema(project: DbtProject, tables: StateTables) -> None:
    with project.transaction():
        project.adapter.create_schema(tables.state.without_identifier())


def create_state_sql(project: DbtProject, tables: StateTables, model: Any, keys: list[str],
                     hash_columns: list[str], columns: list[str]) -> str:
    return project.render_macro("create_state_sql", state=tables.state, model=model, keys=keys,
                                hash_columns=hash_columns, columns=columns)


def commit(project: DbtProject, tables: StateTables, keys: list[str], failed_seqs: Iterable[int],
           create_sql: str | None = None) -> None:
    """Merge the delivered part of the plan into the state, atomically, then drop the plan.

    ``failed_seqs`` are the plan rows that were streamed but not accepted: they are kept
    out of the state so the next run finds them changed again. On a sync's first run
    ``create_sql`` creates the state table in the same transaction, so a failed first
    run leaves no state at all and the next run is a first run again (which matters
    for ``initial_sync: skip``).
    """
    drop(project, tables.failed)
    project.execute(f"create table {tables.failed} (_eb_seq bigint)")
    chunk: list[str] = []
    for seq in failed_seqs:
        chunk.append(f"({int(seq)})")
        if len(chunk) >= _FAILED_INSERT_CHUNK:
            project.execute(f"insert into {tables.failed} (_eb_seq) values {', '.join(chunk)}")
            chunk = []
    if chunk:
        project.execute(f"insert into {tables.failed} (_eb_seq) values {', '.join(chunk)}")
    statements = project.call("commit_sql", state=tables.state, state_name=tables.state_name,
                              plan=tables.plan, failed=tables.failed, keys=keys)
    with project.transaction():
        if create_sql:
            project.execute(create_sql)
        for sql in statements:
            project.execute(str(sql))
    drop(project, tables.plan)
    drop(project, tables.failed)
