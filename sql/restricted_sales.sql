-- Every receipt of the day that sold an age-restricted item, with the store's policy and the
-- reason to review it (null: the shopper looked old enough), the till's age check and whether
-- it was a missed check. Internal: alcohol_checks and cashier_compliance are built from it.
-- approved_by: the operators other than the receipt's cashier who keyed or approved one of its
-- restricted lines (a supervisor's override; lines.operator_id), null: the cashier alone.
-- Inputs: lines, catalog, receipt_ages, policy (store_id, legal_age, challenge_age), margins
-- (low, high, mae: the model's error per band), age_checks (receipt_id, age_check), curve
-- (threshold, teen_miss, adult_flag: the model card's operating curve).
-- Parameters: $legal_age, $challenge_age, $margin (multiple of the band's MAE),
-- $flag_threshold (chosen by --max-teen-miss, else null), $checks_recorded (the transactions
-- had an age_check column).
with restricted_lines as (
    select
        lines.receipt_id,
        lines.sku,
        lines.quantity,
        lines.amount,
        -- keyed or approved by another operator than the receipt's cashier: an override
        case when lines.operator_id != lines.cashier_id then lines.operator_id end as approver
    from lines
    inner join catalog on lines.sku = catalog.sku
    where catalog.age_restricted
),

-- A sale, not a return: more restricted units sold than given back on the receipt.
restricted as (
    select
        receipt_id,
        list(distinct sku order by sku) filter (where quantity > 0) as restricted_skus,
        sum(quantity)::decimal(12, 3) as restricted_units,
        sum(amount)::decimal(18, 2) as restricted_amount,
        string_agg(distinct approver, ', ' order by approver) as approved_by
    from restricted_lines
    group by receipt_id
    having sum(quantity) > 0
),

checked as (
    select
        receipt_ages.*,
        restricted.restricted_skus,
        restricted.restricted_units,
        restricted.restricted_amount,
        restricted.approved_by,
        coalesce(policy.legal_age, $legal_age)::double as legal_age,
        coalesce(policy.challenge_age, $challenge_age)::double as challenge_age,
        coalesce(margins.mae, 0) * $margin as margin_years,
        -- A threshold chosen from the curve replaces the challenge age in every store.
        coalesce(
            $flag_threshold::double,
            coalesce(policy.challenge_age, $challenge_age) + coalesce(margins.mae, 0) * $margin
        ) as flag_threshold,
        -- Null when the day records no checks; an empty age_check is not_recorded.
        case
            when $checks_recorded then coalesce(age_checks.age_check, 'not_recorded')
        end as age_check
    from receipt_ages
    inner join restricted on receipt_ages.receipt_id = restricted.receipt_id
    left join policy on receipt_ages.store_id = policy.store_id
    left join margins
        on receipt_ages.predicted_age >= margins.low
        and receipt_ages.predicted_age < margins.high
    left join age_checks on receipt_ages.receipt_id = age_checks.receipt_id
),

judged as (
    select
        *,
        case
            -- no usable photo (no_photo, unreadable, no_face, refused, low_quality): an unchecked sale
            when status != 'matched' then status
            when predicted_age < legal_age + margin_years then 'under_legal_age'
            when predicted_age < flag_threshold then 'under_challenge_age'
        end as age_reason,
        -- flagged: the shopper looked young (the reason may still become sold_after_refusal)
        coalesce(age_reason in ('under_legal_age', 'under_challenge_age'), false) as flagged
    from checked
),

final as (
    select
        day,
        store_id,
        register_id,
        cashier_id,
        approved_by,
        receipt_id,
        paid_at,
        predicted_age,
        restricted_skus,
        restricted_units,
        restricted_amount,
        -- The till says ID was refused, yet restricted items were sold: whatever the photo.
        case when age_check = 'id_refused' then 'sold_after_refusal' else age_reason end as reason,
        legal_age,
        challenge_age,
        margin_years,
        age_check,
        -- A missed check: looked young and the till recorded no check (null: none recorded).
        case
            when age_check is not null then flagged and age_check in ('not_asked', 'not_recorded')
        end as missed_check,
        flag_threshold,
        curve.teen_miss as expected_teen_miss,
        curve.adult_flag as expected_adult_flag,
        model_version,
        -- internal, for cashier_compliance
        flagged,
        status != 'matched' as unchecked
    from judged
    -- The curve describes one threshold for every age: with a margin there is none to read.
    left join curve on judged.flag_threshold = curve.threshold and $margin = 0
)

select * from final
