-- One row per receipt of the day: where and when it was paid (paid_at: the chain's wall
-- clock, as published) and the same moment on its register's matching clock (paid_on_clock:
-- UTC or wall clock, see register_clocks). Internal. Inputs: lines, register_clocks.
with receipts as (
    select
        receipt_id,
        min(store_id) as store_id,
        min(register_id) as register_id,
        min(cashier_id) as cashier_id,
        max(paid_at) as paid_at,
        max(paid_at_utc) as paid_at_utc
    from lines
    group by receipt_id
),

final as (
    select
        receipts.receipt_id,
        receipts.store_id,
        receipts.register_id,
        receipts.cashier_id,
        receipts.paid_at,
        case
            when register_clocks.clock = 'utc' then receipts.paid_at_utc
            else receipts.paid_at
        end as paid_on_clock
    from receipts
    inner join register_clocks
        on receipts.store_id = register_clocks.store_id
        and receipts.register_id = register_clocks.register_id
)

select * from final
