-- How the day's photographed shoppers split into age groups, per store and for the chain, as
-- published: no age group of 1 to $k - 1 receipts. In each store the groups sql/small_cells.sql
-- merges are one row, age_group 'suppressed' (receipts and share their sums, so the store's
-- shares still add up to 1). A store with fewer than $k matched receipts publishes its
-- 'suppressed' row alone and is left out of the chain level. At chain level a group merged
-- at any store is merged too, so every chain row is a sum of published store rows and tells
-- nothing they do not. Python adds corrected_share afterwards (agebatch/transform/shares.py).
-- Inputs: share_groups (store and chain rows, every group), small_cells, age_groups.
-- Parameters: $day, $k.
with stores as (
    select
        store_id,
        age_group,
        receipts
    from share_groups
    where level = 'store'
),

marked as (
    -- a store of fewer than $k matched receipts merges every row, its empty groups too
    select
        stores.store_id,
        stores.age_group,
        stores.receipts,
        coalesce(small_cells.merged, false)
        or sum(stores.receipts) over (partition by stores.store_id) < $k as merged
    from stores
    left join small_cells
        on small_cells.table_name = 'age_group_shares'
        and stores.store_id = small_cells.store_id
        and [stores.age_group] = small_cells.cell
),

store_rows as (
    select
        store_id,
        age_group,
        receipts
    from marked
    where not merged
    union all
    select
        store_id,
        'suppressed' as age_group,
        sum(receipts)::bigint as receipts
    from marked
    where merged
    group by store_id
),

regular_stores as (
    -- the chain level's stores: those with at least $k matched receipts
    select store_id
    from stores
    group by store_id
    having sum(receipts) >= $k
),

merged_groups as (
    select distinct age_group
    from marked
    where merged and store_id in (select store_id from regular_stores)
),

chain_rows as (
    -- a group merged at any of those stores is merged at chain level too
    select
        age_groups.label as age_group,
        coalesce(sum(stores.receipts), 0)::bigint as receipts
    from age_groups
    left join stores
        on age_groups.label = stores.age_group
        and stores.store_id in (select store_id from regular_stores)
    where
        exists (select 1 from regular_stores)
        and age_groups.label not in (select age_group from merged_groups)
    group by age_groups.label
    union all
    select
        'suppressed' as age_group,
        sum(receipts)::bigint as receipts
    from stores
    where
        store_id in (select store_id from regular_stores)
        and age_group in (select age_group from merged_groups)
    having sum(receipts) > 0
),

published as (
    select
        'store' as level,
        store_id,
        age_group,
        receipts,
        receipts / sum(receipts) over (partition by store_id) as share
    from store_rows
    union all
    select
        'chain' as level,
        null::varchar as store_id,
        age_group,
        receipts,
        receipts / sum(receipts) over () as share
    from chain_rows
),

final as (
    select
        $day::date as day,
        published.level,
        published.store_id,
        published.age_group,
        age_groups.low_years as age_group_low,
        age_groups.high_years as age_group_high,
        published.receipts,
        published.share
    from published
    left join age_groups on published.age_group = age_groups.label
)

select * from final
order by level desc, store_id, age_group = 'suppressed', age_group_low
