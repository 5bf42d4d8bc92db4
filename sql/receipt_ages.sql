-- One row per receipt of the day with the age of the shopper photographed when paying: the
-- photo receipt_captures pairs it with (one photo, one shopper; the rule is written there).
-- Inputs: receipt_times, receipt_captures, age_groups (label, low, high, low_years,
-- high_years).
-- Parameters: $day, $model_version.
with paired as (
    select
        receipt_times.receipt_id,
        receipt_times.store_id,
        receipt_times.register_id,
        receipt_times.cashier_id,
        receipt_times.paid_at,
        receipt_captures.photo,
        receipt_captures.status as capture_status,
        receipt_captures.predicted_age,
        receipt_captures.quality_score,
        receipt_captures.quality_part
    from receipt_times
    left join receipt_captures on receipt_times.receipt_id = receipt_captures.receipt_id
),

final as (
    select
        $day::date as day,
        paired.receipt_id,
        paired.store_id,
        paired.register_id,
        paired.cashier_id,
        paired.paid_at,
        paired.photo,
        paired.predicted_age,
        age_groups.label as age_group,
        age_groups.low_years as age_group_low,
        age_groups.high_years as age_group_high,
        -- matched, no_photo, or the capture's reason for having no age: unreadable, no_face,
        -- refused, low_quality
        case
            when paired.photo is null then 'no_photo'
            when paired.capture_status = 'ok' then 'matched'
            else paired.capture_status
        end as status,
        paired.quality_score,
        paired.quality_part,
        $model_version::varchar as model_version
    from paired
    left join age_groups
        on paired.predicted_age >= age_groups.low
        and paired.predicted_age < age_groups.high
)

select * from final
order by store_id, register_id, paid_at, receipt_id
