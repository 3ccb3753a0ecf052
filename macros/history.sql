{#-
  Run history, in the state schema next to the delivered state (see dbt_eventbridge/history.py):
  _eb_runs (one row per sync per run), _eb_events (one row per event sent or rejected) and
  _eb_alert_status (what each alert last said about each sync). The column types come from
  dbt's cross-database type macros, so the tables read the same way on every warehouse.
  `columns` is a list of [name, kind] with kind one of string, int, bigint, float, timestamp.
-#}
{% macro history_table_sql(relation, columns) -%}
  {{ return(adapter.dispatch('history_table_sql', 'dbt_eventbridge')(relation, columns)) }}
{%- endmacro %}

{% macro default__history_table_sql(relation, columns) -%}
create table if not exists {{ relation }} (
  {%- for name, kind in columns %}
  {{ name }} {{ dbt_eventbridge.history_type(kind) }}{{ "," if not loop.last }}
  {%- endfor %}
)
{%- endmacro %}

{#-
  A column that a later version added to one of these tables, added to a table an earlier
  version made (dbt_eventbridge/warehouse/history.py migrates _eb_runs this way): one column
  per statement, which every engine takes (Redshift adds one at a time), at the table's end.
-#}
{% macro history_add_column_sql(relation, name, kind) -%}
  {{ return(adapter.dispatch('history_add_column_sql', 'dbt_eventbridge')(relation, name, kind)) }}
{%- endmacro %}

{% macro default__history_add_column_sql(relation, name, kind) -%}
alter table {{ relation }} add column {{ name }} {{ dbt_eventbridge.history_type(kind) }}
{%- endmacro %}

{#- Spark (and Databricks, which dispatches here): ADD COLUMNS, with its list in parentheses. -#}
{% macro spark__history_add_column_sql(relation, name, kind) -%}
alter table {{ relation }} add columns ({{ name }} {{ dbt_eventbridge.history_type(kind) }})
{%- endmacro %}

{% macro history_type(kind) -%}
  {%- if kind == 'string' -%}{{ dbt_eventbridge.history_text_type() }}
  {%- elif kind == 'int' -%}{{ dbt.type_int() }}
  {%- elif kind == 'bigint' -%}{{ dbt.type_bigint() }}
  {%- elif kind == 'float' -%}{{ dbt_eventbridge.history_float_type() }}
  {%- elif kind == 'timestamp' -%}{{ dbt.type_timestamp() }}
  {%- else -%}{{ exceptions.raise_compiler_error("unknown history column kind " ~ kind) }}
  {%- endif -%}
{%- endmacro %}

{#- A timestamp truncated to its second: the report's events/s, counted in the warehouse. -#}
{% macro history_second(column) -%}{{ dbt.date_trunc('second', column) }}{%- endmacro %}

{#- Details go up to 256 KB: an unbounded text type where the warehouse has one. -#}
{% macro history_text_type() -%}
  {{ return(adapter.dispatch('history_text_type', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__history_text_type() -%}{{ return(dbt.type_string()) }}{%- endmacro %}
{% macro postgres__history_text_type() -%}{{ return('text') }}{%- endmacro %}
{% macro duckdb__history_text_type() -%}{{ return('varchar') }}{%- endmacro %}
{% macro redshift__history_text_type() -%}{{ return('varchar(65535)') }}{%- endmacro %}
{% macro snowflake__history_text_type() -%}{{ return('varchar') }}{%- endmacro %}
{% macro bigquery__history_text_type() -%}{{ return('string') }}{%- endmacro %}
{% macro spark__history_text_type() -%}{{ return('string') }}{%- endmacro %}

{#- Seconds and shares as 8-byte floats: dbt's type_float() is a 4-byte REAL on DuckDB. -#}
{% macro history_float_type() -%}
  {{ return(adapter.dispatch('history_float_type', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__history_float_type() -%}{{ return(dbt.type_float()) }}{%- endmacro %}
{% macro duckdb__history_float_type() -%}{{ return('double') }}{%- endmacro %}
