-- The day's counts the affinity window sums: per store, age group and item (each category and
-- each sku), how many of the group's receipts bought it, net of returns on the receipt; and,
-- as item_kind 'all', how many matched receipts the group had. Receipts without an age tell
-- no group and are left out. Inputs: lines, catalog, receipt_ages. Parameter: $day.
with matched as (
    select
        receipt_id,
        store_id,
        age_group
    from receipt_ages
    where status = 'matched'
),

sku_units as (
    select
        lines.receipt_id,
        lines.sku,
        coalesce(catalog.category, 'uncategorised') as category,
        sum(lines.quantity) as units
    from lines
    left join catalog on lines.sku = catalog.sku
    group by lines.receipt_id, lines.sku, catalog.category
),

category_units as (
    select
        receipt_id,
        category,
        sum(units) as units
    from sku_units
    group by receipt_id, category
),

-- A receipt buys an item when more units left the store than came back on it.
bought as (
    select
        receipt_id,
        'sku' as item_kind,
        sku as item,
        category
    from sku_units
    where units > 0
    union all
    select
        receipt_id,
        'category' as item_kind,
        category as item,
        category
    from category_units
    where units > 0
),

counts as (
    select
        matched.store_id,
        matched.age_group,
        bought.item_kind,
        bought.item,
        bought.category,
        count(*) as receipts
    from bought
    inner join matched on bought.receipt_id = matched.receipt_id
    group by matched.store_id, matched.age_group, bought.item_kind, bought.item, bought.category
    union all
    select
        store_id,
        age_group,
        'all' as item_kind,
        'all' as item,
        'all' as category,
        count(*) as receipts
    from matched
    group by store_id, age_group
),

final as (
    select
        $day::date as day,
        store_id,
        age_group,
        item_kind,
        item,
        category,
        receipts
    from counts
)

select * from final
order by store_id, age_group, item_kind, item
