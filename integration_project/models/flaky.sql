-- Fails on purpose when `break_flaky` is true, to show that a failed model is not synced.
select {% if var('break_flaky') %}no_such_column{% else %}1{% endif %} as id, 'steady' as status
