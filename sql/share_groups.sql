-- How the day's photographed shoppers split into age groups, per store and for the chain:
-- the raw counts and shares. Python adds corrected_share (see agebatch/shares.py), since
-- the model confuses neighbouring groups in a known way. Inputs: receipt_ages, age_groups.
-- Every group, before the small-cell rule (sql/age_group_shares.sql publishes it).
-- Parameter: $day.
with matched as (
    select
        store_id,
        age_group
    from receipt_ages
    where status = 'matched'
),

scopes as (
    select distinct
        'store' as level,
        store_id
    from matched
    union all
    select distinct
        'chain' as level,
        null::varchar as store_id
    from matched
),

counts as (
    select
        'store' as level,
        store_id,
        age_group,
        count(*) as receipts
    from matched
    group by store_id, age_group
    union all
    select
        'chain' as level,
        null::varchar as store_id,
        age_group,
        count(*) as receipts
    from matched
    group by age_group
),

final as (
    select
        $day::date as day,
        scopes.level,
        scopes.store_id,
        age_groups.label as age_group,
        age_groups.low_years as age_group_low,
        age_groups.high_years as age_group_high,
        coalesce(counts.receipts, 0) as receipts,
        coalesce(counts.receipts, 0) / sum(coalesce(counts.receipts, 0)) over (
            partition by scopes.level, scopes.store_id
        ) as share
    from scopes
    cross join age_groups
    left join counts
        on scopes.level = counts.level
        and scopes.store_id is not distinct from counts.store_id
        and age_groups.label = counts.age_group
)

select * from final
order by level desc, store_id, age_group_low
