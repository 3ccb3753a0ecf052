select
  customer_id,
  first_name || ' ' || last_name as full_name,
  first_name,
  last_name,
  age,
  email_address,
  phone_number,
  plan,
  updated_at
from {{ ref('customers_versions') }}
where {{ var('day') }} between first_day and last_day
