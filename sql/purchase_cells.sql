-- What each age group bought: per store, age group, product category and age_restricted.
-- Receipts without an age go to the 'unknown' group, so totals add up to the day's sales.
-- category_receipts counts a receipt in every category it bought: not additive across them.
-- Every cell, before the small-cell rule (sql/age_group_purchases.sql publishes it).
-- A line of a code missing from the catalog sums under 'uncategorised', or 'adjustment' when it
-- is an adjustment line (quantity 0 from the reader: a coupon, a discount, an info line).
-- Inputs: lines, catalog, receipt_ages. Parameter: $day.
with lines_aged as (
    select
        receipt_ages.store_id,
        coalesce(receipt_ages.age_group, 'unknown') as age_group,
        receipt_ages.age_group_low,
        receipt_ages.age_group_high,
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

final as (
    select
        $day::date as day,
        store_id,
        age_group,
        age_group_low,
        age_group_high,
        category,
        age_restricted,
        count(distinct receipt_id) as category_receipts,
        sum(quantity)::decimal(12, 3) as units,
        sum(amount)::decimal(18, 2) as revenue
    from lines_aged
    group by store_id, age_group, age_group_low, age_group_high, category, age_restricted
)

select * from final
order by store_id, age_group_low nulls last, category, age_restricted
