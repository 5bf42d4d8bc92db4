-- The first line of the day's transactions, in file order, that the join could not trust, and
-- what is wrong with it (fault); no row when every line is fine. Faults, in the order checked:
-- store, register, cashier: the receipt is rung up elsewhere on an earlier row (first_row) -- a
-- receipt belongs to one store, register and cashier, so receipt ids are unique for the day;
-- receipt_day: the receipt (paid at its latest line, the store's wall clock) is not paid on
-- $day; line_day: a line dated neither on $day nor on the day before (a receipt rung up over
-- midnight); quantity_not_finite; quantity_too_large (past DECIMAL(12, 3)); quantity_zero;
-- sign: quantity and amount of opposite signs (a return has both negative; an amount of 0 goes
-- with either sign).
-- Input: lines (lines.sql, with source_row). Parameter: $day.
with receipts as (
    select
        receipt_id,
        min(source_row) as first_row,
        arg_min(store_id, source_row) as first_store_id,
        arg_min(register_id, source_row) as first_register_id,
        arg_min(cashier_id, source_row) as first_cashier_id,
        max(paid_at) as receipt_paid_at
    from lines
    group by receipt_id
),

checked as (
    select
        lines.source_row,
        lines.receipt_id,
        case
            when lines.store_id != receipts.first_store_id then 'store'
            when lines.register_id != receipts.first_register_id then 'register'
            when lines.cashier_id != receipts.first_cashier_id then 'cashier'
            when receipts.receipt_paid_at::date != $day::date then 'receipt_day'
            when lines.paid_at::date not in ($day::date, $day::date - 1) then 'line_day'
            when not isfinite(lines.quantity) then 'quantity_not_finite'
            when abs(lines.quantity) >= 1e9 then 'quantity_too_large'
            when lines.quantity = 0 then 'quantity_zero'
            when sign(lines.quantity) * sign(lines.amount) < 0 then 'sign'
        end as fault,
        lines.store_id,
        lines.register_id,
        lines.cashier_id,
        lines.paid_at,
        lines.quantity,
        lines.amount,
        receipts.first_row,
        receipts.first_store_id,
        receipts.first_register_id,
        receipts.first_cashier_id,
        receipts.receipt_paid_at
    from lines
    inner join receipts on lines.receipt_id = receipts.receipt_id
),

final as (
    select *
    from checked
    where fault is not null
    order by source_row
    limit 1
)

select * from final
