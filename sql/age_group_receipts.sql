-- Receipts and revenue per store and age group, as published: every age group (empty ones
-- too) and 'unknown' (receipts without an age, never withheld). A group that
-- sql/small_cells.sql withholds is published with withheld = true and null receipts and
-- revenue; every other figure is exact (the revenue of the group's own receipts), so the
-- published rows and the withheld ones add up to the store's receipts and sales (store_sales).
-- Inputs: receipt_groups (every group with receipts), small_cells, age_groups.
-- Parameter: $day.
with decided as (
    select
        store_id,
        age_group,
        withheld
    from small_cells
    where kind = 'group'
    union all
    select distinct
        store_id,
        'unknown' as age_group,
        false as withheld
    from receipt_groups
    where age_group = 'unknown'
),

final as (
    select
        $day::date as day,
        decided.store_id,
        decided.age_group,
        age_groups.low_years as age_group_low,
        age_groups.high_years as age_group_high,
        case when decided.withheld then null else coalesce(receipt_groups.receipts, 0) end
            ::bigint as receipts,
        case when decided.withheld then null else coalesce(receipt_groups.revenue, 0) end
            ::decimal(18, 2) as revenue,
        decided.withheld
    from decided
    left join receipt_groups
        on decided.store_id = receipt_groups.store_id
        and decided.age_group = receipt_groups.age_group
    left join age_groups on decided.age_group = age_groups.label
)

select * from final
order by store_id, age_group_low nulls last
