select order_id, line_no, sku, quantity, amount
from {{ ref('order_lines_versions') }}
where {{ var('day') }} between first_day and last_day
