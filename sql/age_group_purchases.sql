-- What each age group bought, as published: per store, age group, product category and
-- age_restricted, no cell of fewer than $k receipts (sql/small_cells.sql). The merged cells'
-- receipts, units and revenue go to the store's one remainder row (age_group and category
-- 'suppressed', age_restricted and the age bounds null), so the store's rows still add up to
-- its sales; the remainder's category_receipts counts its distinct receipts. A store with
-- fewer than $k receipts that day publishes its remainder alone (its total, no age group, no
-- category). Inputs: purchase_cells (every cell), small_cells. Parameter: $day.
with marked as (
    select
        purchase_cells.*,
        coalesce(small_cells.merged, false) as suppressed,
        small_cells.merged_receipts
    from purchase_cells
    left join small_cells
        on small_cells.table_name = 'age_group_purchases'
        and purchase_cells.store_id = small_cells.store_id
        and [
            purchase_cells.age_group,
            purchase_cells.category,
            purchase_cells.age_restricted::varchar
        ] = small_cells.cell
),

remainders as (
    select
        $day::date as day,
        store_id,
        'suppressed' as age_group,
        null::integer as age_group_low,
        null::integer as age_group_high,
        'suppressed' as category,
        null::boolean as age_restricted,
        any_value(merged_receipts) as category_receipts,
        sum(units) as units,
        sum(revenue) as revenue
    from marked
    where suppressed
    group by store_id
),

final as (
    select
        day,
        store_id,
        age_group,
        age_group_low,
        age_group_high,
        category,
        age_restricted,
        category_receipts,
        units,
        revenue
    from marked
    where not suppressed
    union all
    select * from remainders
)

select * from final
order by store_id, age_group = 'suppressed', age_group_low nulls last, category, age_restricted
