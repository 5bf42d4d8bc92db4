-- Per store and register: the clock its receipts and photos are matched on, and how far its
-- camera's clock runs ahead of the till's. Internal: receipt_times and capture_times use it.
-- clock: 'utc' when every receipt paid there has paid_at_utc and every photo taken there has
-- captured_at_utc (both known only when the input carried a UTC offset); else 'local', the
-- chain's wall clock as written. Matching never crosses registers, so each register chooses
-- its own clock; UTC and wall-clock times are never compared with each other.
-- offset_s: seconds the camera's clock is ahead of the till's (a camera running 90 s fast has
-- +90); its photos' times have it taken off before matching. A clock_offsets row naming the
-- register beats the store's row (empty or null register_id); no row: 0.
-- Inputs: lines, captures, clock_offsets (store_id, register_id, offset_s).
with receipt_registers as (
    select
        store_id,
        register_id,
        bool_and(paid_at_utc is not null) as utc_known
    from lines
    group by store_id, register_id
),

capture_registers as (
    select
        store_id::varchar as store_id,
        register_id::varchar as register_id,
        bool_and(captured_at_utc is not null) as utc_known
    from captures
    group by all
),

registers as (
    select
        store_id,
        register_id,
        bool_and(utc_known) as utc_known
    from (
        select * from receipt_registers
        union all
        select * from capture_registers
    ) as seen
    group by store_id, register_id
),

offsets as (
    select
        registers.store_id,
        registers.register_id,
        clock_offsets.offset_s
    from registers
    inner join clock_offsets
        on registers.store_id = clock_offsets.store_id
        and (
            registers.register_id = clock_offsets.register_id
            or coalesce(clock_offsets.register_id, '') = ''
        )
    qualify row_number() over (
        partition by registers.store_id, registers.register_id
        order by coalesce(clock_offsets.register_id, '') = '', clock_offsets.offset_s
    ) = 1
),

final as (
    select
        registers.store_id,
        registers.register_id,
        case when registers.utc_known then 'utc' else 'local' end as clock,
        coalesce(offsets.offset_s, 0)::double as offset_s
    from registers
    left join offsets
        on registers.store_id = offsets.store_id
        and registers.register_id = offsets.register_id
)

select * from final
