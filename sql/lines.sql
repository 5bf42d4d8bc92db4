-- The day's lines parsed, each with the first rule it breaks (fault; null: none) and its
-- receipt (the key: the till's receipt_id, prefixed with store_id/ or store_id/register_id/
-- where receipt numbers restart per store or per register; till_receipt_id, the till's own,
-- kept only then).
-- paid_at is the store's wall clock; paid_at_utc (naive UTC) is set only where the input time
-- carried a UTC offset or a zone name ('…+01:00', '…Z', '… UTC', '… America/New_York'), whose
-- wall clock is read in $timezone; a time without one is the wall clock as written.
-- Faults: an empty id, sku, paid_at, quantity or amount, or one that does not parse
-- (receipt_id … amount: the column); quantity_not_finite; quantity_too_large (past
-- DECIMAL(12, 3)); quantity_scale (finer than 0.001); line_day (dated neither $day nor the day
-- before).
-- Input: lines_raw (text columns, source_row). Parameters: $timezone, $day, $key (chain,
-- store or register).
with parsed as (
    select
        source_row,
        receipt_id,
        store_id,
        register_id,
        cashier_id,
        nullif(trim(operator_id), '') as operator_id,
        nullif(trim(sku), '') as sku,  -- a code padded to a fixed width is the code
        try_cast(quantity as double) as quantity,
        try_cast(amount as decimal(18, 2)) as amount,
        nullif(trim(age_check), '') as age_check,
        trim(paid_at) as paid_text,
        regexp_matches(
            trim(paid_at),
            '\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?|[A-Za-z][A-Za-z0-9_+/-]*)$'
        ) as has_zone
    from lines_raw
),

timed as (
    select
        * exclude (paid_text, has_zone),
        case
            when has_zone then timezone($timezone, try_cast(paid_text as timestamptz))
            else try_cast(paid_text as timestamp)
        end as paid_at,
        case
            when has_zone then timezone('UTC', try_cast(paid_text as timestamptz))
        end as paid_at_utc
    from parsed
),

faulted as (
    select
        -- '' where a part of the key is empty (such lines are quarantined together)
        coalesce(
            case $key
                when 'chain' then receipt_id
                when 'store' then store_id || '/' || receipt_id
                else store_id || '/' || register_id || '/' || receipt_id
            end,
            ''
        ) as receipt,
        *,
        case
            when receipt_id is null then 'receipt_id'
            when store_id is null then 'store_id'
            when register_id is null then 'register_id'
            when cashier_id is null then 'cashier_id'
            when sku is null then 'sku'
            when paid_at is null then 'paid_at'
            when quantity is null then 'quantity'
            when not isfinite(quantity) then 'quantity_not_finite'
            when abs(quantity) >= 1e9 then 'quantity_too_large'
            when quantity != round(quantity, 3) then 'quantity_scale'
            when amount is null then 'amount'
            when paid_at::date not in ($day::date, $day::date - 1) then 'line_day'
        end as fault
    from timed
),

-- The till's receipt_id is kept only where the key is not it alone (else receipt is the id).
final as (
    select
        * exclude (receipt_id),
        case when $key != 'chain' then receipt_id end as till_receipt_id
    from faulted
)

select * from final
