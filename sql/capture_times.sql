-- One row per photo of the day: where and when it was taken (captured_at: the camera's wall
-- clock, as written), the same moment on its register's matching clock with the camera's
-- offset taken off (captured_on_clock, see register_clocks), its predicted_age and status
-- (ok, unreadable, no_face, refused), the receipt_id a manifest names, and whether it is a
-- shot.
-- A burst of photos in one second at one register shows one shopper and counts once: a
-- photo named in the manifest, else the one with an age, else one without a face, else the
-- last by name. Photos named in the manifest always count. The second is the camera's, read
-- on the register's clock, so on an autumn night the two 01:00 hours stay apart when UTC
-- times are known. Internal.
-- Inputs: captures, register_clocks.
-- (Columns are cast: an empty pandas frame's text columns may arrive typed otherwise.)
with timed as (
    select
        captures.photo::varchar as photo,
        captures.store_id::varchar as store_id,
        captures.register_id::varchar as register_id,
        captures.captured_at,
        -- the camera's own reading on the register's clock: a burst is one second of it
        case
            when register_clocks.clock = 'utc' then captures.captured_at_utc
            else captures.captured_at
        end as camera_at,
        register_clocks.offset_s,
        captures.predicted_age::double as predicted_age,
        captures.status::varchar as status,
        captures.quality_score::double as quality_score,
        captures.quality_part::varchar as quality_part,
        captures.receipt_id::varchar as receipt_id
    from captures
    inner join register_clocks
        on captures.store_id::varchar = register_clocks.store_id
        and captures.register_id::varchar = register_clocks.register_id
),

final as (
    select
        photo,
        store_id,
        register_id,
        captured_at,
        camera_at - to_seconds(offset_s) as captured_on_clock,
        predicted_age,
        status,
        quality_score,
        quality_part,
        receipt_id,
        receipt_id is not null
        or row_number() over (
            partition by store_id, register_id, date_trunc('second', camera_at)
            order by
                receipt_id is not null desc,
                case status when 'ok' then 0 when 'no_face' then 1 else 2 end,
                photo desc
        ) = 1 as shot
    from timed
)

select * from final
