-- dbt-eventbridge's SQL on postgres, rendered offline by devtools/offline_engines.py.
-- Reviewed on change: `python -m devtools.offline_engines --write` rewrites it.

-- row_hash
md5(row(src."Plan", src."Region", src."customer_id", src."email")::text);

-- hash_version
postgres-v1;

-- session_setup
set timezone = 'UTC'; set extra_float_digits = 3; set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres';

-- json_types
;

-- text_type
TEXT;

-- int_type
integer;

-- now_sql
now();

-- string_literal
'it''s a \ test';

-- key_counts_sql
select
  sum(case when "customer_id" is null or "Region" is null then 1 else 0 end) as null_key_rows,
  count(*) as total_rows,
  (select count(*) from (select distinct "customer_id", "Region" from "d"."analytics"."Customers"
     where "customer_id" is not null and "Region" is not null) d) as distinct_keys
from "d"."analytics"."Customers";

-- key_audit_sql
select
  (select count(*) from "d"."analytics"."Customers" where "customer_id" is null or "Region" is null) as null_key_rows,
  (select coalesce(sum(n), 0) from (
     select count(*) as n from "d"."analytics"."Customers"
     where "customer_id" is not null and "Region" is not null
     group by "customer_id", "Region" having count(*) > 1) d) as duplicate_key_rows,
  (select count(*) from "d"."analytics"."Customers") as total_rows;

-- key_totals_sql
select
  sum(case when "customer_id" is null or "Region" is null then 1 else 0 end) as null_key_rows,
  count(*) as total_rows
from "d"."analytics"."Customers";

-- duplicate_keys_sql
select "customer_id", "Region", count(*) as n from "d"."analytics"."Customers"
where "customer_id" is not null and "Region" is not null
group by "customer_id", "Region" having count(*) > 1
order by "customer_id", "Region"
limit 10;

-- key_distinct_rows_per_part
0;

-- plan_select_sql first run
with m as (
  select src."customer_id", src."Region", md5(row(src."Plan", src."Region", src."customer_id", src."email")::text) as _eb_hash
  from "d"."analytics"."Customers" as src
  where src."customer_id" is not null and src."Region" is not null
),
d as (
  select m."customer_id", m."Region", 'added' as _eb_op, m._eb_hash as _eb_new_hash,
    cast(null as integer) as _eb_old_shape
  from m
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  d._eb_new_hash as _eb_hash,
  d._eb_old_shape as _eb_shape,
  d."customer_id",
  d."Region",
  src."email",
  src."Plan"
from d
left join "d"."analytics"."Customers" as src on d."customer_id" = src."customer_id" and d."Region" = src."Region";

-- plan_select_sql
with dup as (
  select "customer_id", "Region" from "d"."analytics"."Customers"
  where "customer_id" is not null and "Region" is not null
  group by "customer_id", "Region" having count(*) > 1
),
m as (
  select src."customer_id", src."Region", md5(row(src."Plan", src."Region", src."customer_id", src."email")::text) as _eb_hash
  from "d"."analytics"."Customers" as src
  where src."customer_id" is not null and src."Region" is not null and 
    not exists (select 1 from dup where dup."customer_id" = src."customer_id" and dup."Region" = src."Region")
),
s as (
  select st._eb_c1 as "customer_id", st._eb_c2 as "Region", st._eb_hash, st._eb_shape, st._eb_fp
  from "d"."eventbridge_state"."_eb_state__customers" as st
),
d as (
  select coalesce(m."customer_id", s."customer_id") as "customer_id", coalesce(m."Region", s."Region") as "Region", 
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null then 'added'
         when s._eb_fp = 5 then 'changed'
         else 'changed' end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash,
    s._eb_shape as _eb_old_shape
  from m full outer join s on m."customer_id" = s."customer_id" and m."Region" = s."Region"
  where s._eb_hash is null
     or (m._eb_hash is null and not exists (select 1 from dup where dup."customer_id" = s."customer_id" and dup."Region" = s."Region"))
     or m._eb_hash <> s._eb_hash
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  coalesce(d._eb_new_hash, d._eb_old_hash) as _eb_hash,
  cast(d._eb_old_shape as integer) as _eb_shape,
  d."customer_id",
  d."Region",
  src."email",
  src."Plan",
  old._eb_c3 as _eb_o3,
  old._eb_c4 as _eb_o4
from d
left join "d"."analytics"."Customers" as src on d."customer_id" = src."customer_id" and d."Region" = src."Region" and d._eb_op <> 'removed'
left join "d"."eventbridge_state"."_eb_state__customers" as old on d."customer_id" = old._eb_c1 and d."Region" = old._eb_c2 and d._eb_op <> 'added';

-- plan_select_sql exists only
with m as (
  select src."customer_id", src."Region", md5(row(src."Plan", src."Region", src."customer_id", src."email")::text) as _eb_hash
  from "d"."analytics"."Customers" as src
  where src."customer_id" is not null and src."Region" is not null
),
s as (
  select st._eb_c1 as "customer_id", st._eb_c2 as "Region", st._eb_hash, st._eb_shape, st._eb_fp
  from "d"."eventbridge_state"."_eb_state__customers" as st
),
d as (
  select coalesce(m."customer_id", s."customer_id") as "customer_id", coalesce(m."Region", s."Region") as "Region", 
    case when m._eb_hash is null then 'removed'
         when s._eb_hash is null then 'added'
         when s._eb_fp = 5 then 'changed'
         else 'changed' end as _eb_op,
    m._eb_hash as _eb_new_hash,
    s._eb_hash as _eb_old_hash,
    s._eb_shape as _eb_old_shape
  from m full outer join s on m."customer_id" = s."customer_id" and m."Region" = s."Region"
  where s._eb_hash is null
     or (m._eb_hash is null)
     or m._eb_hash <> s._eb_hash
)
select 1 as _eb_any from d;

-- plan_select_sql schema change
with m as (
  select src."customer_id", src."Region", md5(row(src."Plan", src."Region", src."customer_id", src."email")::text) as _eb_hash,
    md5(row(src."email", cast(src."Plan" as TEXT))::text) as _eb_cmp2,
    md5(row(src."email")::text) as _eb_cmp3
  from "d"."analytics"."Customers" as src
  where src."customer_id" is not null and src."Region" is not null
),
s as (
  select st._eb_c1 as "customer_id", st._eb_c2 as "Region", st._eb_hash, st._eb_shape, st._eb_fp,
    case when st._eb_fp = 5 then null else case st._eb_shape
      when 2 then md5(row(st._eb_c3, cast(st._eb_c4 as TEXT))::text)
    end end as _eb_scmp
  from "d"."eventbridge_state"."_eb_state__customers" as st
),
d as (
  select coalesce(m."customer_id", s."customer_id") as "customer_id", coalesce(m."Region", s."Region") as "Region", 
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
  from m full outer join s on m."customer_id" = s."customer_id" and m."Region" = s."Region"
  where s._eb_hash is null
     or (m._eb_hash is null)
     or m._eb_hash <> s._eb_hash or s._eb_fp <> 5 or m._eb_hash is not null
)
select
  row_number() over () as _eb_seq,
  d._eb_op,
  coalesce(d._eb_new_hash, d._eb_old_hash) as _eb_hash,
  cast(d._eb_old_shape as integer) as _eb_shape,
  d."customer_id",
  d."Region",
  src."email",
  src."Plan",
  old._eb_c3 as _eb_o3,
  old._eb_c4 as _eb_o4
from d
left join "d"."analytics"."Customers" as src on d."customer_id" = src."customer_id" and d."Region" = src."Region" and d._eb_op <> 'removed'
left join "d"."eventbridge_state"."_eb_state__customers" as old on d."customer_id" = old._eb_c1 and d."Region" = old._eb_c2 and d._eb_op <> 'added';

-- commit_sql
delete from "d"."eventbridge_state"."_eb_state__customers" using (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d."customer_id" = "_eb_state__customers"._eb_c1 and d."Region" = "_eb_state__customers"._eb_c2 and d._eb_op <> 'rebaseline';
insert into "d"."eventbridge_state"."_eb_state__customers" (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d."customer_id", d."Region", d."email", d."Plan", d._eb_hash, 5, 5, now()
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d._eb_op not in ('removed', 'rebaseline');
update "d"."eventbridge_state"."_eb_state__customers" set _eb_hash = d._eb_hash, _eb_fp = 5
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d
where d._eb_op = 'rebaseline' and d."customer_id" = "_eb_state__customers"._eb_c1 and d."Region" = "_eb_state__customers"._eb_c2;

-- commit_sql all acked
delete from "d"."eventbridge_state"."_eb_state__customers" using (select * from "d"."eventbridge_state"."_eb_plan__customers" as p) as d where d."customer_id" = "_eb_state__customers"._eb_c1 and d."Region" = "_eb_state__customers"._eb_c2 and d._eb_op <> 'rebaseline';
insert into "d"."eventbridge_state"."_eb_state__customers" (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d."customer_id", d."Region", d."email", d."Plan", d._eb_hash, 5, 5, now()
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p) as d where d._eb_op not in ('removed', 'rebaseline');
update "d"."eventbridge_state"."_eb_state__customers" set _eb_hash = d._eb_hash, _eb_fp = 5
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p) as d
where d._eb_op = 'rebaseline' and d."customer_id" = "_eb_state__customers"._eb_c1 and d."Region" = "_eb_state__customers"._eb_c2;

-- rebuild_state_sql
create table "d"."eventbridge_state"."_eb_next__customers" as
select p."customer_id" as _eb_c1, p."Region" as _eb_c2, p."email" as _eb_c3, p."Plan" as _eb_c5, p._eb_o4 as _eb_c4, p._eb_hash, p._eb_shape, p._eb_shape as _eb_fp, now() as _eb_delivered_at
from "d"."eventbridge_state"."_eb_plan__customers" as p
where 1 = 0;
insert into "d"."eventbridge_state"."_eb_next__customers" (_eb_c1, _eb_c2, _eb_c3, _eb_c4, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select st._eb_c1, st._eb_c2, st._eb_c3, st._eb_c4, st._eb_hash, st._eb_shape, st._eb_fp, st._eb_delivered_at
from "d"."eventbridge_state"."_eb_state__customers" as st
where not exists (select 1 from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d._eb_op <> 'rebaseline' and d."customer_id" = st._eb_c1 and d."Region" = st._eb_c2);
insert into "d"."eventbridge_state"."_eb_next__customers" (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d."customer_id", d."Region", d."email", d."Plan", d._eb_hash, 5, 5, now()
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d._eb_op not in ('removed', 'rebaseline');
update "d"."eventbridge_state"."_eb_next__customers" set _eb_hash = d._eb_hash, _eb_fp = 5
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d
where d._eb_op = 'rebaseline' and d."customer_id" = "_eb_next__customers"._eb_c1 and d."Region" = "_eb_next__customers"._eb_c2;

-- rebuild_state_sql first
create table "d"."eventbridge_state"."_eb_next__customers" as
select p."customer_id" as _eb_c1, p."Region" as _eb_c2, p."email" as _eb_c3, p."Plan" as _eb_c5, p._eb_hash, p._eb_shape, p._eb_shape as _eb_fp, now() as _eb_delivered_at
from "d"."eventbridge_state"."_eb_plan__customers" as p
where 1 = 0;
insert into "d"."eventbridge_state"."_eb_next__customers" (_eb_c1, _eb_c2, _eb_c3, _eb_c5, _eb_hash, _eb_shape, _eb_fp, _eb_delivered_at)
select d."customer_id", d."Region", d."email", d."Plan", d._eb_hash, 1, 1, now()
from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d._eb_op not in ('removed', 'rebaseline');

-- kept_shapes_sql
select distinct st._eb_shape from "d"."eventbridge_state"."_eb_state__customers" as st
where not exists (select 1 from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d
                  where d._eb_op <> 'rebaseline' and d."customer_id" = st._eb_c1 and d."Region" = st._eb_c2);

-- rename_table_sql
alter table "d"."eventbridge_state"."_eb_next__customers" rename to "_eb_state__customers";

-- ack_insert_sql
insert into "d"."eventbridge_state"."_eb_acks__customers" (_eb_seq)
select generate_series(r.lo, r.hi) from (values (1::bigint, 3::bigint), (7::bigint, 7::bigint)) as r(lo, hi);

-- ack_insert_max_rows
10000000;

-- plan_index_sql
create index on "d"."eventbridge_state"."_eb_plan__customers" (_eb_seq);

-- history_table_sql layouts
create table if not exists "d"."eventbridge_state"."_eb_layouts" (
  sync_name text,
  layout text,
  pending_layout text,
  committed_epoch bigint,
  updated_epoch bigint
);

-- history_table_sql runs
create table if not exists "d"."eventbridge_state"."_eb_runs" (
  run_id text,
  sync_name text,
  model text,
  event_bus text,
  status text,
  exit_code integer,
  started_at timestamp,
  finished_at timestamp,
  seconds float,
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
  message text,
  dbt_invocation_id text,
  action text,
  run_by text,
  rebaselined bigint,
  initial_skipped bigint,
  forgotten bigint,
  blocked_by text
);

-- history_add_column_sql
alter table "d"."eventbridge_state"."_eb_runs" add column action text;
alter table "d"."eventbridge_state"."_eb_runs" add column run_by text;
alter table "d"."eventbridge_state"."_eb_runs" add column rebaselined bigint;
alter table "d"."eventbridge_state"."_eb_runs" add column initial_skipped bigint;
alter table "d"."eventbridge_state"."_eb_runs" add column forgotten bigint;
alter table "d"."eventbridge_state"."_eb_runs" add column blocked_by text;

-- history_second
date_trunc('second', sent_at);

-- create_lock
create table "d"."eventbridge_state"."_eb_lock__customers" as select 'host:1:ab' as owner, 'host' as host, cast(1 as bigint) as pid, cast(1700000000 as bigint) as heartbeat_epoch;

-- create_acks
create table "d"."eventbridge_state"."_eb_acks__customers" (_eb_seq bigint);

-- create_table_as temporary
create temporary table eb_dry_run_1 as select 1 as x;

-- drop_temp
drop table if exists eb_dry_run_1;

-- insert_values
insert into "d"."eventbridge_state"."_eb_objects" (name, kind, created_epoch) values ('o''k\', null, 7);

-- delete_where
delete from "d"."eventbridge_state"."_eb_objects" where name = '_eb_plan__customers';

-- touch_object
update "d"."eventbridge_state"."_eb_objects" set kind = 'state', sync_name = 'customers', created_epoch = 1700000000 where name = '_eb_state__customers';

-- forget_object
delete from "d"."eventbridge_state"."_eb_objects" where name = '_eb_state__customers';

-- lock_beat
update "d"."eventbridge_state"."_eb_lock__customers" set heartbeat_epoch = 1700000000 where owner = 'host:1:ab';

-- layout_upsert
update "d"."eventbridge_state"."_eb_layouts" set pending_layout = '{}', updated_epoch = 1 where sync_name = 'customers';
insert into "d"."eventbridge_state"."_eb_layouts" (sync_name, pending_layout, updated_epoch) select 'customers', '{}', 1 where not exists (select 1 from "d"."eventbridge_state"."_eb_layouts" where sync_name = 'customers');

-- layout_forget_unused
delete from "d"."eventbridge_state"."_eb_layouts" where sync_name = 'customers' and layout is null and committed_epoch is null;

-- ack_unsent
insert into "d"."eventbridge_state"."_eb_acks__customers" (_eb_seq) select _eb_seq from "d"."eventbridge_state"."_eb_plan__customers" where _eb_op not in ('added', 'changed');

-- ack_totals
select count(*), sum(_eb_seq) from "d"."eventbridge_state"."_eb_acks__customers";

-- op_counts
select _eb_op, count(*) from "d"."eventbridge_state"."_eb_plan__customers" as p group by _eb_op;

-- duplicate_key_groups
select count(*) from (select "customer_id", "Region" from "d"."eventbridge_state"."_eb_plan__customers" as p group by "customer_id", "Region" having count(*) > 1) as d;

-- plan_changes
select p._eb_seq, p._eb_op, p._eb_hash, p._eb_shape, p."customer_id", p."Region", p."email", p."Plan", case when p._eb_op = 'removed' then p._eb_o3 end as _eb_o3, case when p._eb_op = 'removed' then p._eb_o4 end as _eb_o4 from "d"."eventbridge_state"."_eb_plan__customers" as p where p._eb_op in ('added', 'changed', 'removed') and p._eb_seq > 0 and p._eb_seq <= 1000;

-- legacy_apply_journal
delete from "d"."eventbridge_state"."_eb_state__customers" using (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d."customer_id" = "_eb_state__customers"."customer_id" and d."Region" = "_eb_state__customers"."Region";
insert into "d"."eventbridge_state"."_eb_state__customers" ("customer_id", "Region", _eb_hash, _eb_row, _eb_delivered_at) select "customer_id", "Region", _eb_hash, _eb_row, now() from (select * from "d"."eventbridge_state"."_eb_plan__customers" as p where exists (select 1 from "d"."eventbridge_state"."_eb_acks__customers" as a where a._eb_seq = p._eb_seq)) as d where d._eb_op <> 'removed';

-- mark_interrupted
update "d"."eventbridge_state"."_eb_runs" set status = 'interrupted', exit_code = 2, message = 'the run was stopped before it finished; the next run recorded what it had delivered' where sync_name = 'customers' and status = 'running' and run_id <> 'run-1';

-- delete_before
delete from "d"."eventbridge_state"."_eb_events" where sent_at < '2026-01-01T00:00:00';

-- recent_runs
select run_id, status from "d"."eventbridge_state"."_eb_runs" where sync_name = 'customers' order by started_at desc, sync_name limit 20;

-- event_counts
select sync_name, op, error_code, count(*) as events, sum(case when attempts > 1 then attempts - 1 else 0 end) as retries, min(sent_at) as first_at, max(sent_at) as last_at from "d"."eventbridge_state"."_eb_events" where run_id = 'run-1' group by sync_name, op, error_code order by sync_name, op, error_code;

-- timeline
select sync_name, date_trunc('second', sent_at) as second, sum(case when error_code is null then 1 else 0 end) as sent, sum(case when error_code is null then 0 else 1 end) as rejected from "d"."eventbridge_state"."_eb_events" where run_id = 'run-1' group by sync_name, date_trunc('second', sent_at) order by sync_name, second;

-- history event columns
run_id string, sync_name string, event_key string, op string, event_id string, source string, detail_type string, size_bytes int, aws_event_id string, error_code string, error_message string, attempts int, sent_at timestamp, detail string;
