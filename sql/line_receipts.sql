-- The receipts the reader must act on: those a rule quarantines (rule: line, a line of it
-- breaks a rule of lines.sql, the first at fault_row; store or register, its lines are at two
-- stores or registers under the key; receipt_day, paid at its latest line not on $day) and
-- those rung up by more than one operator (mixed: receipt_cashiers.sql picks the cashier).
-- Input: lines (lines.sql). Parameter: $day.
-- Places and operators are compared by their hashes (fixed-size states over a million
-- receipts; two different ids with one 64-bit hash: about 1 in 10^19).
with receipts as (
    select
        receipt,
        min(source_row) as first_row,
        min(hash(store_id)) != max(hash(store_id)) as stores,
        min(hash(register_id)) != max(hash(register_id)) as registers,
        min(hash(cashier_id)) != max(hash(cashier_id)) as mixed,
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

acted_on as (
    select *
    from judged
    where rule is not null or mixed
),

-- the receipt as its first line names it
final as (
    select
        acted_on.*,
        coalesce(lines.till_receipt_id, lines.receipt) as receipt_id,
        lines.store_id,
        lines.register_id
    from acted_on
    inner join lines on acted_on.first_row = lines.source_row
)

select * from final
