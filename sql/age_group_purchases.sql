-- What each age group bought, as published: per store, age group, product category and
-- age_restricted. A cell that sql/small_cells.sql withholds is published with withheld = true
-- and null category_receipts, units and revenue (an empty cell it withholds is published too,
-- so that its absence does not tell 0); every other figure is exact. Receipts without an age
-- ('unknown') are never withheld, so a store's rows and its withheld cells add up to its sales
-- (store_sales). Inputs: purchase_cells (every cell), small_cells, age_groups. Parameter: $day.
with decided as (
    select
        store_id,
        age_group,
        category,
        age_restricted,
        withheld
    from small_cells
    where kind = 'purchase'
),

cells as (
    select
        coalesce(purchase_cells.store_id, decided.store_id) as store_id,
        coalesce(purchase_cells.age_group, decided.age_group) as age_group,
        coalesce(purchase_cells.category, decided.category) as category,
        coalesce(purchase_cells.age_restricted, decided.age_restricted) as age_restricted,
        coalesce(decided.withheld, false) as withheld,
        purchase_cells.category_receipts,
        purchase_cells.units,
        purchase_cells.revenue
    from purchase_cells
    full join decided
        on purchase_cells.store_id = decided.store_id
        and purchase_cells.age_group = decided.age_group
        and purchase_cells.category = decided.category
        and purchase_cells.age_restricted = decided.age_restricted
    where purchase_cells.store_id is not null or decided.withheld
),

final as (
    select
        $day::date as day,
        cells.store_id,
        cells.age_group,
        age_groups.low_years as age_group_low,
        age_groups.high_years as age_group_high,
        cells.category,
        cells.age_restricted,
        case when cells.withheld then null else cells.category_receipts end
            as category_receipts,
        case when cells.withheld then null else cells.units end::decimal(12, 3) as units,
        case when cells.withheld then null else cells.revenue end::decimal(18, 2) as revenue,
        cells.withheld
    from cells
    left join age_groups on cells.age_group = age_groups.label
)

select * from final
order by store_id, age_group_low nulls last, category, age_restricted
