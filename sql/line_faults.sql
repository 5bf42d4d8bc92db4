-- The quarantined receipts (line_receipts with a rule), each with the line that shows why: the
-- first line that breaks a rule (fault, from lines.sql), else the receipt's first line whose
-- store or register differs from its first line's (store, register), else its first line
-- (receipt_day). Input: lines, line_receipts.
with quarantined as (
    select *
    from line_receipts
    where rule is not null
),

other_place as (
    select
        lines.receipt,
        min(lines.source_row) as source_row
    from lines
    inner join quarantined on lines.receipt = quarantined.receipt
    where
        quarantined.rule in ('store', 'register')
        and (lines.store_id != quarantined.store_id or lines.register_id != quarantined.register_id)
    group by lines.receipt
),

final as (
    select
        quarantined.receipt,
        quarantined.receipt_id,
        quarantined.store_id,
        quarantined.first_row,
        quarantined.paid_at as receipt_paid_at,
        coalesce(quarantined.fault_row, other_place.source_row, quarantined.first_row)
            as source_row,
        case when quarantined.rule = 'line' then shown.fault else quarantined.rule end as rule,
        shown.store_id as line_store_id,
        shown.register_id as line_register_id,
        shown.paid_at as line_paid_at,
        shown.quantity as line_quantity
    from quarantined
    left join other_place on quarantined.receipt = other_place.receipt
    inner join lines as shown
        on coalesce(quarantined.fault_row, other_place.source_row, quarantined.first_row)
        = shown.source_row
)

select * from final
order by source_row
