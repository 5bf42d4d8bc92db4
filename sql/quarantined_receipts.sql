-- The day's quarantined receipts, as the reader listed them (agebatch.inputs.transactions): a
-- line of each broke a rule, so the receipt is in no other table and in no photo match.
-- Restricted: its raw line holds cashier ids. Input: quarantine. Parameter: $day.
with final as (
    select
        $day::date as day,
        store_id,
        receipt_id,
        file,
        line,
        rule,
        detail,
        raw_line
    from quarantine
)

select * from final
order by store_id, receipt_id
