-- What each age group bought: per store, age group and product category.
-- Receipts without an age go to the 'unknown' group, so totals add up to the day's sales.
-- Inputs: lines, catalog, receipt_ages. Parameter: $day.
with lines_aged as (
    select
        receipt_ages.store_id,
        coalesce(receipt_ages.age_group, 'unknown') as age_group,
        coalesce(catalog.category, 'uncategorised') as category,
        lines.receipt_id,
        lines.quantity,
        lines.amount
    from lines
    inner join receipt_ages on lines.receipt_id = receipt_ages.receipt_id
    left join catalog on lines.sku = catalog.sku
),

final as (
    select
        $day::date as day,
        store_id,
        age_group,
        category,
        count(distinct receipt_id) as receipts,
        sum(quantity) as units,
        sum(amount)::double as revenue
    from lines_aged
    group by store_id, age_group, category
)

select * from final
order by store_id, age_group, category
