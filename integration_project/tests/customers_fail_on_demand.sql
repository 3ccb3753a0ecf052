-- A data test that fails when var('fail_customer_test') is true: it shows that a model
-- whose tests fail under `dbt build` is not synced.
select customer_id from {{ ref('customers') }} where {{ var('fail_customer_test', false) }}
