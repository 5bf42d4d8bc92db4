-- One row per camera (store, register) that had photos that day: how its photos were read,
-- what the sample of `--photo-kind auto` said (agebatch.predict.cameras), its photos per
-- status, and its latest earlier verdict of auto within the history given (days run under a
-- kind that was set, or undecided, are passed over), so a camera that was re-mounted (aligned
-- crops one day, loose crops the next) shows, even across days run as crops.
-- saves: the verdict under auto (aligned crops, loose crops, frames; undecided: no photo of
-- its sample could be read, or no verdict reached the table), else the kind that was set
-- ('crops (set)', 'frames (set)').
-- changed: saves differs from saves_before; null unless saves is a verdict and there is one
-- before.
-- Inputs: captures, camera_verdicts, cameras_history. Parameters: $day, $photo_kind.
with photos as (
    select
        store_id,
        register_id,
        count(*) as photos,
        count(*) filter (where status = 'ok') as aged,
        count(*) filter (where status = 'low_quality') as low_quality,
        count(*) filter (where status = 'no_face') as no_face,
        count(*) filter (where status = 'unreadable') as unreadable,
        count(*) filter (where status = 'refused') as refused
    from captures
    group by store_id, register_id
),

verdicts as (
    select *
    from camera_verdicts
    where $photo_kind = 'auto'
),

earlier as (
    select
        store_id,
        register_id,
        day as day_before,
        saves as saves_before,
        misalignment as misalignment_before
    from cameras_history
    where day < $day::date and saves in ('aligned crops', 'loose crops', 'frames')
    qualify row_number() over (partition by store_id, register_id order by day desc) = 1
),

read_as as (
    select
        photos.*,
        case
            when $photo_kind = 'auto' then coalesce(verdicts.saves, 'undecided')
            else $photo_kind || ' (set)'
        end as saves,
        verdicts.crop_votes,
        verdicts.frame_votes,
        verdicts.misaligned_crops,
        verdicts.misalignment
    from photos
    left join verdicts
        on photos.store_id = verdicts.store_id and photos.register_id = verdicts.register_id
),

final as (
    select
        $day::date as day,
        read_as.store_id,
        read_as.register_id,
        $photo_kind as photo_kind,
        read_as.saves,
        read_as.crop_votes,
        read_as.frame_votes,
        read_as.misaligned_crops,
        read_as.misalignment,
        read_as.photos,
        read_as.aged,
        read_as.low_quality,
        read_as.no_face,
        read_as.unreadable,
        read_as.refused,
        earlier.saves_before,
        earlier.misalignment_before,
        earlier.day_before,
        case
            when read_as.saves in ('aligned crops', 'loose crops', 'frames')
                then read_as.saves != earlier.saves_before  -- null: no verdict before
        end as changed
    from read_as
    left join earlier
        on read_as.store_id = earlier.store_id and read_as.register_id = earlier.register_id
)

select * from final
order by store_id, register_id
