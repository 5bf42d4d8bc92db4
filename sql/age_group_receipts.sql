-- Receipts and revenue per store and age group, as published: no age group of 1 to $k - 1
-- receipts (sql/small_cells.sql) and no revenue that age_group_purchases (as published) does
-- not already tell. The merged groups ('unknown' included) are one row, age_group
-- 'suppressed'. A kept group's revenue is the sum of its published purchase cells; the
-- 'suppressed' row's revenue is the rest of the store's sales (so it is not the revenue of
-- its own receipts alone, and the row appears with 0 receipts when only purchase cells were
-- suppressed). Receipts still add up to the day's receipts and revenue to its sales.
-- Inputs: receipt_groups (every group), small_cells, age_group_purchases. Parameter: $day.
with marked as (
    select
        receipt_groups.*,
        coalesce(small_cells.merged, false) as merged
    from receipt_groups
    left join small_cells
        on small_cells.table_name = 'age_group_receipts'
        and receipt_groups.store_id = small_cells.store_id
        and [receipt_groups.age_group] = small_cells.cell
),

totals as (
    select
        store_id,
        sum(revenue) as revenue
    from receipt_groups
    group by store_id
),

cell_revenue as (
    select
        store_id,
        age_group,
        sum(revenue) as revenue
    from age_group_purchases
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
