-- The cashier of each receipt rung up by more than one operator (line_receipts.mixed): the
-- operator of most of its lines; on a tie, the one of its first line in the file. The other
-- operators' lines are overrides (a supervisor keying or approving a line). Input: lines,
-- line_receipts.
with counted as (
    select
        lines.receipt,
        lines.cashier_id,
        count(*) as line_count,
        min(lines.source_row) as first_row
    from lines
    semi join line_receipts
        on lines.receipt = line_receipts.receipt
        and line_receipts.mixed
        and line_receipts.rule is null
    group by lines.receipt, lines.cashier_id
),

final as (
    select
        receipt,
        cashier_id
    from counted
    qualify row_number() over (partition by receipt order by line_count desc, first_row) = 1
)

select * from final
