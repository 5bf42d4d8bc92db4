-- The day's counts the affinity window sums: per store, age group and item (each category and
-- each sku), how many of the group's receipts bought it, net of returns on the receipt; and,
-- as item_kind 'all', how many matched receipts the group had (every age group, empty ones
-- too). Receipts without an age tell no group and are left out. Withheld (withheld = true,
-- receipts null): an 'all' row of a group sql/small_cells.sql withholds; a category of a
-- withheld group or of a withheld age_group_purchases cell (published even when empty); a sku
-- of those, or of 1 to $k - 1 receipts. Inputs: lines, catalog, receipt_ages, small_cells.
-- Parameters: $day, $k.
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
),

groups as (
    select
        store_id,
        age_group,
        withheld
    from small_cells
    where kind = 'group'
),

withheld_categories as (
    select distinct
        store_id,
        age_group,
        category
    from small_cells
    where kind = 'purchase' and withheld
),

items as (
    select
        coalesce(counts.store_id, withheld_categories.store_id) as store_id,
        coalesce(counts.age_group, withheld_categories.age_group) as age_group,
        coalesce(counts.item_kind, 'category') as item_kind,
        coalesce(counts.item, withheld_categories.category) as item,
        coalesce(counts.category, withheld_categories.category) as category,
        coalesce(counts.receipts, 0) as receipts
    from counts
    full join withheld_categories
        on counts.store_id = withheld_categories.store_id
        and counts.age_group = withheld_categories.age_group
        and counts.item_kind = 'category'
        and counts.item = withheld_categories.category
    union all
    select
        groups.store_id,
        groups.age_group,
        'all' as item_kind,
        'all' as item,
        'all' as category,
        count(matched.receipt_id) as receipts
    from groups
    left join matched
        on groups.store_id = matched.store_id
        and groups.age_group = matched.age_group
    group by groups.store_id, groups.age_group
),

marked as (
    select
        items.*,
        coalesce(groups.withheld, false)
        or (
            items.item_kind != 'all' and exists (
                select 1 from withheld_categories
                where items.store_id = withheld_categories.store_id
                    and withheld_categories.age_group = items.age_group
                    and withheld_categories.category = items.category
            )
        )
        or (items.item_kind != 'all' and items.receipts between 1 and $k - 1) as withheld
    from items
    left join groups
        on items.store_id = groups.store_id
        and items.age_group = groups.age_group
),

final as (
    select
        $day::date as day,
        store_id,
        age_group,
        item_kind,
        item,
        category,
        case when withheld then null else receipts end::bigint as receipts,
        withheld
    from marked
)

select * from final
order by store_id, age_group, item_kind, item
