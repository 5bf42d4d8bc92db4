-- The day's sales without any age, exact: per store and for the chain, each (category,
-- age_restricted) the store sold, and the scope's whole day (category 'all'): receipts (for a
-- category: receipts with a line of it), units and revenue, net of returns. These figures name
-- no shopper, so no cell is withheld: the alcohol share and every store total come from here.
-- A line of a code missing from the catalog sums under 'uncategorised', or 'adjustment' when it
-- is an adjustment line (quantity 0 from the reader), as in age_group_purchases.
-- Inputs: lines, catalog, receipt_ages (a receipt's store). Parameter: $day.
with lines_stored as (
    select
        receipt_ages.store_id,
        coalesce(
            catalog.category,
            case when lines.quantity = 0 then 'adjustment' else 'uncategorised' end
        ) as category,
        coalesce(catalog.age_restricted, false) as age_restricted,
        lines.receipt_id,
        lines.quantity,
        lines.amount
    from lines
    inner join receipt_ages on lines.receipt_id = receipt_ages.receipt_id
    left join catalog on lines.sku = catalog.sku
),

scoped as (
    select
        'store' as level,
        store_id,
        category,
        age_restricted,
        receipt_id,
        quantity,
        amount
    from lines_stored
    union all
    select
        'chain' as level,
        null::varchar as store_id,
        category,
        age_restricted,
        receipt_id,
        quantity,
        amount
    from lines_stored
),

by_category as (
    select
        level,
        store_id,
        category,
        age_restricted,
        count(distinct receipt_id) as receipts,
        sum(quantity) as units,
        sum(amount) as revenue
    from scoped
    group by level, store_id, category, age_restricted
),

whole_days as (
    select
        level,
        store_id,
        'all' as category,
        null::boolean as age_restricted,
        count(distinct receipt_id) as receipts,
        sum(quantity) as units,
        sum(amount) as revenue
    from scoped
    group by level, store_id
),

final as (
    select
        $day::date as day,
        level,
        store_id,
        category,
        age_restricted,
        receipts,
        units::decimal(12, 3) as units,
        revenue::decimal(18, 2) as revenue
    from by_category
    union all
    select
        $day::date as day,
        level,
        store_id,
        category,
        age_restricted,
        receipts,
        units::decimal(12, 3) as units,
        revenue::decimal(18, 2) as revenue
    from whole_days
)

select * from final
order by level desc, store_id, category = 'all', category, age_restricted
