select account_id, name, active, balance, opened_on
from {{ ref('accounts_versions') }}
where {{ var('day') }} between first_day and last_day
