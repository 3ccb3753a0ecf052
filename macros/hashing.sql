{#-
  Row fingerprints for the diff. What matters is that a hash is stable from run to run on
  one warehouse, never ambiguous (NULL vs '', separators inside values, column order) and
  cheap: text conversion is most of a diff's cost, so native typed hashes are used where
  the warehouse has one. `columns` arrive quoted and sorted by name.
-#}

{% macro row_hash(columns, alias) -%}
  {{ return(adapter.dispatch('row_hash', 'dbt_eventbridge')(columns, alias)) }}
{%- endmacro %}

{#- `columns` qualified by `alias`; with no alias they are whole expressions already
    (the diff compares typed state columns, and casts, across schema changes). -#}
{% macro _qualify(columns, alias) -%}
  {%- set out = [] -%}
  {%- for c in columns %}{% do out.append((alias ~ '.' ~ c) if alias else c) %}{% endfor -%}
  {{ return(out) }}
{%- endmacro %}

{#- Portable fallback: every value length-prefixed with a NULL marker, then md5. -#}
{% macro default__row_hash(columns, alias) -%}
  md5(
  {%- for c in dbt_eventbridge._qualify(columns, alias) %}
    coalesce(cast(length(cast({{ c }} as {{ dbt_eventbridge.text_type() }})) as {{ dbt_eventbridge.text_type() }}) || ':' || cast({{ c }} as {{ dbt_eventbridge.text_type() }}), '~')
    {%- if not loop.last %} || '|' ||{% endif %}
  {%- endfor %}
  )
{%- endmacro %}

{#- DuckDB's hash() is typed, NULL-position-safe and 64-bit; ~8x faster than md5 of text. -#}
{% macro duckdb__row_hash(columns, alias) -%}
  hash({{ dbt_eventbridge._qualify(columns, alias) | join(", ") }})
{%- endmacro %}

{#- ROW(...)::text quotes and escapes each field and writes NULL as nothing, so it is
    unambiguous; TimeZone and extra_float_digits are pinned by session_setup. -#}
{% macro postgres__row_hash(columns, alias) -%}
  md5(row({{ dbt_eventbridge._qualify(columns, alias) | join(", ") }})::text)
{%- endmacro %}

{#- Redshift has no ROW(...)::text (dbt-redshift dispatches to postgres__ first): the
    portable form, with VARCHAR(MAX) so long values are hashed whole. -#}
{% macro redshift__row_hash(columns, alias) -%}
  {{ return(dbt_eventbridge.default__row_hash(columns, alias)) }}
{%- endmacro %}

{% macro snowflake__row_hash(columns, alias) -%}
  hash({{ dbt_eventbridge._qualify(columns, alias) | join(", ") }})
{%- endmacro %}

{#- Each value as JSON text (typed: 1 and '1' differ, NULL is null), in a JSON array: a
    STRUCT's JSON would carry the column names, and the diff compares a model's columns with
    the state's physical ones (_eb_c1...) across schema changes. -#}
{% macro bigquery__row_hash(columns, alias) -%}
  farm_fingerprint(to_json_string([{% for c in dbt_eventbridge._qualify(columns, alias) %}to_json_string({{ c }}){{ ", " if not loop.last }}{% endfor %}]))
{%- endmacro %}

{#- Spark's xxhash64 skips NULL arguments, so a NULL flag precedes each column. -#}
{% macro spark__row_hash(columns, alias) -%}
  xxhash64({% for c in dbt_eventbridge._qualify(columns, alias) %}{{ c }} is null, {{ c }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- The version of the hash expression, stored with the state: a change re-baselines. -#}
{% macro hash_version() -%}
  {{ return(adapter.dispatch('hash_version', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__hash_version() -%}{{ return(adapter.type() ~ '-v1') }}{%- endmacro %}


{#- Session settings that make text forms (and so Postgres' hash) stable. -#}
{#- memory_limit: DuckDB's, for our own session ('' or '0': the profile's). Validated by
    Settings (digits and a unit), so it is quoted as it is. -#}
{% macro session_setup(memory_limit='') -%}
  {{ return(adapter.dispatch('session_setup', 'dbt_eventbridge')(memory_limit)) }}
{%- endmacro %}
{% macro default__session_setup(memory_limit) -%}{{ return('') }}{%- endmacro %}
{% macro postgres__session_setup(memory_limit) -%}
  {{ return("set timezone = 'UTC'; set extra_float_digits = 3; set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'") }}
{%- endmacro %}
{#- Redshift has no intervalstyle setting. -#}
{% macro redshift__session_setup(memory_limit) -%}
  {{ return("set timezone to 'UTC'; set extra_float_digits to 3; set datestyle to 'ISO, MDY'") }}
{%- endmacro %}
{% macro duckdb__session_setup(memory_limit) -%}
  {%- set limit = "; set memory_limit = '" ~ memory_limit ~ "'" if memory_limit not in ('', '0') else '' -%}
  {{ return("set timezone = 'UTC'" ~ limit) }}
{%- endmacro %}
