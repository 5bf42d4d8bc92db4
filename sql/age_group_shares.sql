-- How the day's photographed shoppers split into age groups, per store and for the chain, as
-- published: every age group, each with its exact receipts and share of the scope's matched
-- receipts, or withheld (withheld = true, receipts and share null) where sql/small_cells.sql
-- withholds the store's group. At chain level a group withheld at any store is withheld too,
-- so no chain row minus published store rows gives a withheld one. Python adds
-- corrected_share afterwards (agebatch/transform/shares.py): only in a scope with nothing
-- withheld. Inputs: share_groups (store and chain rows, every group), small_cells, age_groups.
-- Parameter: $day.
with decided as (
    select
        store_id,
        age_group,
        withheld
    from small_cells
    where kind = 'group'
),

chain_withheld as (
    select
        age_group,
        bool_or(withheld) as withheld
    from decided
    group by age_group
),

marked as (
    select
        share_groups.*,
        coalesce(
            case
                when share_groups.level = 'store' then decided.withheld
                else chain_withheld.withheld
            end,
            false
        ) as withheld
    from share_groups
    left join decided
        on share_groups.store_id = decided.store_id
        and share_groups.age_group = decided.age_group
    left join chain_withheld on share_groups.age_group = chain_withheld.age_group
),

final as (
    select
        $day::date as day,
        level,
        store_id,
        age_group,
        age_group_low,
        age_group_high,
        case when withheld then null else receipts end::bigint as receipts,
        case when withheld then null else share end as share,
        withheld
    from marked
)

select * from final
order by level desc, store_id, age_group_low
