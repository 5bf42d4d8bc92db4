-- The day's line items, with each payment time on two clocks: paid_at, the store's wall clock
-- (what is published), and paid_at_utc (naive UTC), set only where the input time carried a
-- UTC offset ('2026-10-25T01:30:00+01:00', '…Z'); such a time's wall clock is read in
-- $timezone. Times without an offset are taken as the wall clock, as written (the repeated
-- autumn hour and the spring gap included). Input: lines_raw (typed, paid_at still text,
-- optional columns such as age_check after the required ones; source_row, the line's row in
-- the file, for messages).
-- Parameter: $timezone.
with parsed as (
    select
        *,
        regexp_matches(
            trim(paid_at), '\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$'
        ) as has_offset
    from lines_raw
),

-- Every input column is kept (an optional age_check too), paid_at converted in place.
final as (
    select
        * exclude (has_offset) replace (
            case
                when has_offset then timezone($timezone, paid_at::timestamptz)
                else paid_at::timestamp
            end as paid_at
        ),
        case when has_offset then timezone('UTC', paid_at::timestamptz) end as paid_at_utc
    from parsed
)

select * from final
