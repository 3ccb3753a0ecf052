-- Fails (returns rows) when two different rows of hash_cases share a hash, or when the
-- identical rows 1 and 9 do not.
{% for h in ['native_hash', 'portable_hash'] %}
select '{{ h }}' as which, x.case_id as left_case, y.case_id as right_case
from {{ ref('hash_cases') }} x
join {{ ref('hash_cases') }} y on x.case_id < y.case_id
where (x.{{ h }} = y.{{ h }}) <> (x.case_id = 1 and y.case_id = 9)
{% if not loop.last %}union all{% endif %}
{% endfor %}
