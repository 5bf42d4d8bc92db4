-- Receipts and revenue per store and age group; receipts without an age go to the 'unknown'
-- group, so receipts add up to the day's receipts and revenue to its sales.
-- Every group, before the small-cell rule (sql/age_group_receipts.sql publishes it).
-- Inputs: lines, receipt_ages. Parameter: $day.
with receipt_totals as (
    select
        receipt_id,
        sum(amount) as amount
    from lines
    group by receipt_id
),

final as (
    select
        $day::date as day,
        receipt_ages.store_id,
        coalesce(receipt_ages.age_group, 'unknown') as age_group,
        receipt_ages.age_group_low,
        receipt_ages.age_group_high,
        count(*) as receipts,
        sum(receipt_totals.amount)::decimal(18, 2) as revenue
    from receipt_ages
    inner join receipt_totals on receipt_ages.receipt_id = receipt_totals.receipt_id
    group by
        receipt_ages.store_id,
        receipt_ages.age_group,
        receipt_ages.age_group_low,
        receipt_ages.age_group_high
)

select * from final
order by store_id, age_group_low nulls last
