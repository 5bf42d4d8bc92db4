-- The small-cell rule, written once for every table that publishes figures of age groups: which
-- cells of each store are withheld (published with a null value and withheld = true, never as
-- 0 and never folded into another row). A cell counting 1 to $k - 1 receipts is withheld
-- (primary); then more cells are withheld (secondary) so that none can be computed back from
-- the published cells and the exact totals (store_sales, the 'unknown' group). Receipts
-- without an age ('unknown') tell no one's age and are never withheld. See docs/safeguards.md.
--
-- kind 'group' (age_group_receipts, age_group_shares, the 'all' rows of the item tables): a
-- store's age groups, empty ones included. Their receipts add up to the store's matched
-- receipts, which are public (store_sales minus 'unknown'), so one withheld group would be that
-- sum minus the others: when any group is withheld, at least two are (the smallest others).
--
-- kind 'purchase' (age_group_purchases): a store's age group x (category, age_restricted)
-- cells, every (category, age_restricted) the store sold crossed with every age group, empty
-- cells included. A cell's revenue, units and receipts are bounded by its row (the group's
-- exact revenue in age_group_receipts) and its column (store_sales), so the withheld cells
-- must form, in the bipartite graph of rows and columns, no edge that lies on no cycle (such
-- an edge is the difference of two sums). The rule builds that shape:
--   * rows of withheld groups: every cell withheld (their rows' sums are withheld too, so they
--     act as one row: at least two cells in every column, each on a cycle);
--   * otherwise, when some cell is under $k: the columns holding one (at least two: the
--     smallest other column joins) and two hub rows (those with the most small cells, then the
--     smallest) withheld across all those columns;
--   * every other row that holds a withheld cell holds at least two (its smallest other cell
--     among those columns, or among all columns when groups are withheld).
-- Every withheld cell then lies on a four-cycle: row - column - hub - column - row.
-- Inputs: lines, catalog, receipt_ages, age_groups. Parameter: $k.
with stores as (
    select distinct store_id
    from receipt_ages
),

group_sizes as (
    select
        stores.store_id,
        age_groups.label as age_group,
        age_groups.low_years,
        count(receipt_ages.receipt_id) as receipts
    from stores
    cross join age_groups
    left join receipt_ages
        on stores.store_id = receipt_ages.store_id
        and age_groups.label = receipt_ages.age_group
        and receipt_ages.status = 'matched'
    group by stores.store_id, age_groups.label, age_groups.low_years
),

group_ranked as (
    select
        *,
        count(*) filter (where receipts between 1 and $k - 1) over (partition by store_id)
            as primaries,
        row_number() over (
            partition by store_id
            order by receipts between 1 and $k - 1 desc, receipts, low_years
        ) as rank
    from group_sizes
),

group_cells as (
    select
        store_id,
        age_group,
        low_years,
        receipts,
        primaries > 0 and rank <= greatest(primaries, 2) as withheld
    from group_ranked
),

bought as (
    select distinct
        receipt_ages.store_id,
        receipt_ages.age_group,
        coalesce(
            catalog.category,
            case when lines.quantity = 0 then 'adjustment' else 'uncategorised' end
        ) as category,
        coalesce(catalog.age_restricted, false) as age_restricted,
        lines.receipt_id
    from lines
    inner join receipt_ages on lines.receipt_id = receipt_ages.receipt_id
    left join catalog on lines.sku = catalog.sku
),

store_columns as (
    select
        store_id,
        category,
        age_restricted,
        count(distinct receipt_id) as column_receipts
    from bought
    group by store_id, category, age_restricted
),

cell_sizes as (
    select
        group_cells.store_id,
        group_cells.age_group,
        group_cells.low_years,
        group_cells.receipts as group_receipts,
        group_cells.withheld as group_withheld,
        store_columns.category,
        store_columns.age_restricted,
        store_columns.column_receipts,
        count(bought.receipt_id) as receipts
    from group_cells
    inner join store_columns on group_cells.store_id = store_columns.store_id
    left join bought
        on group_cells.store_id = bought.store_id
        and group_cells.age_group = bought.age_group
        and store_columns.category = bought.category
        and store_columns.age_restricted = bought.age_restricted
    group by all
),

cells as (
    select
        *,
        not group_withheld and receipts between 1 and $k - 1 as small,
        bool_or(group_withheld) over (partition by store_id) as store_groups_withheld
    from cell_sizes
),

small_columns as (
    -- the columns holding a small cell, and the smallest other one when only one does
    select distinct
        store_id,
        category,
        age_restricted
    from cells
    where small
),

column_counts as (
    select
        store_id,
        count(*) as small_columns
    from small_columns
    group by store_id
),

extra_columns as (
    select
        store_id,
        category,
        age_restricted
    from (
        select
            store_columns.*,
            row_number() over (
                partition by store_columns.store_id
                order by store_columns.column_receipts, store_columns.category,
                    store_columns.age_restricted
            ) as rank
        from store_columns
        inner join column_counts
            on store_columns.store_id = column_counts.store_id
            and column_counts.small_columns = 1
        anti join small_columns
            on store_columns.store_id = small_columns.store_id
            and store_columns.category = small_columns.category
            and store_columns.age_restricted = small_columns.age_restricted
    )
    where rank = 1
),

withheld_columns as (
    select * from small_columns
    union
    select * from extra_columns
),

hubs as (
    -- two rows withheld across the withheld columns (stores whose groups are all published)
    select
        store_id,
        age_group
    from (
        select
            store_id,
            age_group,
            row_number() over (
                partition by store_id
                order by count(*) filter (where small) desc, any_value(group_receipts),
                    any_value(low_years)
            ) as rank
        from cells
        where not store_groups_withheld
        group by store_id, age_group
    )
    where rank <= 2 and store_id in (select store_id from small_columns)
),

first_pass as (
    select
        cells.*,
        (
            select count(*) from withheld_columns
            where withheld_columns.store_id = cells.store_id
                and withheld_columns.category = cells.category
                and withheld_columns.age_restricted = cells.age_restricted
        ) > 0 as in_columns,
        group_withheld
        or small
        or (
            cells.age_group in (select age_group from hubs where hubs.store_id = cells.store_id)
            and exists (
                select 1 from withheld_columns
                where withheld_columns.store_id = cells.store_id
                    and withheld_columns.category = cells.category
                    and withheld_columns.age_restricted = cells.age_restricted
            )
        ) as withheld
    from cells
),

row_partners as (
    -- a row with exactly one withheld cell takes its smallest other eligible cell
    select
        store_id,
        age_group,
        category,
        age_restricted
    from (
        select
            *,
            count(*) filter (where withheld) over (partition by store_id, age_group)
                as row_withheld,
            row_number() over (
                partition by store_id, age_group
                order by withheld, receipts, category, age_restricted
            ) as rank
        from first_pass
        where store_groups_withheld or in_columns
    )
    where row_withheld = 1 and rank = 1 and not withheld
),

purchase_cells as (
    select
        first_pass.store_id,
        first_pass.age_group,
        first_pass.category,
        first_pass.age_restricted,
        first_pass.receipts,
        first_pass.withheld or row_partners.store_id is not null as withheld
    from first_pass
    left join row_partners
        on first_pass.store_id = row_partners.store_id
        and first_pass.age_group = row_partners.age_group
        and first_pass.category = row_partners.category
        and first_pass.age_restricted = row_partners.age_restricted
),

final as (
    select
        'group' as kind,
        store_id,
        age_group,
        null::varchar as category,
        null::boolean as age_restricted,
        receipts,
        withheld
    from group_cells
    union all
    select
        'purchase' as kind,
        store_id,
        age_group,
        category,
        age_restricted,
        receipts,
        withheld
    from purchase_cells
)

select * from final
