-- The small-cell rule, written once for every table that publishes counts of receipts: which
-- cells of each store are merged into its one 'suppressed' row so that no published row counts
-- 1 to $k - 1 receipts. In each store the cells with fewer than $k receipts are merged; when
-- the merged receipts would be fewer than $k, the store's smallest other cells join them,
-- smallest first, until they cover $k (a merged row then always covers at least two cells, so
-- it gives none of them away). A store with fewer than $k receipts merges every cell.
-- One row per table, store and cell (the cell's key as a list: age group, then for
-- age_group_purchases category and age_restricted): its receipts, whether it is merged and
-- merged_receipts, the distinct receipts of the store's merged cells (a receipt can sit in
-- several cells of age_group_purchases, one per category it bought).
-- Tables: age_group_purchases (cells: age group × category × age_restricted, every receipt),
-- age_group_receipts (age groups, 'unknown' included, every receipt), age_group_shares (age
-- groups of the matched receipts). See docs/safeguards.md for what this guarantees.
-- Inputs: lines, catalog, receipt_ages. Parameter: $k.
with cell_receipts as (
    -- the receipts each cell counts, keyed as each table keys its cells
    select distinct
        'age_group_purchases' as table_name,
        receipt_ages.store_id,
        [
            coalesce(receipt_ages.age_group, 'unknown'),
            coalesce(
                catalog.category,
                case when lines.quantity = 0 then 'adjustment' else 'uncategorised' end
            ),
            coalesce(catalog.age_restricted, false)::varchar
        ] as cell,
        lines.receipt_id
    from lines
    inner join receipt_ages on lines.receipt_id = receipt_ages.receipt_id
    left join catalog on lines.sku = catalog.sku
    union all
    select distinct
        'age_group_receipts' as table_name,
        receipt_ages.store_id,
        [coalesce(receipt_ages.age_group, 'unknown')] as cell,
        receipt_ages.receipt_id
    from receipt_ages
    inner join lines on receipt_ages.receipt_id = lines.receipt_id
    union all
    select
        'age_group_shares' as table_name,
        store_id,
        [age_group] as cell,
        receipt_id
    from receipt_ages
    where status = 'matched'
),

sizes as (
    select
        table_name,
        store_id,
        cell,
        count(*) as receipts
    from cell_receipts
    group by table_name, store_id, cell
),

ranked as (
    -- cells under $k first, then the others smallest first: the merged cells are a prefix
    select
        table_name,
        store_id,
        cell,
        receipts,
        count(*) filter (where receipts < $k) over (partition by table_name, store_id)
            as smalls,
        row_number() over (
            partition by table_name, store_id
            order by receipts < $k desc, receipts, cell
        ) as rank
    from sizes
),

first_cells as (
    -- a receipt is covered by a prefix from its first cell in that order on
    select
        cell_receipts.table_name,
        cell_receipts.store_id,
        cell_receipts.receipt_id,
        min(ranked.rank) as rank
    from cell_receipts
    inner join ranked
        on cell_receipts.table_name = ranked.table_name
        and cell_receipts.store_id = ranked.store_id
        and cell_receipts.cell = ranked.cell
    group by cell_receipts.table_name, cell_receipts.store_id, cell_receipts.receipt_id
),

new_receipts as (
    select
        table_name,
        store_id,
        rank,
        count(*) as receipts
    from first_cells
    group by table_name, store_id, rank
),

covered as (
    -- distinct receipts of the prefix ending at each rank
    select
        ranked.table_name,
        ranked.store_id,
        ranked.rank,
        ranked.smalls,
        sum(coalesce(new_receipts.receipts, 0)) over (
            partition by ranked.table_name, ranked.store_id
            order by ranked.rank
            rows between unbounded preceding and current row
        ) as receipts
    from ranked
    left join new_receipts
        on ranked.table_name = new_receipts.table_name
        and ranked.store_id = new_receipts.store_id
        and ranked.rank = new_receipts.rank
),

cutoffs as (
    -- the shortest prefix that holds every cell under $k and covers $k receipts (else all)
    select
        table_name,
        store_id,
        coalesce(min(rank) filter (where rank >= smalls and receipts >= $k), max(rank))
            as last_rank
    from covered
    group by table_name, store_id
    having max(smalls) > 0
),

final as (
    select
        ranked.table_name,
        ranked.store_id,
        ranked.cell,
        ranked.receipts,
        coalesce(ranked.rank <= cutoffs.last_rank, false) as merged,
        coalesce(covered.receipts, 0)::bigint as merged_receipts
    from ranked
    left join cutoffs
        on ranked.table_name = cutoffs.table_name
        and ranked.store_id = cutoffs.store_id
    left join covered
        on cutoffs.table_name = covered.table_name
        and cutoffs.store_id = covered.store_id
        and cutoffs.last_rank = covered.rank
)

select * from final
