-- Tests of the package's row_hash macro, dbt-utils style: rows that must hash apart
-- (NULL position, NULL vs '', separators inside values) and a row that must hash the same.
{{ config(materialized='table', tags=['package_tests']) }}

with cases as (
  select 1 as case_id, cast('x' as varchar(20)) as a, cast(null as varchar(20)) as b, cast('y' as varchar(20)) as c
  union all select 2, 'x', 'y', null
  union all select 3, null, 'p', 'q'
  union all select 4, '', 'p', 'q'
  union all select 5, 'a|b', 'c', ''
  union all select 6, 'a', 'b|c', ''
  union all select 7, '1:a', null, null
  union all select 8, '1', 'a', null
  union all select 9, 'x', null, 'y'
)
select
  case_id,
  cast({{ dbt_eventbridge.row_hash(['a', 'b', 'c'], 'cases') }} as {{ dbt.type_string() }}) as native_hash,
  {{ dbt_eventbridge.default__row_hash(['a', 'b', 'c'], 'cases') }} as portable_hash
from cases
