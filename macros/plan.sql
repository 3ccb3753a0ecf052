{#-
  The diff, the state and the commit, as SQL text that the Python side runs.

  State (one table per sync, see dbt_eventbridge/layout.py): the delivered values in the
  warehouse's own types, in physical columns _eb_c1.._eb_cN; _eb_hash (fingerprint of the
  tracked values), _eb_shape (which columns and types the row was delivered with) and
  _eb_delivered_at. It only ever holds what EventBridge accepted (or what was recorded as
  delivered without sending: re-baselined rows, triggers that are off).

  Plan (one table per sync and run): every change, numbered by _eb_seq, with the model's
  values that will be sent (under the model's column names) and, for changed and removed
  rows, the values as delivered before (_eb_o<i>, a copy of the state's _eb_c<i>), with
  their shape. Acks (one per plan): the _eb_seq of every plan row that needs no more
  sending. Committing merges acked plan rows into the state, so the state records what
  was sent even if the model is rebuilt in between, and a run that was killed is
  completed by the next one from its plan and acks.

  Arguments: relations are rendered relations; `keys`, `columns` (every model column),
  `hash_columns` (sorted by name) are quoted identifiers of the model; `state_keys` the
  state's physical key columns, aligned with `keys`.
-#}

{#- Which typed columns a relation has: [[name, type], ...]. The type only has to tell two
    types apart the same way from run to run (a changed type is a schema change). -#}
{% macro relation_columns(relation) -%}
  {{ return(adapter.dispatch('relation_columns', 'dbt_eventbridge')(relation)) }}
{%- endmacro %}
{% macro default__relation_columns(relation) -%}
  {%- set out = [] -%}
  {%- for c in adapter.get_columns_in_relation(relation) %}{% do out.append([c.name, c.data_type]) %}{% endfor -%}
  {{ return(out) }}
{%- endmacro %}
{#- A catalog query that answers relation_columns, run on our own cursor: through run_query
    (dbt's query events and an agate table) it cost 6 ms a sync on DuckDB, the query 0.3 ms.
    '' where there is none: relation_columns asks dbt's adapter. -#}
{% macro relation_columns_sql(relation) -%}
  {{ return(adapter.dispatch('relation_columns_sql', 'dbt_eventbridge')(relation)) }}
{%- endmacro %}
{% macro default__relation_columns_sql(relation) -%}
  {{ return('') }}
{%- endmacro %}
{#- DuckDB's own type names (dbt's Column reports every text as character varying(256)).
    DuckDB's names are case-insensitive: a profile's `schema: MAIN` is the schema main. -#}
{% macro duckdb__relation_columns_sql(relation) -%}
    select column_name, data_type from information_schema.columns
    where lower(table_schema) = '{{ relation.schema | lower | replace("'", "''") }}' and table_name = '{{ relation.identifier | replace("'", "''") }}'
    {%- if relation.database %} and lower(table_catalog) = '{{ relation.database | lower | replace("'", "''") }}'{% endif %}
    order by ordinal_position
{%- endmacro %}
{% macro duckdb__relation_columns(relation) -%}
  {%- set out = [] -%}
  {%- for r in run_query(dbt_eventbridge.duckdb__relation_columns_sql(relation)).rows %}{% do out.append([r[0], r[1]]) %}{% endfor -%}
  {{ return(out) }}
{%- endmacro %}
{#- information_schema says ARRAY for every array and USER-DEFINED for every enum:
    format_type tells int[] from text[]. -#}
{% macro postgres__relation_columns_sql(relation) -%}
    select a.attname, format_type(a.atttypid, a.atttypmod)
    from pg_catalog.pg_attribute a
    join pg_catalog.pg_class c on c.oid = a.attrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = '{{ relation.schema | replace("'", "''") }}' and c.relname = '{{ relation.identifier | replace("'", "''") }}'
      and a.attnum > 0 and not a.attisdropped
    order by a.attnum
{%- endmacro %}
{% macro postgres__relation_columns(relation) -%}
  {%- set out = [] -%}
  {%- for r in run_query(dbt_eventbridge.postgres__relation_columns_sql(relation)).rows %}{% do out.append([r[0], r[1]]) %}{% endfor -%}
  {{ return(out) }}
{%- endmacro %}

{#- Redshift answers PostgreSQL's catalog query, but a late-binding view has no rows in
    pg_attribute: dbt-redshift's own listing (svv_columns) knows them. -#}
{% macro redshift__relation_columns_sql(relation) -%}
  {{ return('') }}
{%- endmacro %}
{% macro redshift__relation_columns(relation) -%}
  {{ return(dbt_eventbridge.default__relation_columns(relation)) }}
{%- endmacro %}

{#- Column types whose values the warehouse's driver returns as JSON text: they reach
    templates and details as JSON values (an object stays an object). -#}
{% macro json_types() -%}
  {{ return(adapter.dispatch('json_types', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__json_types() -%}{{ return([]) }}{%- endmacro %}
{% macro duckdb__json_types() -%}{{ return(['json']) }}{%- endmacro %}
{% macro snowflake__json_types() -%}{{ return(['variant', 'object', 'array']) }}{%- endmacro %}
{% macro bigquery__json_types() -%}{{ return(['json']) }}{%- endmacro %}
{% macro redshift__json_types() -%}{{ return(['super']) }}{%- endmacro %}

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


{#- Every change between the model and the state.
    `state`: the state relation (or a query in parentheses), or none (a first run, or the
    state was reset): every row is added. `old_columns`: [[physical, plan name], ...], the
    state's value columns, copied for changed and removed rows. `current`: the shape new
    rows are written in.

    A state row has its values in the shape it was delivered in (_eb_shape), and a
    fingerprint (_eb_hash) made as shape _eb_fp defines it. Rows fingerprinted as `current`
    defines are compared by fingerprint alone (the usual case: one join on keys and hashes).
    Rows fingerprinted otherwise (the schema changed since) are always planned, as `changed`
    when the model differs from them on the tracked columns both have, else as
    `rebaseline` (the fingerprint is renewed, the delivered values are kept, nothing is sent):
      `stored_fps`: shapes whose fingerprints are comparable with the current one;
      `shapes`: the others, by the shape of their values, each {id, mode, pairs}:
        compare    - fingerprints of the columns both have, computed now on both sides;
                     pairs are [model column, state column, cast]: `cast` compares a
                     column whose type changed by its text;
        legacy     - a format 1 state's stored fingerprint, against the model's columns;
                     equal rows are rewritten with typed values (`refresh`, not sent);
        rebaseline - nothing to compare with.
    `has_duplicates`: the key audit found duplicated keys; without them (the usual case)
    the plan skips the duplicate handling, a grouping of the whole model and two anti-joins.
    The join compares keys and hashes only; values (the model's columns, the delivered
    ones) are fetched afterwards for the changed rows alone. `exists_only` (with a state):
    a row per change and nothing else, for "anything to do?" (no numbering, no values: a
    window over the plan cannot stop at its first row, and a sync with changes pays this
    probe on top of its plan). -#}
{% macro plan_select_sql(model, state, keys, columns, hash_columns, state_keys, old_columns, current, stored_fps=[], shapes=[], full_refresh=false, has_duplicates=true, exists_only=false) -%}
  {{ return(adapter.dispatch('plan_select_sql', 'dbt_eventbridge')(model, state, keys, columns, hash_columns, state_keys, old_columns, current, stored_fps, shapes, full_refresh, has_duplicates, exists_only)) }}
{%- endmacro %}

{#- DuckDB carries the model's columns through the join (one scan of the model, 35% faster
    than joining back for the changed rows). -#}
{% macro duckdb__plan_select_sql(model, state, keys, columns, hash_columns, state_keys, old_columns, current, stored_fps, shapes, full_refresh, has_duplicates, exists_only=false) -%}
  {{ return(dbt_eventbridge.default__plan_select_sql(model, state, keys, columns, hash_columns, state_keys, old_columns, current, stored_fps, shapes, full_refresh, has_duplicates, exists_only, carry=true)) }}
{%- endmacro %}

{#- The plan's numbers, 1..n: any order will do, and no order costs no sort. Snowflake and
    Spark require an ORDER BY in ROW_NUMBER's window: the keys (the diff's `d`). -#}
{% macro plan_seq_sql(keys) -%}
  {{ return(adapter.dispatch('plan_seq_sql', 'dbt_eventbridge')(keys)) }}
{%- endmacro %}
{% macro default__plan_seq_sql(keys) -%}row_number() over (){%- endmacro %}
{% macro snowflake__plan_seq_sql(keys) -%}row_number() over (order by {% for k in keys %}d.{{ k }}{{ ", " if not loop.last }}{% endfor %}){%- endmacro %}
{% macro spark__plan_seq_sql(keys) -%}{{ dbt_eventbridge.snowflake__plan_seq_sql(keys) }}{%- endmacro %}

{#- The text type a value is cast to when it is compared or hashed as text: unbounded
    (Redshift's VARCHAR without a length is 256 bytes, which would cut values short). -#}
{% macro text_type() -%}
  {{ return(adapter.dispatch('text_type', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__text_type() -%}{{ return(dbt.type_string()) }}{%- endmacro %}
{% macro redshift__text_type() -%}{{ return('varchar(max)') }}{%- endmacro %}

{% macro _cmp_exprs(pairs, side, alias) -%}
  {%- set out = [] -%}
  {%- for p in pairs -%}
    {%- set e = alias ~ '.' ~ (p[0] if side == 'm' else p[1]) -%}
    {%- do out.append(('cast(' ~ e ~ ' as ' ~ dbt_eventbridge.text_type() ~ ')') if p[2] else e) -%}
  {%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro default__plan_select_sql(model, state, keys, columns, hash_columns, state_keys, old_columns, current, stored_fps, shapes, full_refresh, has_duplicates, exists_only=false, carry=false) -%}
{%- set non_keys = [] -%}
{%- for c in columns if c not in keys -%}{%- do non_keys.append(c) -%}{%- endfor -%}
{%- set compared = shapes | selectattr('mode', 'equalto', 'compare') | list -%}
{%- set older = stored_fps or shapes -%}
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
    {%- for o in shapes if o.mode in ('compare', 'legacy') %},
    {{ dbt_eventbridge.row_hash(dbt_eventbridge._cmp_exprs(o.pairs, 'm', 'src'), none) }} as _eb_cmp{{ o.id }}
    {%- endfor %}
  from {{ model }} as src
  where {% for k in keys %}src.{{ k }} is not null{{ " and " if not loop.last or has_duplicates }}{% endfor -%}
    {%- if has_duplicates %}
    not exists (select 1 from dup where {{ dbt_eventbridge._match(keys, 'dup', 'src') }})
    {%- endif %}
),
{%- if state is none %}
d as (
  select {% for k in keys %}m.{{ k }}, {% endfor %}'added' as _eb_op, m._eb_hash as _eb_new_hash,
    cast(null as {{ dbt.type_int() }}) as _eb_old_shape
    {%- if carry %}{% for c in non_keys %},
    m.{{ c }}{% endfor %}{% endif %}
  from m
)
{%- set items = [dbt_eventbridge.plan_seq_sql(keys) ~ " as _eb_seq", "d._eb_op", "d._eb_new_hash as _eb_hash", "d._eb_old_shape as _eb_shape"] -%}
{%- for k in keys %}{% do items.append("d." ~ k) %}{% endfor -%}
{%- for c in non_keys %}{% do items.append(('d.' if carry else 'src.') ~ c) %}{% endfor %}
select
  {{ items | join(",\n  ") }}
from d
{%- if not carry %}
left join {{ model }} as src on {{ dbt_eventbridge._match(keys, 'd', 'src') }}
{%- endif %}
{%- else %}
s as (
  select {% for k in keys %}st.{{ state_keys[loop.index0] }} as {{ k }}, {% endfor %}st._eb_hash, st._eb_shape, st._eb_fp
    {%- if compared %},
    case when st._eb_fp = {{ current }} then null else case st._eb_shape
      {%- for o in compared %}
      when {{ o.id }} then {{ dbt_eventbridge.row_hash(dbt_eventbridge._cmp_exprs(o.pairs, 's', 'st'), none) }}
      {%- endfor %}
    end end as _eb_scmp
    {%- endif %}
  from {{ state }} as st
),
d as (
  select {% for k in keys %}coalesce(m.{{ k }}, s.{{ k }}) as {{ k }}, {% endfor %}
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null {%- if full_refresh %} or 1 = 1{% endif %} then 'added'
         when s._eb_fp = {{ current }} then 'changed'
         {%- for f in stored_fps %}
         when s._eb_fp = {{ f }} then case when m._eb_hash = s._eb_hash then 'rebaseline' else 'changed' end
         {%- endfor %}
         {%- for o in shapes %}
         when s._eb_shape = {{ o.id }} then
           {%- if o.mode == 'legacy' %} case when m._eb_cmp{{ o.id }} = s._eb_hash then 'refresh' else 'changed' end
           {%- elif o.mode == 'compare' %} case when m._eb_cmp{{ o.id }} = s._eb_scmp then 'rebaseline' else 'changed' end
           {%- else %} 'rebaseline'
           {%- endif %}
         {%- endfor %}
         else 'changed' end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash,
    s._eb_shape as _eb_old_shape
    {%- if carry %}{% for c in non_keys %},
    m.{{ c }}{% endfor %}{% endif %}
  from m full outer join s on {{ dbt_eventbridge._match(keys, 'm', 's') }}
  where s._eb_hash is null
     or (m._eb_hash is null
         {%- if has_duplicates %} and not exists (select 1 from dup where {{ dbt_eventbridge._match(keys, 'dup', 's') }}){% endif %})
     or m._eb_hash <> s._eb_hash
     {%- if older %} or s._eb_fp <> {{ current }}{% endif %}
     {%- if full_refresh %} or m._eb_hash is not null{% endif %}
)
{%- if exists_only %}
select 1 as _eb_any from d
{%- else %}
{%- set items = [dbt_eventbridge.plan_seq_sql(keys) ~ " as _eb_seq", "d._eb_op", "coalesce(d._eb_new_hash, d._eb_old_hash) as _eb_hash",
                   "cast(d._eb_old_shape as " ~ dbt.type_int() ~ ") as _eb_shape"] -%}
{%- for k in keys %}{% do items.append("d." ~ k) %}{% endfor -%}
{%- for c in non_keys %}{% do items.append(('d.' if carry else 'src.') ~ c) %}{% endfor -%}
{%- for p, o in old_columns %}{% do items.append("old." ~ p ~ " as " ~ o) %}{% endfor %}
select
  {{ items | join(",\n  ") }}
from d
{%- if not carry %}
left join {{ model }} as src on {{ dbt_eventbridge._match(keys, 'd', 'src') }} and d._eb_op <> 'removed'
{%- endif %}
left join {{ state }} as old on {% for k in keys %}d.{{ k }} = old.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %} and d._eb_op <> 'added'
{%- endif %}
{%- endif %}
{%- endmacro %}


{#- Statements that merge the acked part of a plan into the state, in one transaction.
    Plan rows without an ack (rejected, or not sent yet) stay as they were, so they come
    back. `all_acked`: every plan row is acknowledged (the usual end of a run); the merge
    then reads the plan alone instead of joining it with its acks. `new_columns`:
    [[model column, physical], ...] of the current shape. A `rebaseline` row keeps the
    values it was delivered with and takes the new fingerprint; the other ops replace the
    row with the values of the plan (what was sent). -#}
{% macro _done(plan, acks, all_acked) -%}
{%- if all_acked -%}
(select * from {{ plan }} as p)
{%- else -%}
(select * from {{ plan }} as p where exists (select 1 from {{ acks }} as a where a._eb_seq = p._eb_seq))
{%- endif -%}
{%- endmacro %}

{#- `state_columns`: the state's columns in their order, where an engine needs them (Spark);
    read from the warehouse when not given. -#}
{% macro commit_sql(state, state_name, plan, acks, keys, state_keys, new_columns, current, all_acked=false, state_columns=none) -%}
  {{ return(adapter.dispatch('commit_sql', 'dbt_eventbridge')(state, state_name, plan, acks, keys, state_keys, new_columns, current, all_acked, state_columns)) }}
{%- endmacro %}

{#- `state_name` is the state table's quoted identifier alone, to correlate on. -#}
{% macro default__commit_sql(state, state_name, plan, acks, keys, state_keys, new_columns, current, all_acked=false, state_columns=none) -%}
{%- set done = dbt_eventbridge._done(plan, acks, all_acked) -%}
{%- set cond = [] -%}
{%- for k in keys %}{% do cond.append("d." ~ k ~ " = " ~ state_name ~ "." ~ state_keys[loop.index0]) %}{% endfor -%}
{%- set delete_sql -%}
delete from {{ state }} using {{ done }} as d where {{ cond | join(" and ") }} and d._eb_op <> 'rebaseline'
{%- endset -%}
{{ return([delete_sql, dbt_eventbridge._insert_done(state, done, new_columns, current),
           dbt_eventbridge.renew_fingerprints_sql(state, state_name, done, keys, state_keys, current)]) }}
{%- endmacro %}

{#- BigQuery has no DELETE ... USING: the same rows, by a correlated EXISTS. -#}
{% macro bigquery__commit_sql(state, state_name, plan, acks, keys, state_keys, new_columns, current, all_acked=false, state_columns=none) -%}
{%- set done = dbt_eventbridge._done(plan, acks, all_acked) -%}
{%- set delete_sql -%}
delete from {{ state }} as st where exists (select 1 from {{ done }} as d where d._eb_op <> 'rebaseline' and {% for k in keys %}d.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %})
{%- endset -%}
{{ return([delete_sql, dbt_eventbridge._insert_done(state, done, new_columns, current),
           dbt_eventbridge.renew_fingerprints_sql(state, state_name, done, keys, state_keys, current)]) }}
{%- endmacro %}

{#- Spark's plain tables have no DELETE, UPDATE or MERGE: the commit is one INSERT OVERWRITE
    of the whole state (staged by the Spark engine, see engines/spark.py): the rows it keeps,
    re-baselined ones with their new fingerprint, then the acked rows of the plan, in the
    state's own column order. -#}
{% macro spark__commit_sql(state, state_name, plan, acks, keys, state_keys, new_columns, current, all_acked=false, state_columns=none) -%}
{%- set done = dbt_eventbridge._done(plan, acks, all_acked) -%}
{%- set cols = state_columns if state_columns is not none else adapter.get_columns_in_relation(state) | map(attribute='name') | list -%}
{%- set kept = [] -%}
{%- set added = [] -%}
{%- for n, value in dbt_eventbridge._acked_values(cols, new_columns, current) -%}
  {%- if n == '_eb_hash' or n == '_eb_fp' -%}{% do kept.append(dbt_eventbridge._renewed(n, 'st', current)) %}
  {%- else -%}{% do kept.append('st.' ~ n) %}{%- endif -%}
  {%- do added.append(value ~ ' as ' ~ n) -%}
{%- endfor -%}
{%- set sql -%}
insert overwrite table {{ state }}
select {{ kept | join(', ') }}
from {{ state }} as st
{{ dbt_eventbridge._renewal_join(done, keys, state_keys) }}
where not exists (select 1 from {{ done }} as d where d._eb_op <> 'rebaseline' and {% for k in keys %}d.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %})
union all
select {{ added | join(', ') }}
from {{ done }} as d where d._eb_op not in ('removed', 'rebaseline')
{%- endset -%}
{{ return([sql]) }}
{%- endmacro %}

{#- Databricks (Delta): one MERGE, an atomic commit of its own (Spark's statement would rewrite
    the whole state). Removed rows are deleted; re-baselined ones take their new fingerprint
    and keep the values they were delivered with; every other acked row is written whole in
    the current shape: the state's columns the shape lacks become null, as the default
    commit's delete and insert leave them. The plan has one row per key (the diff's full
    join of a model without duplicated keys and the state), as MERGE requires. -#}
{% macro databricks__commit_sql(state, state_name, plan, acks, keys, state_keys, new_columns, current, all_acked=false, state_columns=none) -%}
{%- set done = dbt_eventbridge._done(plan, acks, all_acked) -%}
{%- set cols = state_columns if state_columns is not none else adapter.get_columns_in_relation(state) | map(attribute='name') | list -%}
{%- set names = [] -%}
{%- set values = [] -%}
{%- for n, value in dbt_eventbridge._acked_values(cols, new_columns, current) -%}
  {%- do names.append(n) -%}
  {%- do values.append(value) -%}
{%- endfor -%}
{%- set sql -%}
merge into {{ state }} as st
using {{ done }} as d
on {% for k in keys %}d.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %}
when matched and d._eb_op = 'removed' then delete
when matched and d._eb_op = 'rebaseline' then update set _eb_hash = d._eb_hash, _eb_fp = {{ current }}
when matched then update set {% for n in names %}{{ n }} = {{ values[loop.index0] }}{{ ", " if not loop.last }}{% endfor %}
when not matched and d._eb_op not in ('removed', 'rebaseline') then insert ({{ names | join(', ') }}) values ({{ values | join(', ') }})
{%- endset -%}
{{ return([sql]) }}
{%- endmacro %}

{#- [[state column, its value in an acked plan row `d`], ...] in the state's order: the
    model's values in the current shape, the state's columns that shape lacks as null. -#}
{% macro _acked_values(cols, new_columns, current) -%}
{%- set model_of = {} -%}
{%- for c, p in new_columns %}{% do model_of.update({p | lower: c}) %}{% endfor -%}
{%- set out = [] -%}
{%- for c in cols -%}
  {%- set n = c | lower -%}
  {%- if n in model_of -%}{% do out.append([n, 'd.' ~ model_of[n]]) %}
  {%- elif n == '_eb_hash' -%}{% do out.append([n, 'd._eb_hash']) %}
  {%- elif n == '_eb_shape' or n == '_eb_fp' -%}{% do out.append([n, current | string]) %}
  {%- elif n == '_eb_delivered_at' -%}{% do out.append([n, dbt.current_timestamp()]) %}
  {%- else -%}{% do out.append([n, 'null']) %}{%- endif -%}
{%- endfor -%}
{{ return(out) }}
{%- endmacro %}

{#- Without UPDATE: a kept row's hash and fingerprint, renewed when the plan re-baselined it
    (`r`, joined by _renewal_join). -#}
{% macro _renewed(column, alias, current) -%}
{%- if column == '_eb_hash' -%}coalesce(r._eb_hash, {{ alias }}._eb_hash) as _eb_hash
{%- else -%}case when r._eb_hash is null then {{ alias }}._eb_fp else {{ current }} end as _eb_fp{%- endif -%}
{%- endmacro %}
{% macro _renewal_join(done, keys, state_keys) -%}
left join (select {% for k in keys %}r0.{{ k }}, {% endfor %}max(r0._eb_hash) as _eb_hash from {{ done }} as r0
           where r0._eb_op = 'rebaseline' group by {% for k in keys %}r0.{{ k }}{{ ", " if not loop.last }}{% endfor %}) as r
  on {% for k in keys %}r.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %}
{%- endmacro %}

{% macro _insert_done(target, done, new_columns, current) -%}
insert into {{ target }} ({% for c, p in new_columns %}{{ p }}, {% endfor %}_eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select {% for c, p in new_columns %}d.{{ c }}, {% endfor %}d._eb_hash, {{ current }}, {{ current }}, {{ dbt.current_timestamp() }}
from {{ done }} as d where d._eb_op not in ('removed', 'rebaseline')
{%- endmacro %}

{#- Re-baselined rows: the new fingerprint, the delivered values kept. -#}
{% macro renew_fingerprints_sql(target, target_name, done, keys, state_keys, current) -%}
  {{ return(adapter.dispatch('renew_fingerprints_sql', 'dbt_eventbridge')(target, target_name, done, keys, state_keys, current)) }}
{%- endmacro %}
{% macro default__renew_fingerprints_sql(target, target_name, done, keys, state_keys, current) -%}
update {{ target }} set _eb_hash = d._eb_hash, _eb_fp = {{ current }}
from {{ done }} as d
where d._eb_op = 'rebaseline' and {% for k in keys %}d.{{ k }} = {{ target_name }}.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %}
{%- endmacro %}

{#- BigQuery: the target with an alias of its own (a table path is not a correlation name). -#}
{% macro bigquery__renew_fingerprints_sql(target, target_name, done, keys, state_keys, current) -%}
update {{ target }} as t set _eb_hash = d._eb_hash, _eb_fp = {{ current }}
from {{ done }} as d
where d._eb_op = 'rebaseline' and {% for k in keys %}d.{{ k }} = t.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %}
{%- endmacro %}

{#- A new state table, when the schema changed (or there is no state yet): its columns take
    their types from the plan (the model's, and the delivered ones), never from type names.
    Rows not replaced by the acked plan (re-baselined, rejected, keys duplicated in the
    model) are copied from `state` when it is given: `copy_columns` are their physical
    columns, `kept_columns` [[physical, plan name], ...] those the new shape does not have. -#}
{% macro rebuild_state_sql(next, next_name, state, plan, acks, keys, state_keys, new_columns, kept_columns, copy_columns, current, all_acked=false) -%}
  {{ return(adapter.dispatch('rebuild_state_sql', 'dbt_eventbridge')(next, next_name, state, plan, acks, keys, state_keys, new_columns, kept_columns, copy_columns, current, all_acked)) }}
{%- endmacro %}
{% macro default__rebuild_state_sql(next, next_name, state, plan, acks, keys, state_keys, new_columns, kept_columns, copy_columns, current, all_acked=false) -%}
{%- set done = dbt_eventbridge._done(plan, acks, all_acked) -%}
{%- set create_sql -%}
create table {{ next }} as
select {% for c, p in new_columns %}p.{{ c }} as {{ p }}, {% endfor -%}
  {%- for p, o in kept_columns %}p.{{ o }} as {{ p }}, {% endfor -%}
  p._eb_hash, p._eb_shape, p._eb_shape as _eb_fp, {{ dbt.current_timestamp() }} as _eb_delivered_at
from {{ plan }} as p
where 1 = 0
{%- endset -%}
{%- set statements = [create_sql] -%}
{%- if state is not none -%}
{%- set keep_sql -%}
insert into {{ next }} ({% for p in copy_columns %}{{ p }}, {% endfor %}_eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select {% for p in copy_columns %}st.{{ p }}, {% endfor %}st._eb_hash, st._eb_shape, st._eb_fp, st._eb_delivered_at
from {{ state }} as st
where not exists (select 1 from {{ done }} as d where d._eb_op <> 'rebaseline' and {% for k in keys %}d.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %})
{%- endset -%}
{%- do statements.append(keep_sql) -%}
{%- endif -%}
{%- do statements.append(dbt_eventbridge._insert_done(next, done, new_columns, current)) -%}
{%- if state is not none -%}
{%- do statements.append(dbt_eventbridge.renew_fingerprints_sql(next, next_name, done, keys, state_keys, current)) -%}
{%- endif -%}
{{ return(statements) }}
{%- endmacro %}

{#- Spark: re-baselined rows take their new fingerprint as they are copied (no UPDATE). -#}
{% macro spark__rebuild_state_sql(next, next_name, state, plan, acks, keys, state_keys, new_columns, kept_columns, copy_columns, current, all_acked=false) -%}
{%- set statements = dbt_eventbridge.default__rebuild_state_sql(next, next_name, none, plan, acks, keys, state_keys, new_columns, kept_columns, copy_columns, current, all_acked) -%}
{%- if state is not none -%}
{%- set done = dbt_eventbridge._done(plan, acks, all_acked) -%}
{%- set keep_sql -%}
insert into {{ next }} ({% for p in copy_columns %}{{ p }}, {% endfor %}_eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select {% for p in copy_columns %}st.{{ p }}, {% endfor %}{{ dbt_eventbridge._renewed('_eb_hash', 'st', current) }}, st._eb_shape, {{ dbt_eventbridge._renewed('_eb_fp', 'st', current) }}, st._eb_delivered_at
from {{ state }} as st
{{ dbt_eventbridge._renewal_join(done, keys, state_keys) }}
where not exists (select 1 from {{ done }} as d where d._eb_op <> 'rebaseline' and {% for k in keys %}d.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %})
{%- endset -%}
{%- do statements.insert(1, keep_sql) -%}
{%- endif -%}
{{ return(statements) }}
{%- endmacro %}

{#- The shapes of the values of the state rows a commit keeps (re-baselined ones included). -#}
{% macro kept_shapes_sql(state, plan, acks, keys, state_keys, all_acked=false) -%}
select distinct st._eb_shape from {{ state }} as st
where not exists (select 1 from {{ dbt_eventbridge._done(plan, acks, all_acked) }} as d
                  where d._eb_op <> 'rebaseline' and {% for k in keys %}d.{{ k }} = st.{{ state_keys[loop.index0] }}{{ " and " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro int_type() -%}{{ return(dbt.type_int()) }}{%- endmacro %}
{% macro now_sql() -%}{{ return(dbt.current_timestamp()) }}{%- endmacro %}

{% macro rename_table_sql(relation, new_name) -%}
  {{ return(adapter.dispatch('rename_table_sql', 'dbt_eventbridge')(relation, new_name)) }}
{%- endmacro %}
{% macro default__rename_table_sql(relation, new_name) -%}
alter table {{ relation }} rename to {{ new_name }}
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
{#- generate_series runs on Redshift's leader node only, never in an INSERT ... SELECT. -#}
{% macro redshift__ack_insert_max_rows() -%}{{ return(1000) }}{%- endmacro %}
{% macro redshift__ack_insert_sql(acks, runs) -%}{{ return(dbt_eventbridge.default__ack_insert_sql(acks, runs)) }}{%- endmacro %}
{#- GENERATE_ARRAY builds each run in memory: 100,000 a statement stays far below its limits. -#}
{% macro bigquery__ack_insert_max_rows() -%}{{ return(100000) }}{%- endmacro %}
{% macro bigquery__ack_insert_sql(acks, runs) -%}
insert into {{ acks }} (_eb_seq)
select s from unnest([{% for r in runs %}struct({{ r[0] }} as lo, {{ r[1] }} as hi){{ ", " if not loop.last }}{% endfor %}]) as r, unnest(generate_array(r.lo, r.hi)) as s
{%- endmacro %}
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
{#- Redshift has no indexes (its sort keys are set when a table is created). -#}
{% macro redshift__plan_index_sql(plan) -%}{{ return('') }}{%- endmacro %}
