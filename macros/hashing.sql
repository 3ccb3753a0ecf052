{#-
  Row fingerprints for the diff. What matters is that a hash is stable from run to run on
  one warehouse, never ambiguous (NULL vs '', separators inside values, column order) and
  cheap: text conversion is most of a diff's cost, so native typed hashes are used where
  the warehouse has one. `columns` arrive quoted and sorted by name.
-#}

{% macro row_hash(columns, alias) -%}
  {{ return(adapter.dispatch('row_hash', 'dbt_eventbridge')(columns, alias)) }}
{%- endmacro %}

{#- Portable fallback: every value length-prefixed with a NULL marker, then md5. -#}
{% macro default__row_hash(columns, alias) -%}
  md5(
  {%- for c in columns %}
    coalesce(cast(length(cast({{ alias }}.{{ c }} as {{ dbt.type_string() }})) as {{ dbt.type_string() }}) || ':' || cast({{ alias }}.{{ c }} as {{ dbt.type_string() }}), '~')
    {%- if not loop.last %} || '|' ||{% endif %}
  {%- endfor %}
  )
{%- endmacro %}

{#- DuckDB's hash() is typed, NULL-position-safe and 64-bit; ~8x faster than md5 of text. -#}
{% macro duckdb__row_hash(columns, alias) -%}
  hash({% for c in columns %}{{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- ROW(...)::text quotes and escapes each field and writes NULL as nothing, so it is
    unambiguous; TimeZone and extra_float_digits are pinned by session_setup. -#}
{% macro postgres__row_hash(columns, alias) -%}
  md5(row({% for c in columns %}{{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %})::text)
{%- endmacro %}

{% macro snowflake__row_hash(columns, alias) -%}
  hash({% for c in columns %}{{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro bigquery__row_hash(columns, alias) -%}
  farm_fingerprint(to_json_string(struct({% for c in columns %}{{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %})))
{%- endmacro %}

{#- Spark's xxhash64 skips NULL arguments, so a NULL flag precedes each column. -#}
{% macro spark__row_hash(columns, alias) -%}
  xxhash64({% for c in columns %}{{ alias }}.{{ c }} is null, {{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- The version of the hash expression, stored with the state: a change re-baselines. -#}
{% macro hash_version() -%}
  {{ return(adapter.dispatch('hash_version', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__hash_version() -%}{{ return(adapter.type() ~ '-v1') }}{%- endmacro %}


{#- The whole row as JSON text: the last delivered values kept in the state. -#}
{% macro row_json(alias, columns) -%}
  {{ return(adapter.dispatch('row_json', 'dbt_eventbridge')(alias, columns)) }}
{%- endmacro %}

{% macro default__row_json(alias, columns) -%}
  cast(to_json({{ alias }}) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro duckdb__row_json(alias, columns) -%}
  cast(to_json({{ alias }}) as varchar)
{%- endmacro %}

{#- row_to_json of the alias avoids json_build_object's 100-argument limit. -#}
{% macro postgres__row_json(alias, columns) -%}
  row_to_json({{ alias }})::text
{%- endmacro %}

{% macro snowflake__row_json(alias, columns) -%}
  to_json(object_construct_keep_null({% for c in columns %}'{{ c | replace('"', '') }}', {{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %}))
{%- endmacro %}

{% macro bigquery__row_json(alias, columns) -%}
  to_json_string({{ alias }})
{%- endmacro %}

{% macro spark__row_json(alias, columns) -%}
  to_json(struct({% for c in columns %}{{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %}))
{%- endmacro %}


{#- The named columns of an alias as JSON text (for aliases that hold more than the row). -#}
{% macro row_json_columns(alias, columns) -%}
  {{ return(adapter.dispatch('row_json_columns', 'dbt_eventbridge')(alias, columns)) }}
{%- endmacro %}
{#- (Only DuckDB's plan uses it; dbt needs a default for every dispatched macro.) -#}
{% macro default__row_json_columns(alias, columns) -%}
  (select cast(row_to_json(x) as {{ dbt.type_string() }}) from (select {% for c in columns %}{{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor %}) as x)
{%- endmacro %}
{% macro duckdb__row_json_columns(alias, columns) -%}
  cast(to_json({ {%- for c in columns %}'{{ c[1:-1] | replace('""', '"') | replace("'", "''") }}': {{ alias }}.{{ c }}{{ ", " if not loop.last }}{% endfor -%} }) as varchar)
{%- endmacro %}


{#- Session settings that make text forms (and so Postgres' hash) stable. -#}
{% macro session_setup() -%}
  {{ return(adapter.dispatch('session_setup', 'dbt_eventbridge')()) }}
{%- endmacro %}
{% macro default__session_setup() -%}{{ return('') }}{%- endmacro %}
{% macro postgres__session_setup() -%}
  {{ return("set timezone = 'UTC'; set extra_float_digits = 3; set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'") }}
{%- endmacro %}
{% macro duckdb__session_setup() -%}{{ return("set timezone = 'UTC'") }}{%- endmacro %}
