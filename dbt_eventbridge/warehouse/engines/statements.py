"""The SQL text the warehouse stages run, in one place: short statements on our own tables.

Every statement dbt-eventbridge runs comes from here or from a dispatched macro in
``macros/`` (the diff, the commit, types, DDL: what differs between warehouses). These are
the statements every engine runs as written: single-table reads, inserts, updates and
deletes on the state, ownership, lock, layout and history tables. An engine whose dialect
differs overrides a method in a subclass named by its engine module (SQLMesh's engine
adapters work the same way), never with a branch here.

Why Python rather than macros for these: they run several times per sync on every run
(the lock, the layouts, the counts: about 40 per sync), and a dbt macro call costs 4.8 ms
of CPU (dbt's macro context and Jinja; measured 2026-12-01 on DuckDB, ``render_macro('now_sql')``
300 times in the unit lane's engine fixture) against 0.7 us for one of these; the macros are
kept for what differs between engines.

Identifiers come in as rendered relations (quoted by the adapter) or names we made (``_eb_``
columns); values always go through the engine's literal(), never into SQL as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any


class Statements:
    def __init__(self, literal: Callable[[Any], str]) -> None:
        self.lit = literal

    # -- generic ---------------------------------------------------------------------------
    def count(self, relation: Any) -> str:
        return f"select count(*) from {relation}"

    def select(self, relation: Any, columns: Sequence[str], **equal: Any) -> str:
        """Columns of the rows whose columns equal the given values (all rows without any)."""
        return f"select {', '.join(columns)} from {relation}" + (f" where {self._equal(equal)}" if equal else "")

    def renamed(self, relation: Any, columns: Sequence[tuple[str, str]]) -> str:
        """A subquery of the relation with (expression, name) columns, to read or copy as a table."""
        return f"(select {', '.join(f'{e} as {n}' for e, n in columns)} from {relation})"

    def all_of(self, source: Any) -> str:
        """Every row and column of a relation or subquery."""
        return f"select * from {source} as src"

    def cast(self, expression: str, type_sql: str) -> str:
        return f"cast({expression} as {type_sql})"

    def drop_table(self, relation: Any, if_exists: bool = False) -> str:
        return f"drop table {'if exists ' if if_exists else ''}{relation}"

    def create_table_as(self, relation: Any, select_sql: str, temporary: bool = False) -> str:
        return f"create {'temporary ' if temporary else ''}table {relation} as {select_sql}"

    def drop_temp(self, relation: Any) -> str:
        """A dry run's plan (see Engine.temp_relation), once read."""
        return self.drop_table(relation, if_exists=True)

    def insert_values(self, relation: Any, row: Mapping[str, Any], kinds: Mapping[str, str] | None = None) -> str:
        """One row; ``kinds`` (column: string, int, bigint, float or timestamp) types the text
        of a timestamp, which Spark will not store in a TIMESTAMP column as it is."""
        values = [self.typed(v, (kinds or {}).get(c, "")) for c, v in row.items()]
        return f"insert into {relation} ({', '.join(row)}) values ({', '.join(values)})"

    def typed(self, value: Any, kind: str) -> str:
        literal = self.lit(value)
        return f"cast({literal} as timestamp)" if kind == "timestamp" and value is not None else literal

    def delete_where(self, relation: Any, **equal: Any) -> str:
        return self.delete(relation, self._equal(equal))

    # Every UPDATE and DELETE of ours is made by these two, so an engine whose tables have
    # neither (Spark's plain tables) rewrites them in one place.
    def update(self, relation: Any, sets: Mapping[str, str], where: str) -> str:
        """Set columns (to SQL expressions) of the rows where ``where`` holds."""
        return f"update {relation} set {', '.join(f'{k} = {v}' for k, v in sets.items())} where {where}"

    def delete(self, relation: Any, where: str) -> str:
        return f"delete from {relation} where {where}"

    def _equal(self, equal: Mapping[str, Any]) -> str:
        return " and ".join(f"{k} = {self.lit(v)}" for k, v in equal.items())

    # -- ownership (_eb_objects) -----------------------------------------------------------
    def touch_object(self, objects: Any, name: str, epoch: int, kind: str, sync: str) -> str | None:
        """Renew the row of a table listed already (None: the row as it is will do)."""
        return self.update(objects, {"kind": self.lit(kind), "sync_name": self.lit(sync),
                                     "created_epoch": str(int(epoch))}, f"name = {self.lit(name)}")

    def forget_object(self, objects: Any, name: str) -> str | None:
        """After a table of ours was dropped (None: its row stays, harmless: see Ownership)."""
        return self.delete_where(objects, name=name)

    # -- the lock (_eb_lock__<sync>) ----------------------------------------------------------
    def create_lock(self, lock: Any, owner: str, host: str, pid: int, epoch: int) -> str:
        """The lock, held: creating a table of a given name succeeds once, on every warehouse
        (a primary key is not enforced on Snowflake, BigQuery, Redshift or Spark)."""
        return (f"create table {lock} as select {self.lit(owner)} as owner, {self.lit(host)} as host, "
                f"cast({int(pid)} as bigint) as pid, cast({int(epoch)} as bigint) as heartbeat_epoch")

    def lock_beat(self, lock: Any, owner: str, epoch: int) -> str:
        return self.update(lock, {"heartbeat_epoch": str(int(epoch))}, f"owner = {self.lit(owner)}")

    # -- layouts (_eb_layouts) -------------------------------------------------------------
    def layout_set(self, layouts: Any, sync: str, sets: Mapping[str, Any]) -> str:
        """Set columns of one sync's row (none when it has no row)."""
        return self.update(layouts, {k: self.lit(v) for k, v in sets.items()}, f"sync_name = {self.lit(sync)}")

    def layout_upsert(self, layouts: Any, sync: str, sets: Mapping[str, Any]) -> list[str]:
        """Set columns of one sync's row, inserting the row when it is missing."""
        name = self.lit(sync)
        return [self.layout_set(layouts, sync, sets),
                f"insert into {layouts} (sync_name, {', '.join(sets)}) "
                f"select {name}, {', '.join(self.lit(v) for v in sets.values())} "
                f"where not exists (select 1 from {layouts} where sync_name = {name})"]

    def layout_forget_unused(self, layouts: Any, sync: str) -> str:
        """A row that never got a committed layout."""
        return self.delete(layouts, f"sync_name = {self.lit(sync)} and layout is null and committed_epoch is null")

    # -- plan and acks ---------------------------------------------------------------------
    def create_acks(self, acks: Any) -> str:
        return f"create table {acks} (_eb_seq bigint)"

    def ack_unsent(self, acks: Any, plan: Any, send_ops: Sequence[str]) -> str:
        """Ack every plan row whose op is not sent (recorded without sending)."""
        ops = ", ".join(self.lit(op) for op in send_ops) or "''"
        return f"insert into {acks} (_eb_seq) select _eb_seq from {plan} where _eb_op not in ({ops})"

    def ack_totals(self, acks: Any) -> str:
        return f"select count(*), sum(_eb_seq) from {acks}"

    def distinct_shapes(self, state: Any) -> str:
        return f"select distinct _eb_shape from {state}"

    def op_counts(self, plan: Any) -> str:
        return f"select _eb_op, count(*) from {plan} as p group by _eb_op"

    def any_row(self, select_sql: str) -> str:
        """One row if the select has any, else none."""
        return f"select 1 from ({select_sql}) as p limit 1"

    def duplicate_key_groups(self, plan: Any, keys: Sequence[str]) -> str:
        k = ", ".join(keys)
        return f"select count(*) from (select {k} from {plan} as p group by {k} having count(*) > 1) as d"

    def plan_changes(self, source_sql: str, ops: Iterable[str], columns: Sequence[str], old_columns: Sequence[str],
                     old_rows: bool, seq_range: tuple[int, int] | None) -> str:
        """The plan's rows of some ops (optionally seq in (lo, hi]): the model's values, and the
        delivered ones (``old_columns``) for every row, or only for removed rows (``old_rows`` off)."""
        # The delivered values cross the wire only where they are used: they are the payload of
        # a removed row; for changed rows they give old_row and changed_columns, read only when
        # a template uses them.
        cols = [f"p.{c}" for c in columns]
        if old_rows:
            cols += [f"p.{c}" for c in old_columns]
        else:
            cols += [f"case when p._eb_op = 'removed' then p.{c} end as {c}" for c in old_columns]
        sql = (f"select p._eb_seq, p._eb_op, p._eb_hash, p._eb_shape, {', '.join(cols)} from {source_sql} as p "
               f"where p._eb_op in ({', '.join(self.lit(op) for op in ops)})")
        if seq_range is not None:
            sql += f" and p._eb_seq > {int(seq_range[0])} and p._eb_seq <= {int(seq_range[1])}"
        return sql

    # -- format 1 state (before typed state), migrated on the first run ---------------------
    def legacy_apply_journal(self, state: Any, state_identifier: str, plan: Any, acks: Any, keys: Sequence[str],
                             row_column: str, now_sql: str) -> list[str]:
        """Merge a version 1 run's acked plan rows into its state."""
        done = f"(select * from {plan} as p where exists (select 1 from {acks} as a where a._eb_seq = p._eb_seq))"
        match = " and ".join(f"d.{k} = {state_identifier}.{k}" for k in keys)
        cols = ", ".join(keys)
        return [f"delete from {state} using {done} as d where {match}",
                f"insert into {state} ({cols}, _eb_hash, {row_column}, _eb_delivered_at) select {cols}, _eb_hash, "
                f"{row_column}, {now_sql} from {done} as d where d._eb_op <> 'removed'"]

    # -- run history (_eb_runs, _eb_events, _eb_alert_status) -------------------------------
    def mark_interrupted(self, runs: Any, sync: str, run_id: str) -> str:
        message = "the run was stopped before it finished; the next run recorded what it had delivered"
        return self.update(runs, {"status": self.lit("interrupted"), "exit_code": "2", "message": self.lit(message)},
                           f"sync_name = {self.lit(sync)} and status = 'running' and run_id <> {self.lit(run_id)}")

    def delete_before(self, relation: Any, column: str, cutoff: str) -> str:
        return self.delete(relation, f"{column} < {self.lit(cutoff)}")

    def recent_runs(self, runs: Any, columns: Sequence[str], sync: str | None, limit: int) -> str:
        where = f" where sync_name = {self.lit(sync)}" if sync else ""
        return (f"select {', '.join(columns)} from {runs}{where} "
                f"order by started_at desc, sync_name limit {int(limit)}")

    def run_ids_like(self, runs: Any, prefix: str) -> str:
        return f"select distinct run_id from {runs} where run_id like {self.lit(prefix.replace('%', '') + '%')}"

    def run_rows(self, runs: Any, columns: Sequence[str], run_id: str) -> str:
        return (f"select {', '.join(columns)} from {runs} where run_id = {self.lit(run_id)} "
                "order by started_at, sync_name")

    def event_counts(self, events: Any, run_id: str) -> str:
        """Events per sync, op and answer, with the retries they took: the attempts after each
        event's first (a row never sent, that could not be rendered, has none)."""
        return ("select sync_name, op, error_code, count(*) as events, "
                "sum(case when attempts > 1 then attempts - 1 else 0 end) as retries, "
                f"min(sent_at) as first_at, max(sent_at) as last_at from {events} "
                f"where run_id = {self.lit(run_id)} group by sync_name, op, error_code "
                "order by sync_name, op, error_code")

    def run_events(self, events: Any, columns: Sequence[str], run_id: str, failed_only: bool, limit: int,
                   accepted_only: bool = False, sync: str | None = None) -> str:
        failed = " and error_code is not null" if failed_only else " and error_code is null" if accepted_only else ""
        if sync is not None:
            failed += f" and sync_name = {self.lit(sync)}"
        return (f"select {', '.join(columns)} from {events} where run_id = {self.lit(run_id)}{failed} "
                f"order by sent_at, sync_name, event_key limit {int(limit)}")

    def timeline(self, events: Any, run_id: str, second: str) -> str:
        """Events per second of each sync of a run; ``second`` truncates sent_at (a macro's SQL)."""
        return (f"select sync_name, {second} as second, sum(case when error_code is null then 1 else 0 end) as sent, "
                f"sum(case when error_code is null then 0 else 1 end) as rejected from {events} "
                f"where run_id = {self.lit(run_id)} group by sync_name, {second} order by sync_name, second")

    def any_event_key(self, events: Any, sync: str) -> str:
        return f"select event_key from {events} where sync_name = {self.lit(sync)} limit 1"

    def key_history(self, events: Any, columns: Sequence[str], sync: str, keys: Sequence[str], limit: int) -> str:
        listed = ", ".join(self.lit(k) for k in keys)
        return (f"select {', '.join(columns)} from {events} where sync_name = {self.lit(sync)} "
                f"and event_key in ({listed}) order by sent_at limit {int(limit)}")

    def last_success(self, runs: Any, sync: str) -> str:
        return (f"select max(finished_at) from {runs} where sync_name = {self.lit(sync)} "
                "and status in ('success', 'partial')")

    def first_run(self, runs: Any, sync: str) -> str:
        return f"select min(started_at) from {runs} where sync_name = {self.lit(sync)}"
