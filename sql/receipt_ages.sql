-- One row per receipt of the day with the age of the shopper photographed when paying.
-- Inputs: lines (typed transactions), captures (photos with predicted_age and status: ok,
-- unreadable, or no_face for a frame in which no shopper's face was found),
-- age_groups (label, low, high, low_years, high_years). Parameters: $day, $before_s, $after_s, $model_version.
with receipts as (
    select
        receipt_id,
        min(store_id) as store_id,
        min(register_id) as register_id,
        min(cashier_id) as cashier_id,
        max(paid_at) as paid_at
    from lines
    group by receipt_id
),

-- A burst of shots in the same second counts once: the one with an age, else the last taken.
shots as (
    select *
    from captures
    where receipt_id is null
    qualify row_number() over (
        partition by store_id, register_id, captured_at
        order by (status = 'ok') desc, photo desc
    ) = 1
),

-- The latest capture at the receipt's store and register up to $after_s after payment …
latest as (
    select
        receipts.receipt_id,
        shots.photo,
        shots.captured_at,
        shots.predicted_age,
        shots.status
    from receipts
    asof join shots
        on receipts.store_id = shots.store_id
        and receipts.register_id = shots.register_id
        and receipts.paid_at + to_seconds($after_s) >= shots.captured_at
    -- … and no more than $before_s before it.
    where shots.captured_at >= receipts.paid_at - to_seconds($before_s)
),

-- When the camera system's manifest names the receipt, that capture wins.
named as (
    select receipt_id, photo, captured_at, predicted_age, status
    from captures
    where receipt_id is not null
    qualify row_number() over (
        partition by receipt_id
        order by (status = 'ok') desc, captured_at desc, photo desc
    ) = 1
),

matched as (
    select
        receipts.*,
        coalesce(named.photo, latest.photo) as photo,
        coalesce(named.status, latest.status) as capture_status,
        coalesce(named.predicted_age, latest.predicted_age) as predicted_age
    from receipts
    left join named on receipts.receipt_id = named.receipt_id
    left join latest on receipts.receipt_id = latest.receipt_id
),

final as (
    select
        $day::date as day,
        matched.receipt_id,
        matched.store_id,
        matched.register_id,
        matched.cashier_id,
        matched.paid_at,
        matched.photo,
        matched.predicted_age,
        age_groups.label as age_group,
        age_groups.low_years as age_group_low,
        age_groups.high_years as age_group_high,
        -- matched, no_photo, or the capture's reason for having no age: unreadable, no_face
        case
            when matched.photo is null then 'no_photo'
            when matched.capture_status = 'ok' then 'matched'
            else matched.capture_status
        end as status,
        $model_version::varchar as model_version
    from matched
    left join age_groups
        on matched.predicted_age >= age_groups.low
        and matched.predicted_age < age_groups.high
)

select * from final
order by store_id, register_id, paid_at, receipt_id
