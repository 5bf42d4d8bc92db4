-- age_group_purchases as published: no cell of fewer than $k receipts. In each store, the
-- cells (age group × category × age_restricted) with fewer than $k receipts are suppressed:
-- their receipts, units and revenue go to the store's one remainder row (age_group and
-- category 'suppressed', age_restricted and the age bounds null), so the store's rows still
-- add up to its sales. A remainder must not give
-- a suppressed cell away, so when it would cover fewer than $k receipts the store's
-- smallest other cells join it, smallest first, until it covers $k: every published row
-- then covers at least $k receipts and every remainder at least two cells. A store with
-- fewer than $k receipts that day publishes its remainder alone (its total, no age group,
-- no category). See docs/safeguards.md for what this guarantees.
-- Inputs: age_group_purchases (every cell), lines, receipt_ages, catalog.
-- Parameters: $day, $k.
with cell_receipts as (
    -- the receipts each cell counts, keyed as sql/age_group_purchases.sql keys its cells
    select distinct
        receipt_ages.store_id,
        coalesce(receipt_ages.age_group, 'unknown') as age_group,
        coalesce(catalog.category, 'uncategorised') as category,
        coalesce(catalog.age_restricted, false) as age_restricted,
        lines.receipt_id
    from lines
    inner join receipt_ages on lines.receipt_id = receipt_ages.receipt_id
    left join catalog on lines.sku = catalog.sku
),

ranked as (
    -- cells under $k first, then the others smallest first: the remainder is a prefix
    select
        age_group_purchases.*,
        count(*) filter (where category_receipts < $k) over (partition by store_id) as smalls,
        row_number() over (
            partition by store_id
            order by
                category_receipts < $k desc,
                category_receipts,
                age_group,
                category,
                age_restricted
        ) as rank
    from age_group_purchases
),

first_cells as (
    -- a receipt is covered by a prefix from its first cell in that order on
    select
        cell_receipts.store_id,
        cell_receipts.receipt_id,
        min(ranked.rank) as rank
    from cell_receipts
    inner join ranked
        on cell_receipts.store_id = ranked.store_id
        and cell_receipts.age_group = ranked.age_group
        and cell_receipts.category = ranked.category
        and cell_receipts.age_restricted = ranked.age_restricted
    group by cell_receipts.store_id, cell_receipts.receipt_id
),

new_receipts as (
    select
        store_id,
        rank,
        count(*) as receipts
    from first_cells
    group by store_id, rank
),

covered as (
    -- distinct receipts of the prefix ending at each rank
    select
        ranked.store_id,
        ranked.rank,
        ranked.smalls,
        sum(coalesce(new_receipts.receipts, 0)) over (
            partition by ranked.store_id
            order by ranked.rank
            rows between unbounded preceding and current row
        ) as receipts
    from ranked
    left join new_receipts
        on ranked.store_id = new_receipts.store_id
        and ranked.rank = new_receipts.rank
),

cutoffs as (
    -- the shortest prefix that holds every cell under $k and covers $k receipts (else all)
    select
        store_id,
        coalesce(min(rank) filter (where rank >= smalls and receipts >= $k), max(rank))
            as last_rank
    from covered
    group by store_id
    having max(smalls) > 0
),

marked as (
    select
        ranked.*,
        coalesce(ranked.rank <= cutoffs.last_rank, false) as suppressed
    from ranked
    left join cutoffs on ranked.store_id = cutoffs.store_id
),

remainder_receipts as (
    select
        marked.store_id,
        count(distinct cell_receipts.receipt_id) as receipts
    from marked
    inner join cell_receipts
        on marked.store_id = cell_receipts.store_id
        and marked.age_group = cell_receipts.age_group
        and marked.category = cell_receipts.category
        and marked.age_restricted = cell_receipts.age_restricted
    where marked.suppressed
    group by marked.store_id
),

remainders as (
    select
        $day::date as day,
        marked.store_id,
        'suppressed' as age_group,
        null::integer as age_group_low,
        null::integer as age_group_high,
        'suppressed' as category,
        null::boolean as age_restricted,
        any_value(remainder_receipts.receipts) as category_receipts,
        sum(marked.units) as units,
        sum(marked.revenue) as revenue
    from marked
    inner join remainder_receipts on marked.store_id = remainder_receipts.store_id
    where marked.suppressed
    group by marked.store_id
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
