{% macro to_cents(amount) -%}
  {{ return((amount * 100) | round | int) }}
{%- endmacro %}
