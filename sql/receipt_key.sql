-- How the day's receipt ids repeat, to tell which columns make a receipt: ids of several stores
-- (receipt numbers restart per store) and store ids of several registers (restart per
-- register), each against all of them. Input: lines_raw (the file's lines as text).
with per_store as (
    select
        store_id,
        receipt_id,
        min(hash(register_id)) != max(hash(register_id)) as registers
    from lines_raw
    group by store_id, receipt_id
),

ids as (
    select
        receipt_id,
        count(*) > 1 as stores
    from per_store
    group by receipt_id
),

final as (
    select
        (select count(*) from ids) as receipt_ids,
        (select count(*) from ids where stores) as across_stores,
        (select count(*) from per_store) as store_receipt_ids,
        (select count(*) from per_store where registers) as across_registers
)

select * from final
