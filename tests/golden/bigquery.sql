-- dbt-eventbridge's SQL on bigquery, rendered offline by devtools/offline_engines.py.
-- Reviewed on change: `python -m devtools.offline_engines --write` rewrites it.

-- row_hash
farm_fingerprint(to_json_string([to_json_string(src.`Plan`), to_json_string(src.`Region`), to_json_string(src.`customer_id`), to_json_string(src.`email`)]));

-- hash_version
bigquery-v1;

-- session_setup
;

-- json_types
json;

-- text_type
string;

-- int_type
INT64;

-- now_sql
current_timestamp();

-- string_literal
'it\'s a \\ test';

-- key_counts_sql
select
  sum(case when `customer_id` is null or `Region` is null then 1 else 0 end) as null_key_rows,
  count(*) as total_rows,
  (select count(*) from (select distinct `customer_id`, `Region` from `offline-project`.`analytics`.`Customers`
     where `customer_id` is not null and `Region` is not null) d) as distinct_keys
from `offline-project`.`analytics`.`Customers`;

-- key_audit_sql
select
  (select count(*) from `offline-project`.`analytics`.`Customers` where `customer_id` is null or `Region` is null) as null_key_rows,
  (select coalesce(sum(n), 0) from (
     select count(*) as n from `offline-project`.`analytics`.`Customers`
     where `customer_id` is not null and `Region` is not null
     group by `customer_id`, `Region` having count(*) > 1) d) as duplicate_key_rows,
  (select count(*) from `offline-project`.`analytics`.`Customers`) as total_rows;

-- key_totals_sql
select
  sum(case when `customer_id` is null or `Region` is null then 1 else 0 end) as null_key_rows,
  count(*) as total_rows
from `offline-project`.`analytics`.`Customers`;

-- duplicate_keys_sql
select `customer_id`, `Region`, count(*) as n from `offline-project`.`analytics`.`Customers`
where `customer_id` is not null and `Region` is not null
group by `customer_id`, `Region` having count(*) > 1
order by `customer_id`, `Region`
limit 10;

-- key_distinct_rows_per_part
0;

-- plan_select_sql first run
with m as (
  select src.`customer_id`, src.`Region`, farm_fingerprint(to_json_string([to_json_string(src.`Plan`), to_json_string(src.`Region`), to_json_string(src.`customer_id`), to_json_string(src.`email`)])) as _eb_hash
  from `offline-project`.`analytics`.`Customers` as src
  where src.`customer_id` is not null and src.`Region` is not null
),
d as (
  select m.`customer_id`, m.`Region`, 'added' as _eb_op, m._eb_hash as _eb_new_hash,
    cast(null as INT64) as _eb_old_shape
  from m
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  d._eb_new_hash as _eb_hash,
  d._eb_old_shape as _eb_shape,
  d.`customer_id`,
  d.`Region`,
  src.`email`,
  src.`Plan`
from d
left join `offline-project`.`analytics`.`Customers` as src on d.`customer_id` = src.`customer_id` and d.`Region` = src.`Region`;

-- plan_select_sql
with dup as (
  select `customer_id`, `Region` from `offline-project`.`analytics`.`Customers`
  where `customer_id` is not null and `Region` is not null
  group by `customer_id`, `Region` having count(*) > 1
),
m as (
  select src.`customer_id`, src.`Region`, farm_fingerprint(to_json_string([to_json_string(src.`Plan`), to_json_string(src.`Region`), to_json_string(src.`customer_id`), to_json_string(src.`email`)])) as _eb_hash
  from `offline-project`.`analytics`.`Customers` as src
  where src.`customer_id` is not null and src.`Region` is not null and 
    not exists (select 1 from dup where dup.`customer_id` = src.`customer_id` and dup.`Region` = src.`Region`)
),
s as (
  select st._eb_c1 as `customer_id`, st._eb_c2 as `Region`, st._eb_hash, st._eb_shape, st._eb_fp
  from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st
),
d as (
  select coalesce(m.`customer_id`, s.`customer_id`) as `customer_id`, coalesce(m.`Region`, s.`Region`) as `Region`, 
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null then 'added'
         when s._eb_fp = 5 then 'changed'
         else 'changed' end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash,
    s._eb_shape as _eb_old_shape
  from m full outer join s on m.`customer_id` = s.`customer_id` and m.`Region` = s.`Region`
  where s._eb_hash is null
     or (m._eb_hash is null and not exists (select 1 from dup where dup.`customer_id` = s.`customer_id` and dup.`Region` = s.`Region`))
     or m._eb_hash <> s._eb_hash
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  coalesce(d._eb_new_hash, d._eb_old_hash) as _eb_hash,
  cast(d._eb_old_shape as INT64) as _eb_shape,
  d.`customer_id`,
  d.`Region`,
  src.`email`,
  src.`Plan`,
  old._eb_c3 as _eb_o3,
  old._eb_c4 as _eb_o4
from d
left join `offline-project`.`analytics`.`Customers` as src on d.`customer_id` = src.`customer_id` and d.`Region` = src.`Region` and d._eb_op <> 'removed'
left join `offline-project`.`eventbridge_state`.`_eb_state__customers` as old on d.`customer_id` = old._eb_c1 and d.`Region` = old._eb_c2 and d._eb_op <> 'added';

-- plan_select_sql exists only
with m as (
  select src.`customer_id`, src.`Region`, farm_fingerprint(to_json_string([to_json_string(src.`Plan`), to_json_string(src.`Region`), to_json_string(src.`customer_id`), to_json_string(src.`email`)])) as _eb_hash
  from `offline-project`.`analytics`.`Customers` as src
  where src.`customer_id` is not null and src.`Region` is not null
),
s as (
  select st._eb_c1 as `customer_id`, st._eb_c2 as `Region`, st._eb_hash, st._eb_shape, st._eb_fp
  from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st
),
d as (
  select coalesce(m.`customer_id`, s.`customer_id`) as `customer_id`, coalesce(m.`Region`, s.`Region`) as `Region`, 
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null then 'added'
         when s._eb_fp = 5 then 'changed'
         else 'changed' end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash,
    s._eb_shape as _eb_old_shape
  from m full outer join s on m.`customer_id` = s.`customer_id` and m.`Region` = s.`Region`
  where s._eb_hash is null
     or (m._eb_hash is null)
     or m._eb_hash <> s._eb_hash
)
select 1 as _eb_any from d;

-- plan_select_sql schema change
with m as (
  select src.`customer_id`, src.`Region`, farm_fingerprint(to_json_string([to_json_string(src.`Plan`), to_json_string(src.`Region`), to_json_string(src.`customer_id`), to_json_string(src.`email`)])) as _eb_hash,
    farm_fingerprint(to_json_string([to_json_string(src.`email`), to_json_string(cast(src.`Plan` as string))])) as _eb_cmp2,
    farm_fingerprint(to_json_string([to_json_string(src.`email`)])) as _eb_cmp3
  from `offline-project`.`analytics`.`Customers` as src
  where src.`customer_id` is not null and src.`Region` is not null
),
s as (
  select st._eb_c1 as `customer_id`, st._eb_c2 as `Region`, st._eb_hash, st._eb_shape, st._eb_fp,
    case when st._eb_fp = 5 then null else case st._eb_shape
      when 2 then farm_fingerprint(to_json_string([to_json_string(st._eb_c3), to_json_string(cast(st._eb_c4 as string))]))
    end end as _eb_scmp
  from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st
),
d as (
  select coalesce(m.`customer_id`, s.`customer_id`) as `customer_id`, coalesce(m.`Region`, s.`Region`) as `Region`, 
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null or 1 = 1 then 'added'
         when s._eb_fp = 5 then 'changed'
         when s._eb_fp = 1 then case when m._eb_hash = s._eb_hash then 'rebaseline' else 'changed' end
         when s._eb_shape = 2 then case when m._eb_cmp2 = s._eb_scmp then 'rebaseline' else 'changed' end
         when s._eb_shape = 3 then case when m._eb_cmp3 = s._eb_hash then 'refresh' else 'changed' end
         when s._eb_shape = 4 then 'rebaseline'
         else 'changed' end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash,
    s._eb_shape as _eb_old_shape
  from m full outer join s on m.`customer_id` = s.`customer_id` and m.`Region` = s.`Region`
  where s._eb_hash is null
     or (m._eb_hash is null)
     or m._eb_hash <> s._eb_hash or s._eb_fp <> 5 or m._eb_hash is not null
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  coalesce(d._eb_new_hash, d._eb_old_hash) as _eb_hash,
  cast(d._eb_old_shape as INT64) as _eb_shape,
  d.`customer_id`,
  d.`Region`,
  src.`email`,
  src.`Plan`,
  old._eb_c3 as _eb_o3,
  old._eb_c4 as _eb_o4
from d
left join `offline-project`.`analytics`.`Customers` as src on d.`customer_id` = src.`customer_id` and d.`Region` = src.`Region` and d._eb_op <> 'removed'
left join `offline-project`.`eventbridge_state`.`_eb_state__customers` as old on d.`customer_id` = old._eb_c1 and d.`Region` = old._eb_c2 and d._eb_op <> 'added';

-- commit_sql
delete from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st where exists (select 1 from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d._eb_op <> 'rebaseline' and d.`customer_id` = st._eb_c1 and d.`Region` = st._eb_c2);
insert into `offline-project`.`eventbridge_state`.`_eb_state__customers` (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d.`customer_id`, d.`Region`, d.`email`, d.`Plan`, d._eb_hash, 5, 5, current_timestamp()
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d._eb_op not in ('removed', 'rebaseline');
update `offline-project`.`eventbridge_state`.`_eb_state__customers` as t set _eb_hash = d._eb_hash, _eb_fp = 5
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d
where d._eb_op = 'rebaseline' and d.`customer_id` = t._eb_c1 and d.`Region` = t._eb_c2;

-- commit_sql all acked
delete from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st where exists (select 1 from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p) as d where d._eb_op <> 'rebaseline' and d.`customer_id` = st._eb_c1 and d.`Region` = st._eb_c2);
insert into `offline-project`.`eventbridge_state`.`_eb_state__customers` (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d.`customer_id`, d.`Region`, d.`email`, d.`Plan`, d._eb_hash, 5, 5, current_timestamp()
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p) as d where d._eb_op not in ('removed', 'rebaseline');
update `offline-project`.`eventbridge_state`.`_eb_state__customers` as t set _eb_hash = d._eb_hash, _eb_fp = 5
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p) as d
where d._eb_op = 'rebaseline' and d.`customer_id` = t._eb_c1 and d.`Region` = t._eb_c2;

-- rebuild_state_sql
create table `offline-project`.`eventbridge_state`.`_eb_next__customers` as
select p.`customer_id` as _eb_c1, p.`Region` as _eb_c2, p.`email` as _eb_c3, p.`Plan` as _eb_c5, p._eb_o4 as _eb_c4, p._eb_hash, p._eb_shape, p._eb_shape as _eb_fp, current_timestamp() as _eb_delivered_at
from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p
where 1 = 0;
insert into `offline-project`.`eventbridge_state`.`_eb_next__customers` (_eb_c1, _eb_c2, _eb_c3, _eb_c4, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select st._eb_c1, st._eb_c2, st._eb_c3, st._eb_c4, st._eb_hash, st._eb_shape, st._eb_fp, st._eb_delivered_at
from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st
where not exists (select 1 from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d._eb_op <> 'rebaseline' and d.`customer_id` = st._eb_c1 and d.`Region` = st._eb_c2);
insert into `offline-project`.`eventbridge_state`.`_eb_next__customers` (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d.`customer_id`, d.`Region`, d.`email`, d.`Plan`, d._eb_hash, 5, 5, current_timestamp()
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d._eb_op not in ('removed', 'rebaseline');
update `offline-project`.`eventbridge_state`.`_eb_next__customers` as t set _eb_hash = d._eb_hash, _eb_fp = 5
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d
where d._eb_op = 'rebaseline' and d.`customer_id` = t._eb_c1 and d.`Region` = t._eb_c2;

-- rebuild_state_sql first
create table `offline-project`.`eventbridge_state`.`_eb_next__customers` as
select p.`customer_id` as _eb_c1, p.`Region` as _eb_c2, p.`email` as _eb_c3, p.`Plan` as _eb_c5, p._eb_hash, p._eb_shape, p._eb_shape as _eb_fp, current_timestamp() as _eb_delivered_at
from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p
where 1 = 0;
insert into `offline-project`.`eventbridge_state`.`_eb_next__customers` (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d.`customer_id`, d.`Region`, d.`email`, d.`Plan`, d._eb_hash, 1, 1, current_timestamp()
from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d._eb_op not in ('removed', 'rebaseline');

-- kept_shapes_sql
select distinct st._eb_shape from `offline-project`.`eventbridge_state`.`_eb_state__customers` as st
where not exists (select 1 from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d
                  where d._eb_op <> 'rebaseline' and d.`customer_id` = st._eb_c1 and d.`Region` = st._eb_c2);

-- rename_table_sql
alter table `offline-project`.`eventbridge_state`.`_eb_next__customers` rename to `_eb_state__customers`;

-- ack_insert_sql
insert into `offline-project`.`eventbridge_state`.`_eb_acks__customers` (_eb_seq)
select s from unnest([struct(1 as lo, 3 as hi), struct(7 as lo, 7 as hi)]) as r, unnest(generate_array(r.lo, r.hi)) as s;

-- ack_insert_max_rows
100000;

-- plan_index_sql
;

-- history_table_sql layouts
create table if not exists `offline-project`.`eventbridge_state`.`_eb_layouts` (
  sync_name string,
  layout string,
  pending_layout string,
  committed_epoch bigint,
  updated_epoch bigint
);

-- history_table_sql runs
create table if not exists `offline-project`.`eventbridge_state`.`_eb_runs` (
  run_id string,
  sync_name string,
  model string,
  event_bus string,
  status string,
  exit_code INT64,
  started_at timestamp,
  finished_at timestamp,
  seconds FLOAT64,
  planned_added bigint,
  planned_changed bigint,
  planned_removed bigint,
  sent_added bigint,
  sent_changed bigint,
  sent_removed bigint,
  rejected bigint,
  invalid_keys bigint,
  not_triggered bigint,
  requests bigint,
  retried_entries bigint,
  message string,
  dbt_invocation_id string,
  action string,
  run_by string,
  rebaselined bigint,
  initial_skipped bigint,
  forgotten bigint,
  blocked_by string
);

-- history_add_column_sql
alter table `offline-project`.`eventbridge_state`.`_eb_runs` add column action string;
alter table `offline-project`.`eventbridge_state`.`_eb_runs` add column run_by string;
alter table `offline-project`.`eventbridge_state`.`_eb_runs` add column rebaselined bigint;
alter table `offline-project`.`eventbridge_state`.`_eb_runs` add column initial_skipped bigint;
alter table `offline-project`.`eventbridge_state`.`_eb_runs` add column forgotten bigint;
alter table `offline-project`.`eventbridge_state`.`_eb_runs` add column blocked_by string;

-- history_second
timestamp_trunc(
        cast(sent_at as timestamp),
        second
    );

-- create_lock
create table `offline-project`.`eventbridge_state`.`_eb_lock__customers` as select 'host:1:ab' as owner, 'host' as host, cast(1 as bigint) as pid, cast(1700000000 as bigint) as heartbeat_epoch;

-- create_acks
create table `offline-project`.`eventbridge_state`.`_eb_acks__customers` (_eb_seq int64);

-- create_table_as temporary
create table `offline-project`.`eventbridge_state`.`eb_dry_run_1` options (expiration_timestamp = timestamp_add(current_timestamp(), interval 1 day)) as select 1 as x;

-- drop_temp
drop table if exists `offline-project`.`eventbridge_state`.`eb_dry_run_1`;

-- insert_values
insert into `offline-project`.`eventbridge_state`.`_eb_objects` (name, kind, created_epoch) values ('o\'k\\', null, 7);

-- delete_where
delete from `offline-project`.`eventbridge_state`.`_eb_objects` where name = '_eb_plan__customers';

-- touch_object
update `offline-project`.`eventbridge_state`.`_eb_objects` set kind = 'state', sync_name = 'customers', created_epoch = 1700000000 where name = '_eb_state__customers';

-- forget_object
delete from `offline-project`.`eventbridge_state`.`_eb_objects` where name = '_eb_state__customers';

-- lock_beat
update `offline-project`.`eventbridge_state`.`_eb_lock__customers` set heartbeat_epoch = 1700000000 where owner = 'host:1:ab';

-- layout_upsert
merge `offline-project`.`eventbridge_state`.`_eb_layouts` as t using (select 'customers' as sync_name, '{}' as pending_layout, 1 as updated_epoch) as s on t.sync_name = s.sync_name when matched then update set pending_layout = s.pending_layout, updated_epoch = s.updated_epoch when not matched then insert (sync_name, pending_layout, updated_epoch) values (s.sync_name, s.pending_layout, s.updated_epoch);

-- layout_forget_unused
delete from `offline-project`.`eventbridge_state`.`_eb_layouts` where sync_name = 'customers' and layout is null and committed_epoch is null;

-- ack_unsent
insert into `offline-project`.`eventbridge_state`.`_eb_acks__customers` (_eb_seq) select _eb_seq from `offline-project`.`eventbridge_state`.`_eb_plan__customers` where _eb_op not in ('added', 'changed');

-- ack_totals
select count(*), sum(_eb_seq) from `offline-project`.`eventbridge_state`.`_eb_acks__customers`;

-- op_counts
select _eb_op, count(*) from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p group by _eb_op;

-- duplicate_key_groups
select count(*) from (select `customer_id`, `Region` from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p group by `customer_id`, `Region` having count(*) > 1) as d;

-- plan_changes
select p._eb_seq, p._eb_op, p._eb_hash, p._eb_shape, p.`customer_id`, p.`Region`, p.`email`, p.`Plan`, case when p._eb_op = 'removed' then p._eb_o3 end as _eb_o3, case when p._eb_op = 'removed' then p._eb_o4 end as _eb_o4 from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where p._eb_op in ('added', 'changed', 'removed') and p._eb_seq > 0 and p._eb_seq <= 1000;

-- legacy_apply_journal
delete from `offline-project`.`eventbridge_state`.`_eb_state__customers` as t where exists (select 1 from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d.`customer_id` = t.`customer_id` and d.`Region` = t.`Region`);
insert into `offline-project`.`eventbridge_state`.`_eb_state__customers` (`customer_id`, `Region`, _eb_hash, _eb_row, _eb_delivered_at) select `customer_id`, `Region`, _eb_hash, _eb_row, current_timestamp() from (select * from `offline-project`.`eventbridge_state`.`_eb_plan__customers` as p where exists (select 1 from `offline-project`.`eventbridge_state`.`_eb_acks__customers` as a where a._eb_seq = p._eb_seq)) as d where d._eb_op <> 'removed';

-- mark_interrupted
update `offline-project`.`eventbridge_state`.`_eb_runs` set status = 'interrupted', exit_code = 2, message = 'the run was stopped before it finished; the next run recorded what it had delivered' where sync_name = 'customers' and status = 'running' and run_id <> 'run-1';

-- delete_before
delete from `offline-project`.`eventbridge_state`.`_eb_events` where sent_at < '2026-01-01T00:00:00';

-- recent_runs
select run_id, status from `offline-project`.`eventbridge_state`.`_eb_runs` where sync_name = 'customers' order by started_at desc, sync_name limit 20;

-- event_counts
select sync_name, op, error_code, count(*) as events, sum(case when attempts > 1 then attempts - 1 else 0 end) as retries, min(sent_at) as first_at, max(sent_at) as last_at from `offline-project`.`eventbridge_state`.`_eb_events` where run_id = 'run-1' group by sync_name, op, error_code order by sync_name, op, error_code;

-- timeline
select sync_name, timestamp_trunc(
        cast(sent_at as timestamp),
        second
    ) as second, sum(case when error_code is null then 1 else 0 end) as sent, sum(case when error_code is null then 0 else 1 end) as rejected from `offline-project`.`eventbridge_state`.`_eb_events` where run_id = 'run-1' group by sync_name, timestamp_trunc(
        cast(sent_at as timestamp),
        second
    ) order by sync_name, second;

-- history event columns
run_id string, sync_name string, event_key string, op string, event_id string, source string, detail_type string, size_bytes int, aws_event_id string, error_code string, error_message string, attempts int, sent_at timestamp, detail string;
