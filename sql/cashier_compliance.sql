-- Per store and cashier: the day's restricted receipts, how many were flagged for a young-
-- looking shopper or had no usable photo, how many flagged ones had no age check recorded
-- (missed), and the same over the last $short_days (7) and $long_days (28) days.
-- Inputs: restricted_sales, compliance_history (earlier days of this table: day, store_id,
-- cashier_id, restricted_receipts, flagged_receipts, unchecked_receipts, missed_receipts).
-- Parameters: $day, $short_days and $long_days (the windows, agebatch.config), $days_7d and
-- $days_28d (how many days each window really covers, this one included), $checks_recorded
-- (the day's transactions had an age_check column).
with today as (
    select
        $day::date as day,
        store_id,
        cashier_id,
        count(*) as restricted_receipts,
        count(*) filter (where flagged) as flagged_receipts,
        count(*) filter (where unchecked) as unchecked_receipts,
        -- null, not 0, on a day whose transactions record no age checks
        case when $checks_recorded then count(*) filter (where missed_check) end
            as missed_receipts,
        case when $checks_recorded then count(*) filter (where reason = 'sold_after_refusal') end
            as sold_after_refusal_receipts,
        -- a restricted line keyed or approved by another operator (a supervisor's override)
        count(*) filter (where approved_by is not null) as approved_receipts
    from restricted_sales
    group by store_id, cashier_id
),

recent as (
    select * from today
    union all by name
    select
        day,
        store_id,
        cashier_id,
        restricted_receipts,
        flagged_receipts,
        unchecked_receipts,
        missed_receipts
    from compliance_history
    where day > $day::date - $long_days and day < $day::date
),

-- Missed checks and their flagged receipts count only on days that recorded checks.
rolling as (
    select
        store_id,
        cashier_id,
        sum(restricted_receipts) filter (where day > $day::date - $short_days) as restricted_7d,
        sum(flagged_receipts) filter (where day > $day::date - $short_days) as flagged_7d,
        sum(unchecked_receipts) filter (where day > $day::date - $short_days) as unchecked_7d,
        sum(missed_receipts) filter (where day > $day::date - $short_days) as missed_7d,
        sum(flagged_receipts) filter (
            where day > $day::date - $short_days and missed_receipts is not null
        ) as flagged_recorded_7d,
        sum(restricted_receipts) as restricted_28d,
        sum(flagged_receipts) as flagged_28d,
        sum(unchecked_receipts) as unchecked_28d,
        sum(missed_receipts) as missed_28d,
        sum(flagged_receipts) filter (where missed_receipts is not null) as flagged_recorded_28d
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
        today.missed_receipts,
        today.missed_receipts / nullif(today.flagged_receipts, 0) as missed_rate,
        today.sold_after_refusal_receipts,
        today.approved_receipts,
        rolling.restricted_7d::bigint as restricted_receipts_7d,
        rolling.flagged_7d::bigint as flagged_receipts_7d,
        rolling.flagged_7d / rolling.restricted_7d as flagged_rate_7d,
        rolling.unchecked_7d::bigint as unchecked_receipts_7d,
        rolling.missed_7d::bigint as missed_receipts_7d,
        rolling.missed_7d / nullif(rolling.flagged_recorded_7d, 0) as missed_rate_7d,
        $days_7d::integer as days_7d,
        rolling.restricted_28d::bigint as restricted_receipts_28d,
        rolling.flagged_28d::bigint as flagged_receipts_28d,
        rolling.flagged_28d / rolling.restricted_28d as flagged_rate_28d,
        rolling.unchecked_28d::bigint as unchecked_receipts_28d,
        rolling.missed_28d::bigint as missed_receipts_28d,
        rolling.missed_28d / nullif(rolling.flagged_recorded_28d, 0) as missed_rate_28d,
        $days_28d::integer as days_28d
    from today
    inner join rolling
        on today.store_id = rolling.store_id
        and today.cashier_id = rolling.cashier_id
)

select * from final
order by store_id, cashier_id
