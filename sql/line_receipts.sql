-- The receipts the reader must act on: those a rule quarantines (rule: line, a line of it
-- breaks a rule of lines.sql, the first at fault_row; store or register, its lines are at two
-- stores or registers under the key; receipt_day, paid at its latest line not on $day) and
-- those rung up by more than one operator (mixed: receipt_cashiers.sql picks the cashier).
-- Input: lines (lines.sql). Parameter: $day.
with receipts as (
    select
        receipt,
        arg_min(coalesce(till_receipt_id, receipt), source_row) as receipt_id,
        arg_min(store_id, source_row) as store_id,
        arg_min(register_id, source_row) as register_id,
        min(source_row) as first_row,
        min(store_id) != max(store_id) as stores,
        min(register_id) != max(register_id) as registers,
        min(cashier_id) != max(cashier_id) as mixed,
        max(paid_at) as paid_at,
        min(source_row) filter (where fault is not null) as fault_row
    from lines
    group by receipt
),

judged as (
    select
        *,
        case
            when fault_row is not null then 'line'
            when stores then 'store'
            when registers then 'register'
            when paid_at::date != $day::date then 'receipt_day'
        end as rule
    from receipts
),

final as (
    select *
    from judged
    where rule is not null or mixed
)

select * from final
