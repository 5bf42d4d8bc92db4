-- age_group_receipts as published: no age group of 1 to $k - 1 receipts, and no revenue that
-- age_group_purchases (as published) does not already tell. In each store, groups ('unknown'
-- included) with fewer than $k receipts are merged into one row, age_group 'suppressed'; when
-- that row would hold fewer than $k receipts, the store's smallest other groups join it until
-- it holds $k (as sql/k_anonymous_shares.sql does). A kept group's revenue is the sum of its
-- published purchase cells; the 'suppressed' row's revenue is the rest of the store's sales
-- (so it is not the revenue of its own receipts alone, and the row appears with 0 receipts
-- when only purchase cells were suppressed). Receipts still add up to the day's receipts and
-- revenue to its sales.
-- Inputs: age_group_receipts (every group), k_anonymous_purchases. Parameters: $day, $k.
with totals as (
    select
        store_id,
        count(*) filter (where receipts < $k) as smalls,
        sum(revenue) as revenue
    from age_group_receipts
    group by store_id
),

ranked as (
    select
        age_group_receipts.store_id,
        age_group_receipts.age_group,
        totals.smalls,
        sum(age_group_receipts.receipts) over (
            partition by age_group_receipts.store_id
            order by
                age_group_receipts.receipts < $k desc,
                age_group_receipts.receipts,
                age_group_receipts.age_group
            rows between unbounded preceding and current row
        ) as covered,
        row_number() over (
            partition by age_group_receipts.store_id
            order by
                age_group_receipts.receipts < $k desc,
                age_group_receipts.receipts,
                age_group_receipts.age_group
        ) as rank
    from age_group_receipts
    inner join totals on age_group_receipts.store_id = totals.store_id
),

cutoffs as (
    -- the shortest prefix holding every group under $k and $k receipts (else the whole store)
    select
        store_id,
        coalesce(min(rank) filter (where rank >= smalls and covered >= $k), max(rank))
            as last_rank
    from ranked
    group by store_id
    having max(smalls) > 0
),

marked as (
    select
        age_group_receipts.*,
        coalesce(ranked.rank <= cutoffs.last_rank, false) as merged
    from age_group_receipts
    inner join ranked
        on age_group_receipts.store_id = ranked.store_id
        and age_group_receipts.age_group = ranked.age_group
    left join cutoffs on age_group_receipts.store_id = cutoffs.store_id
),

cell_revenue as (
    select
        store_id,
        age_group,
        sum(revenue) as revenue
    from k_anonymous_purchases
    where age_group != 'suppressed'
    group by store_id, age_group
),

kept as (
    select
        marked.day,
        marked.store_id,
        marked.age_group,
        marked.age_group_low,
        marked.age_group_high,
        marked.receipts,
        coalesce(cell_revenue.revenue, 0)::decimal(18, 2) as revenue
    from marked
    left join cell_revenue
        on marked.store_id = cell_revenue.store_id
        and marked.age_group = cell_revenue.age_group
    where not marked.merged
),

merged as (
    -- the merged groups' receipts, and the store's sales no kept row shows: present when
    -- either is not zero (a kept group whose small purchase cells were suppressed leaves
    -- revenue here with no receipts of its own)
    select
        $day::date as day,
        totals.store_id,
        'suppressed' as age_group,
        null::integer as age_group_low,
        null::integer as age_group_high,
        coalesce(merged_receipts.receipts, 0)::bigint as receipts,
        (totals.revenue - coalesce(kept_revenue.revenue, 0))::decimal(18, 2) as revenue
    from totals
    left join (
        select store_id, sum(receipts) as receipts from marked where merged group by store_id
    ) as merged_receipts on totals.store_id = merged_receipts.store_id
    left join (
        select store_id, sum(revenue) as revenue from kept group by store_id
    ) as kept_revenue on totals.store_id = kept_revenue.store_id
    where
        coalesce(merged_receipts.receipts, 0) > 0
        or totals.revenue != coalesce(kept_revenue.revenue, 0)
),

final as (
    select * from kept
    union all
    select * from merged
)

select * from final
order by store_id, age_group = 'suppressed', age_group_low nulls last
