{#-
  What each dbt invocation did to the synced models, kept for dbt-eventbridge's test gate.

  target/run_results.json holds the last invocation only: a `dbt build` whose tests failed,
  followed by a `dbt run -s other_model`, would leave no trace of the failure. This
  on-run-end hook (declared in the package's dbt_project.yml, so it runs in every project
  that installs the package) records, for each model, seed or snapshot that has a sync,
  the status of its last build and of each of its tests, in
  <state_schema>._eb_dbt_results: one row per (synced relation, node), replaced by later
  invocations. Rows are keyed by the relation the node was built as, so a CI target that
  builds the same project into another schema never changes production's gate. `dbt-eventbridge sync` reads it and holds a model back until a later
  invocation built and tested it successfully.

  It writes nothing in projects without syncs, nor for commands that build nothing
  (compile, docs, ls...). Turn it off with vars: {eventbridge: {record_dbt_results: false}};
  the gate then reads run_results.json alone.
-#}
{% macro record_dbt_results(results) -%}
  {{ return(adapter.dispatch('record_dbt_results', 'dbt_eventbridge')(results)) }}
{%- endmacro %}

{% macro default__record_dbt_results(results) -%}
  {%- if not execute or not results -%}{{ return('') }}{%- endif -%}
  {%- set settings = var('eventbridge', {}) -%}
  {%- if settings is not mapping -%}{% set settings = {} %}{%- endif -%}
  {%- set switch = env_var('DBT_EVENTBRIDGE_RECORD_DBT_RESULTS', '') or settings.get('record_dbt_results', true) -%}
  {%- if (switch | string | lower) in ('false', 'no', 'off', '0') -%}{{ return('') }}{%- endif -%}
  {%- if invocation_args_dict.get('which') not in ('run', 'build', 'test', 'seed', 'snapshot', 'retry') -%}{{ return('') }}{%- endif -%}
  {%- set rows = [] -%}
  {%- for r in results -%}
    {%- set node = r.node -%}
    {%- if node.resource_type in ('model', 'seed', 'snapshot') -%}
      {%- if 'eventbridge' in (node.config.meta or {}) -%}
        {%- do rows.append([node.unique_id, node.unique_id, 'build', r.status | string, node.relation_name or '']) -%}
      {%- endif -%}
    {%- elif node.resource_type == 'test' -%}
      {%- for parent in node.depends_on.nodes -%}
        {%- set p = graph.nodes.get(parent) -%}
        {%- if p and 'eventbridge' in (p.config.meta or {}) -%}
          {%- do rows.append([parent, node.unique_id, 'test', r.status | string, p.relation_name or '']) -%}
        {%- endif -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if not rows -%}{{ return('') }}{%- endif -%}
  {%- set schema = env_var('DBT_EVENTBRIDGE_STATE_SCHEMA', '') or settings.get('state_schema', 'eventbridge_state') -%}
  {#- Spark has no database level: its targets have no `database`. -#}
  {%- set relation = api.Relation.create(database=target.database if target.database is defined else none,
                                         schema=schema, identifier='_eb_dbt_results') -%}
  {%- set columns = [['model_id', 'string'], ['node_id', 'string'], ['kind', 'string'], ['status', 'string'],
                     ['invocation_id', 'string'], ['command', 'string'], ['completed_at', 'string'],
                     ['relation_name', 'string']] -%}
  {%- do adapter.create_schema(relation) -%}
  {%- set existing = adapter.get_columns_in_relation(relation) -%}
  {%- if existing -%}
    {%- set names = existing | map(attribute='name') | map('lower') | sort | list -%}
    {%- if names != (columns | map('first') | sort | list) -%}
      {%- do log("dbt-eventbridge: " ~ relation ~ " is not the table it keeps dbt results in; they are not recorded", info=true) -%}
      {{ return('') }}
    {%- endif -%}
  {%- else -%}
    {%- call statement('eventbridge_dbt_results_table', auto_begin=true) -%}
      {{ dbt_eventbridge.history_table_sql(relation, columns) }}
    {%- endcall -%}
  {%- endif -%}
  {%- set at = run_started_at.strftime('%Y-%m-%dT%H:%M:%S') -%}
  {%- set pairs = [] -%}
  {%- for r in rows -%}
    {%- do pairs.append("(relation_name = " ~ dbt_eventbridge.string_literal(r[4]) ~ " and node_id = " ~ dbt_eventbridge.string_literal(r[1]) ~ ")") -%}
  {%- endfor -%}
  {%- set values = [] -%}
  {%- for r in rows -%}
    {%- set fields = [] -%}
    {%- for v in r[:4] + [invocation_id, invocation_args_dict.get('which'), at, r[4]] -%}
      {%- do fields.append(dbt_eventbridge.string_literal(v)) -%}
    {%- endfor -%}
    {%- do values.append("(" ~ fields | join(", ") ~ ")") -%}
  {%- endfor -%}
  {%- do dbt_eventbridge.replace_dbt_results(relation, pairs, values) -%}
  {{ return('') }}
{%- endmacro %}

{#- The rows of `pairs` (conditions) replaced by `values` (tuples in the table's column order). -#}
{% macro replace_dbt_results(relation, pairs, values) -%}
  {{ return(adapter.dispatch('replace_dbt_results', 'dbt_eventbridge')(relation, pairs, values)) }}
{%- endmacro %}

{% macro default__replace_dbt_results(relation, pairs, values) -%}
  {#- One transaction (hooks run outside dbt's own), committed as dbt's materializations do. -#}
  {%- for batch in pairs | batch(200) %}
    {%- call statement('eventbridge_forget_dbt_results', auto_begin=true) -%}
      delete from {{ relation }} where {{ batch | join(" or ") }}
    {%- endcall -%}
  {%- endfor -%}
  {%- for batch in values | batch(200) -%}
    {%- call statement('eventbridge_record_dbt_results', auto_begin=true) -%}
      insert into {{ relation }} (model_id, node_id, kind, status, invocation_id, command, completed_at, relation_name)
      values {{ batch | join(", ") }}
    {%- endcall -%}
  {%- endfor -%}
  {%- do adapter.commit() -%}
{%- endmacro %}

{#- Spark's plain tables have no DELETE: the table is rewritten, staged in <table>__eb_rw as
    dbt-eventbridge's Spark engine stages its own rewrites (engines/spark.py), and a rewrite
    that a killed process left is finished first (by dbt-eventbridge too, when it lists the
    schema). -#}
{% macro spark__replace_dbt_results(relation, pairs, values) -%}
  {%- set staging = api.Relation.create(schema=relation.schema, identifier=relation.identifier ~ '__eb_rw') -%}
  {%- if adapter.get_relation(database=none, schema=relation.schema, identifier=staging.identifier) -%}
    {%- do run_query('insert overwrite table ' ~ relation ~ ' select * from ' ~ staging) -%}
    {%- do run_query('drop table if exists ' ~ staging) -%}
  {%- endif -%}
  {%- set rewrite -%}
    create table {{ staging }} as
    select * from {{ relation }} where not coalesce(({{ pairs | join(" or ") }}), false)
    union all
    select * from values {{ values | join(", ") }}
      as v(model_id, node_id, kind, status, invocation_id, command, completed_at, relation_name)
  {%- endset -%}
  {%- do run_query(rewrite) -%}
  {%- do run_query('insert overwrite table ' ~ relation ~ ' select * from ' ~ staging) -%}
  {%- do run_query('drop table ' ~ staging) -%}
{%- endmacro %}

{#- A string literal: quotes doubled where the SQL standard holds; where a backslash is an
    escape character (BigQuery, Snowflake, Spark, Databricks, Redshift), backslashes doubled
    and quotes escaped (dbt's escape_single_quotes leaves backslashes as they are). -#}
{% macro string_literal(value) -%}
  {{ return(adapter.dispatch('string_literal', 'dbt_eventbridge')(value)) }}
{%- endmacro %}
{% macro default__string_literal(value) -%}
  {{ return("'" ~ (value | string) | replace("'", "''") ~ "'") }}
{%- endmacro %}
{% macro _backslash_string_literal(value) -%}
  {{ return("'" ~ (value | string) | replace("\\", "\\\\") | replace("'", "\\'") ~ "'") }}
{%- endmacro %}
{% macro bigquery__string_literal(value) -%}{{ return(dbt_eventbridge._backslash_string_literal(value)) }}{%- endmacro %}
{% macro snowflake__string_literal(value) -%}{{ return(dbt_eventbridge._backslash_string_literal(value)) }}{%- endmacro %}
{% macro spark__string_literal(value) -%}{{ return(dbt_eventbridge._backslash_string_literal(value)) }}{%- endmacro %}
{% macro redshift__string_literal(value) -%}{{ return(dbt_eventbridge._backslash_string_literal(value)) }}{%- endmacro %}
