-- Every receipt of the day that sold an age-restricted item, with the store's policy and the
-- reason to review it (null: the shopper looked old enough). Internal: alcohol_checks and
-- cashier_compliance are built from it. Inputs: lines, catalog, receipt_ages, policy
-- (store_id, legal_age, challenge_age), margins (low, high, mae: the model's error per band).
-- Parameters: $legal_age, $challenge_age, $margin (multiple of the band's MAE).
with restricted_lines as (
    select
        lines.receipt_id,
        lines.sku,
        lines.quantity,
        lines.amount
    from lines
    inner join catalog on lines.sku = catalog.sku
    where catalog.age_restricted
),

-- A sale, not a return: more restricted units sold than given back on the receipt.
restricted as (
    select
        receipt_id,
        list(distinct sku order by sku) filter (where quantity > 0) as restricted_skus,
        sum(quantity) as restricted_units,
        sum(amount)::double as restricted_amount
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
        coalesce(policy.legal_age, $legal_age)::double as legal_age,
        coalesce(policy.challenge_age, $challenge_age)::double as challenge_age,
        coalesce(margins.mae, 0) * $margin as margin_years
    from receipt_ages
    inner join restricted on receipt_ages.receipt_id = restricted.receipt_id
    left join policy on receipt_ages.store_id = policy.store_id
    left join margins
        on receipt_ages.predicted_age >= margins.low
        and receipt_ages.predicted_age < margins.high
),

final as (
    select
        day,
        store_id,
        register_id,
        cashier_id,
        receipt_id,
        paid_at,
        predicted_age,
        restricted_skus,
        restricted_units,
        restricted_amount,
        case
            -- no usable photo (no_photo, unreadable, no_face, refused): an unchecked sale
            when status != 'matched' then status
            when predicted_age < legal_age + margin_years then 'under_legal_age'
            when predicted_age < challenge_age + margin_years then 'under_challenge_age'
        end as reason,
        legal_age,
        challenge_age,
        margin_years,
        model_version
    from checked
)

select * from final
