{#-
  The diff, the state and the commit, as SQL text that the Python side runs.

  State (one table per sync): the key columns, _eb_hash (fingerprint of the delivered
  values), _eb_row (the delivered values as JSON, for `removed` events and `old_row`) and
  _eb_delivered_at. It only ever holds what EventBridge accepted.

  Plan (one table per sync and run): every change, numbered by _eb_seq, with the values
  that will be sent. Acks (one per plan): the _eb_seq of every plan row that needs no
  more sending: accepted by EventBridge, or never to be sent (trigger off, re-baselined).
  Acks are journaled as they arrive; committing merges acked plan rows into the state,
  so the state records what was sent even if the model is rebuilt in between, and a run
  that was killed is completed by the next one from its plan and acks.

  Arguments: relations are rendered relations; `keys`, `columns` (every model column),
  `hash_columns` are quoted identifiers, `columns`/`hash_columns` sorted by name.
-#}

{#- The state table takes its key types from the plan it is first committed from. -#}
{% macro create_state_sql(state, plan, keys) -%}
  {{ return(adapter.dispatch('create_state_sql', 'dbt_eventbridge')(state, plan, keys)) }}
{%- endmacro %}

{% macro default__create_state_sql(state, plan, keys) -%}
create table {{ state }} as
select {% for k in keys %}p.{{ k }}, {% endfor %}p._eb_hash, p._eb_row, {{ dbt.current_timestamp() }} as _eb_delivered_at
from {{ plan }} as p
where 1 = 0
{%- endmacro %}

{#- A query shaped like the state with no rows: what a first run diffs against. -#}
{% macro empty_state_sql(model, keys, hash_columns, columns) -%}
select {% for k in keys %}src.{{ k }}, {% endfor -%}
  {{ dbt_eventbridge.row_hash(hash_columns, 'src') }} as _eb_hash,
  {{ dbt_eventbridge.row_json('src', columns) }} as _eb_row,
  {{ dbt.current_timestamp() }} as _eb_delivered_at
from {{ model }} as src
where 1 = 0
{%- endmacro %}


{#- One scan: rows with a NULL in a key column, and rows whose key is not unique. -#}
{% macro key_audit_sql(model, keys) -%}
  {{ return(adapter.dispatch('key_audit_sql', 'dbt_eventbridge')(model, keys)) }}
{%- endmacro %}

{% macro default__key_audit_sql(model, keys) -%}
select
  (select count(*) from {{ model }} where {% for k in keys %}{{ k }} is null{{ " or " if not loop.last }}{% endfor %}) as null_key_rows,
  (select coalesce(sum(n), 0) from (
     select count(*) as n from {{ model }}
     where {% for k in keys %}{{ k }} is not null{{ " and " if not loop.last }}{% endfor %}
     group by {{ keys | join(", ") }} having count(*) > 1) d) as duplicate_key_rows,
  (select count(*) from {{ model }}) as total_rows
{%- endmacro %}

{#- The key audit in one pass: rows with a NULL in a key column, all rows, and distinct
    non-NULL keys (equal to the non-NULL rows when no key repeats). -#}
{% macro key_counts_sql(model, keys) -%}
select
  sum(case when {% for k in keys %}{{ k }} is null{{ " or " if not loop.last }}{% endfor %} then 1 else 0 end) as null_key_rows,
  count(*) as total_rows,
  (select count(*) from (select distinct {{ keys | join(", ") }} from {{ model }}
     where {% for k in keys %}{{ k }} is not null{{ " and " if not loop.last }}{% endfor %}) d) as distinct_keys
from {{ model }}
{%- endmacro %}

{#- The same in two steps, when the one pass ran out of memory on DuckDB, whose memory is
    capped (see duckdb_memory_limit): a distinct count of many millions of keys does not fit
    in it, so the keys are counted per hash partition of `key_distinct_rows_per_part` keys. -#}
{% macro key_totals_sql(model, keys) -%}
select
  sum(case when {% for k in keys %}{{ k }} is null{{ " or " if not loop.last }}{% endfor %} then 1 else 0 end) as null_key_rows,
  count(*) as total_rows
from {{ model }}
{%- endmacro %}

{% macro key_distinct_sql(model, keys, part, parts) -%}
select count(*) from (select distinct {{ keys | join(", ") }} from {{ model }}
  where {% for k in keys %}{{ k }} is not null and {% endfor %}hash({{ keys | join(", ") }}) % {{ parts }} = {{ part }}) as d
{%- endmacro %}

{#- 0: no partitioning (the warehouse has the memory). -#}
{% macro key_distinct_rows_per_part() -%}
  {{ return(adapter.dispatch('key_distinct_rows_per_part', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__key_distinct_rows_per_part() -%}{{ return(0) }}{%- endmacro %}
{% macro duckdb__key_distinct_rows_per_part() -%}{{ return(1000000) }}{%- endmacro %}

{% macro duplicate_keys_sql(model, keys, limit) -%}
select {{ keys | join(", ") }}, count(*) as n from {{ model }}
where {% for k in keys %}{{ k }} is not null{{ " and " if not loop.last }}{% endfor %}
group by {{ keys | join(", ") }} having count(*) > 1
order by {{ keys | join(", ") }}
limit {{ limit }}
{%- endmacro %}


{#- Every change between the model and the state (a relation, or a query in parentheses). -#}
{#- `compare_columns`: when the tracked columns changed since the state was written, the
    columns the stored hashes were computed on; rows equal on those are re-baselined (the
    state takes the new hash, nothing is sent). `rebaseline_all`: the hash expression
    changed, stored hashes cannot be compared; every present row is re-baselined.
    `has_duplicates`: the key audit found duplicated keys; without them (the usual case)
    the plan skips the duplicate handling, a grouping of the whole model and two anti-joins.
    The join compares keys and hashes only; values (the model's columns, the delivered
    JSON) are fetched afterwards for the changed rows alone, so the join does not carry
    every delivered row's JSON. -#}
{% macro plan_select_sql(model, state, keys, columns, hash_columns, full_refresh=false, compare_columns=none, rebaseline_all=false, has_duplicates=true) -%}
  {{ return(adapter.dispatch('plan_select_sql', 'dbt_eventbridge')(model, state, keys, columns, hash_columns, full_refresh, compare_columns, rebaseline_all, has_duplicates)) }}
{%- endmacro %}

{#- DuckDB carries the model's columns through the join (one scan of the model, 35% faster
    than joining back for the changed rows); its row_json_columns builds the JSON from them. -#}
{% macro duckdb__plan_select_sql(model, state, keys, columns, hash_columns, full_refresh, compare_columns, rebaseline_all, has_duplicates=true) -%}
  {{ return(dbt_eventbridge.default__plan_select_sql(model, state, keys, columns, hash_columns, full_refresh, compare_columns, rebaseline_all, has_duplicates, carry=true)) }}
{%- endmacro %}

{% macro default__plan_select_sql(model, state, keys, columns, hash_columns, full_refresh, compare_columns, rebaseline_all, has_duplicates=true, carry=false) -%}
{%- set non_keys = [] -%}
{%- for c in columns if c not in keys -%}{%- do non_keys.append(c) -%}{%- endfor -%}
with {% if has_duplicates -%}
dup as (
  select {{ keys | join(", ") }} from {{ model }}
  where {% for k in keys %}{{ k }} is not null{{ " and " if not loop.last }}{% endfor %}
  group by {{ keys | join(", ") }} having count(*) > 1
),
{% endif -%}
m as (
  select {% for k in keys %}src.{{ k }}, {% endfor -%}
    {%- if carry %}{% for c in non_keys %}src.{{ c }}, {% endfor %}{% endif -%}
    {{ dbt_eventbridge.row_hash(hash_columns, 'src') }} as _eb_hash
    {%- if compare_columns %},
    {{ dbt_eventbridge.row_hash(compare_columns, 'src') }} as _eb_cmp_hash
    {%- endif %}
  from {{ model }} as src
  where {% for k in keys %}src.{{ k }} is not null{{ " and " if not loop.last or has_duplicates }}{% endfor -%}
    {%- if has_duplicates %}
    not exists (select 1 from dup where {{ dbt_eventbridge._match(keys, 'dup', 'src') }})
    {%- endif %}
),
s as (
  select {% for k in keys %}{{ k }}, {% endfor %}_eb_hash from {{ state }} as st
),
d as (
  select {% for k in keys %}coalesce(m.{{ k }}, s.{{ k }}) as {{ k }}, {% endfor %}
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null {%- if full_refresh %} or 1 = 1{% endif %} then 'added'
         {%- if rebaseline_all %}
         else 'rebaseline'
         {%- elif compare_columns %}
         when m._eb_cmp_hash = s._eb_hash then 'rebaseline'
         else 'changed'
         {%- else %}
         else 'changed'
         {%- endif %} end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash
    {%- if carry %}{% for c in non_keys %},
    m.{{ c }}{% endfor %}{% endif %}
  from m full outer join s on {{ dbt_eventbridge._match(keys, 'm', 's') }}
  where s._eb_hash is null
     or (m._eb_hash is null
         {%- if has_duplicates %} and not exists (select 1 from dup where {{ dbt_eventbridge._match(keys, 'dup', 's') }}){% endif %})
     or m._eb_hash <> s._eb_hash
     {%- if full_refresh %} or m._eb_hash is not null{% endif %}
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  coalesce(d._eb_new_hash, d._eb_old_hash) as _eb_hash,
  old._eb_row as _eb_old_row,
  {%- if carry %}
  case when d._eb_op = 'removed' then null else {{ dbt_eventbridge.row_json_columns('d', columns) }} end as _eb_row,
  {%- else %}
  case when d._eb_op = 'removed' then null else {{ dbt_eventbridge.row_json('src', columns) }} end as _eb_row,
  {%- endif %}
  {% for k in keys %}d.{{ k }}{{ ", " if not loop.last or non_keys }}{% endfor %}
  {% for c in non_keys %}{{ 'd' if carry else 'src' }}.{{ c }}{{ ", " if not loop.last }}{% endfor %}
from d
{%- if not carry %}
left join {{ model }} as src on {{ dbt_eventbridge._match(keys, 'd', 'src') }} and d._eb_op <> 'removed'
{%- endif %}
left join {{ state }} as old on {{ dbt_eventbridge._match(keys, 'd', 'old') }} and d._eb_op <> 'added'
{%- endmacro %}


{#- Statements that merge the acked part of a plan into the state, in one transaction.
    Plan rows without an ack (rejected, or not sent yet) stay as they were, so they come back. -#}
{#- `all_acked`: every plan row is acknowledged (the usual end of a run); the merge then
    reads the plan alone instead of joining it with its acks. -#}
{% macro commit_sql(state, state_name, plan, acks, keys, all_acked=false) -%}
  {{ return(adapter.dispatch('commit_sql', 'dbt_eventbridge')(state, state_name, plan, acks, keys, all_acked)) }}
{%- endmacro %}

{#- `state_name` is the state table's quoted identifier alone, to correlate on. -#}
{% macro default__commit_sql(state, state_name, plan, acks, keys, all_acked=false) -%}
{%- set done -%}
{%- if all_acked -%}
(select * from {{ plan }} as p)
{%- else -%}
(select * from {{ plan }} as p where exists (select 1 from {{ acks }} as a where a._eb_seq = p._eb_seq))
{%- endif -%}
{%- endset -%}
{%- set cond = [] -%}
{%- for k in keys %}{% do cond.append("d." ~ k ~ " = " ~ state_name ~ "." ~ k) %}{% endfor -%}
{%- set delete_sql -%}
delete from {{ state }} using {{ done }} as d where {{ cond | join(" and ") }}
{%- endset -%}
{%- set insert_sql -%}
insert into {{ state }} ({{ keys | join(", ") }}, _eb_hash, _eb_row, _eb_delivered_at)
select {{ keys | join(", ") }}, _eb_hash, _eb_row, {{ dbt.current_timestamp() }}
from {{ done }} as d where d._eb_op <> 'removed'
{%- endset -%}
{{ return([delete_sql, insert_sql]) }}
{%- endmacro %}

{% macro _match(keys, a, b) -%}
{% for k in keys %}{{ a }}.{{ k }} = {{ b }}.{{ k }}{{ " and " if not loop.last }}{% endfor %}
{%- endmacro %}

{#- Journal acks: `runs` is a list of [first, last] _eb_seq ranges (acks arrive mostly in
    runs); one row per _eb_seq is inserted. Where the warehouse can expand ranges itself,
    a run costs one tuple of SQL instead of one per row. -#}
{% macro ack_insert_sql(acks, runs) -%}
  {{ return(adapter.dispatch('ack_insert_sql', 'dbt_eventbridge')(acks, runs)) }}
{%- endmacro %}
{% macro default__ack_insert_sql(acks, runs) -%}
insert into {{ acks }} (_eb_seq) values
{%- for r in runs %}{% for s in range(r[0], r[1] + 1) %} ({{ s }}){{ "," if not loop.last }}{% endfor %}{{ "," if not loop.last }}{% endfor %}
{%- endmacro %}
{#- How many _eb_seq one ack_insert_sql may cover: the default spells out every value. -#}
{% macro ack_insert_max_rows() -%}
  {{ return(adapter.dispatch('ack_insert_max_rows', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__ack_insert_max_rows() -%}{{ return(1000) }}{%- endmacro %}
{% macro duckdb__ack_insert_max_rows() -%}{{ return(10000000) }}{%- endmacro %}
{% macro postgres__ack_insert_max_rows() -%}{{ return(10000000) }}{%- endmacro %}
{% macro duckdb__ack_insert_sql(acks, runs) -%}
insert into {{ acks }} (_eb_seq)
select unnest(generate_series(r.lo, r.hi)) from (values {% for r in runs %}({{ r[0] }}, {{ r[1] }}){{ ", " if not loop.last }}{% endfor %}) as r(lo, hi)
{%- endmacro %}
{% macro postgres__ack_insert_sql(acks, runs) -%}
insert into {{ acks }} (_eb_seq)
select generate_series(r.lo, r.hi) from (values {% for r in runs %}({{ r[0] }}::bigint, {{ r[1] }}::bigint){{ ", " if not loop.last }}{% endfor %}) as r(lo, hi)
{%- endmacro %}

{#- Publishing reads the plan in _eb_seq ranges: an index keeps that from rescanning. -#}
{% macro plan_index_sql(plan) -%}
  {{ return(adapter.dispatch('plan_index_sql', 'dbt_eventbridge')(plan)) }}
{%- endmacro %}
{% macro default__plan_index_sql(plan) -%}{{ return('') }}{%- endmacro %}
{% macro postgres__plan_index_sql(plan) -%}
  {{ return('create index on ' ~ plan ~ ' (_eb_seq)') }}
{%- endmacro %}
