-- The counts behind age_group_affinity, summed over the rolling window: per scope (each store,
-- and the chain), age group and item, the group's receipts that bought the item, the group's
-- receipts, all receipts that bought the item and all matched receipts of the scope. Python
-- adds the shares, the lift, its interval and the ranking (agebatch/reports/affinity.py).
-- A count with a withheld day in its window (receipts null: sql/small_cells.sql) is withheld:
-- null, and so is every sum it enters (the item's buyers, the scope's receipts), so that no
-- window minus published days gives it back. A group withheld on a day of the window has all
-- its counts withheld (an item it did not buy that day has no row to be null).
-- Inputs: age_group_item_receipts (the day's), affinity_history (earlier published days of
-- it, with their day). Parameters: $day, $affinity_days (the window, this day included),
-- $days_covered (how many of its days were published, this one included).
with window_rows as (
    select * from age_group_item_receipts
    union all by name
    select *
    from affinity_history
    where day > $day::date - $affinity_days and day < $day::date
),

held as (
    -- the groups withheld on some day of the window: per store, and at chain level
    select distinct
        'store' as level,
        store_id,
        age_group
    from window_rows
    where item_kind = 'all' and receipts is null
    union
    select distinct
        'chain' as level,
        null::varchar as store_id,
        age_group
    from window_rows
    where item_kind = 'all' and receipts is null
),

scoped as (
    select
        'store' as level,
        store_id,
        age_group,
        item_kind,
        item,
        category,
        receipts,
        day
    from window_rows
    union all
    select
        'chain' as level,
        null::varchar as store_id,
        age_group,
        item_kind,
        item,
        category,
        receipts,
        day
    from window_rows
),

sums as (
    select
        level,
        store_id,
        age_group,
        item_kind,
        item,
        -- a sku's category as of its latest day, should the catalog have moved it
        arg_max(category, day) as category,
        case when bool_or(receipts is null) then null else sum(receipts) end as receipts
    from scoped
    group by level, store_id, age_group, item_kind, item
),

sums_held as (
    select
        sums.* replace (
            case when held.age_group is null then sums.receipts end as receipts
        )
    from sums
    left join held
        on sums.level = held.level
        and sums.store_id is not distinct from held.store_id
        and sums.age_group = held.age_group
),

groups as (
    select
        level,
        store_id,
        age_group,
        receipts as group_receipts,
        case
            when bool_or(receipts is null) over (partition by level, store_id) then null
            else sum(receipts) over (partition by level, store_id)
        end as all_receipts
    from sums_held
    where item_kind = 'all'
),

items as (
    select
        level,
        store_id,
        age_group,
        item_kind,
        item,
        category,
        receipts,
        case
            when bool_or(receipts is null) over (partition by level, store_id, item_kind, item)
                then null
            else sum(receipts) over (partition by level, store_id, item_kind, item)
        end as buyer_receipts
    from sums_held
    where item_kind != 'all'
),

final as (
    select
        $day::date as day,
        items.level,
        items.store_id,
        items.age_group,
        items.item_kind,
        items.item,
        items.category,
        items.receipts::bigint as receipts,
        groups.group_receipts::bigint as group_receipts,
        items.buyer_receipts::bigint as buyer_receipts,
        groups.all_receipts::bigint as all_receipts,
        $days_covered::integer as days_covered,
        $affinity_days::integer as window_days
    from items
    inner join groups
        on items.level = groups.level
        and items.store_id is not distinct from groups.store_id
        and items.age_group = groups.age_group
)

select * from final
order by level desc, store_id, age_group, item_kind, item
