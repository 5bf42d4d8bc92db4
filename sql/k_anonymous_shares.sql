-- age_group_shares as published: no age group of 1 to $k - 1 receipts. In each store, such
-- groups are merged into one row, age_group 'suppressed' (receipts and share their sums, so
-- the store's shares still add up to 1). When that row would hold fewer than $k receipts,
-- the store's smallest other groups join it until it holds $k: a merged row always covers
-- at least two groups. A store with fewer than $k matched receipts publishes its
-- 'suppressed' row alone and is left out of the chain level. At chain level a group merged
-- at any store is merged too, so every chain row is a sum of published store rows and tells
-- nothing they do not. Python adds corrected_share afterwards (agebatch/reports/shares.py).
-- Inputs: age_group_shares (store and chain rows, every group), age_groups.
-- Parameters: $day, $k.
with stores as (
    select
        store_id,
        age_group,
        receipts
    from age_group_shares
    where level = 'store'
),

totals as (
    select
        store_id,
        count(*) filter (where receipts > 0 and receipts < $k) as smalls
    from stores
    group by store_id
),

ranked as (
    -- the store's groups that have receipts: those under $k first, then smallest first
    select
        stores.store_id,
        stores.age_group,
        totals.smalls,
        sum(stores.receipts) over (
            partition by stores.store_id
            order by stores.receipts < $k desc, stores.receipts, stores.age_group
            rows between unbounded preceding and current row
        ) as covered,
        row_number() over (
            partition by stores.store_id
            order by stores.receipts < $k desc, stores.receipts, stores.age_group
        ) as rank
    from stores
    inner join totals on stores.store_id = totals.store_id
    where stores.receipts > 0
),

cutoffs as (
    -- the shortest prefix holding every group under $k and $k receipts; null: none does
    select
        store_id,
        min(rank) filter (where rank >= smalls and covered >= $k) as last_rank
    from ranked
    group by store_id
    having max(smalls) > 0
),

marked as (
    select
        stores.store_id,
        stores.age_group,
        stores.receipts,
        case
            when cutoffs.store_id is null then false
            when cutoffs.last_rank is null then true  -- the store has fewer than $k in all
            else coalesce(ranked.rank <= cutoffs.last_rank, false)
        end as merged
    from stores
    left join ranked
        on stores.store_id = ranked.store_id
        and stores.age_group = ranked.age_group
    left join cutoffs on stores.store_id = cutoffs.store_id
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
