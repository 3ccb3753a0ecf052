select event_id, payload
from {{ ref('web_events_versions') }}
where {{ var('day') }} between first_day and last_day
