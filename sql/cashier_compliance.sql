-- Per store and cashier: the day's restricted receipts, how many were flagged for a young-
-- looking shopper or had no usable photo, and the same over the last 7 and 28 days.
-- Inputs: restricted_sales, history (earlier days of this table: day, store_id, cashier_id,
-- restricted_receipts, flagged_receipts, unchecked_receipts). Parameters: $day,
-- $days_7d and $days_28d (how many days each window really covers, this one included),
-- $unchecked (the reasons that mean no usable photo: agebatch.schema.UNCHECKED).
with today as (
    select
        $day::date as day,
        store_id,
        cashier_id,
        count(*) as restricted_receipts,
        count(*) filter (
            where reason in ('under_legal_age', 'under_challenge_age')
        ) as flagged_receipts,
        count(*) filter (where list_contains($unchecked, reason)) as unchecked_receipts
    from restricted_sales
    group by store_id, cashier_id
),

recent as (
    select * from today
    union all by name
    select day, store_id, cashier_id, restricted_receipts, flagged_receipts, unchecked_receipts
    from history
    where day > $day::date - 28 and day < $day::date
),

rolling as (
    select
        store_id,
        cashier_id,
        sum(restricted_receipts) filter (where day > $day::date - 7) as restricted_7d,
        sum(flagged_receipts) filter (where day > $day::date - 7) as flagged_7d,
        sum(restricted_receipts) as restricted_28d,
        sum(flagged_receipts) as flagged_28d
    from recent
    group by store_id, cashier_id
),

final as (
    select
        today.day,
        today.store_id,
        today.cashier_id,
        today.restricted_receipts,
        today.flagged_receipts,
        today.unchecked_receipts,
        today.flagged_receipts / today.restricted_receipts as flagged_rate,
        rolling.restricted_7d::bigint as restricted_receipts_7d,
        rolling.flagged_7d::bigint as flagged_receipts_7d,
        rolling.flagged_7d / rolling.restricted_7d as flagged_rate_7d,
        $days_7d::integer as days_7d,
        rolling.restricted_28d::bigint as restricted_receipts_28d,
        rolling.flagged_28d::bigint as flagged_receipts_28d,
        rolling.flagged_28d / rolling.restricted_28d as flagged_rate_28d,
        $days_28d::integer as days_28d
    from today
    inner join rolling
        on today.store_id = rolling.store_id
        and today.cashier_id = rolling.cashier_id
)

select * from final
order by store_id, cashier_id
