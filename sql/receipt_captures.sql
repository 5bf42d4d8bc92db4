-- Which photo shows the shopper who paid each receipt: one row per receipt that has one.
-- One photo, one shopper: a photo belongs to at most one receipt, a receipt to at most one
-- photo. A photo whose manifest names a receipt goes to that receipt (the readable one, then
-- the latest, if several name it); that receipt and every named photo leave the pool. In the
-- pool, a receipt and a shot (capture_times.shot: a burst in one second counts once) may pair
-- when the shot was taken at the receipt's store and register from $before_s before to
-- $after_s after payment, on the register's clock (capture_times.captured_on_clock). Pairs
-- are taken nearest first: the pair with the smallest |paid - captured| of all still-free
-- receipts and shots is paired, both leave the pool, and so on (greedy by time distance).
-- When two receipts want one shot, the nearer payment wins and the other receipt takes its
-- own next-nearest free shot in its window, or has none. Equal distances: a shot taken
-- before payment beats one after, then the smaller receipt_id, then the smaller photo.
-- Computed as rounds of mutually nearest pairs (a pair that is each side's first choice
-- among free partners is taken; all such pairs at once), which takes the same pairs as the
-- greedy order. Candidates come from an equi-join on ($before_s + $after_s)-wide time
-- buckets, so the work grows with the day's pairs in reach, not with registers' squares.
-- Internal: receipt_ages and till_clocks read it. Inputs: receipt_times, capture_times.
-- Parameters: $before_s, $after_s.
with recursive named as (
    select
        receipt_times.receipt_id,
        capture_times.photo,
        capture_times.captured_at,
        capture_times.predicted_age,
        capture_times.status,
        capture_times.quality_score,
        capture_times.quality_part,
        'manifest' as paired_by
    from capture_times
    inner join receipt_times on capture_times.receipt_id = receipt_times.receipt_id
    qualify row_number() over (
        partition by receipt_times.receipt_id
        order by
            capture_times.status = 'ok' desc,
            capture_times.captured_at desc,
            capture_times.photo desc
    ) = 1
),

-- Time buckets as wide as the window (whole microseconds, so the arithmetic is exact): each
-- free receipt's window [paid - $before_s, paid + $after_s] lies within two of them.
bucket as (
    select ceil(greatest($before_s + $after_s, 1) * 1e6)::bigint as width_us
),

pool_receipts as (
    select
        free.receipt_id,
        free.store_id,
        free.register_id,
        free.paid_on_clock,
        unnest([free.first_bucket, free.first_bucket + 1]) as bucket
    from (
        select
            receipt_times.*,
            epoch_us(receipt_times.paid_on_clock - to_seconds($before_s)) // bucket.width_us
            as first_bucket
        from receipt_times
        cross join bucket
        where not exists (select 1 from named where named.receipt_id = receipt_times.receipt_id)
    ) as free
),

pool_shots as (
    select
        capture_times.photo,
        capture_times.store_id,
        capture_times.register_id,
        capture_times.captured_on_clock,
        epoch_us(capture_times.captured_on_clock) // bucket.width_us as bucket
    from capture_times
    cross join bucket
    where capture_times.shot and capture_times.receipt_id is null
),

candidates as (
    select
        pool_receipts.receipt_id,
        pool_shots.photo,
        abs(
            epoch_us(pool_receipts.paid_on_clock) - epoch_us(pool_shots.captured_on_clock)
        ) as distance_us,
        pool_shots.captured_on_clock > pool_receipts.paid_on_clock as after_payment
    from pool_receipts
    inner join pool_shots
        on pool_receipts.store_id = pool_shots.store_id
        and pool_receipts.register_id = pool_shots.register_id
        and pool_receipts.bucket = pool_shots.bucket
    where
        pool_shots.captured_on_clock
        >= pool_receipts.paid_on_clock - to_seconds($before_s)
        and pool_shots.captured_on_clock
        <= pool_receipts.paid_on_clock + to_seconds($after_s)
),

-- Each round keeps the candidates whose receipt and shot are both still free and marks the
-- mutually nearest ones as paired; it ends when no free candidate is left.
rounds as (
    select
        receipt_id,
        photo,
        distance_us,
        after_payment,
        false as paired
    from candidates
    union all
    select
        receipt_id,
        photo,
        distance_us,
        after_payment,
        nearest as paired
    from (
        select
            *,
            bool_or(nearest) over (partition by receipt_id) as receipt_taken,
            bool_or(nearest) over (partition by photo) as photo_taken
        from (
            select
                receipt_id,
                photo,
                distance_us,
                after_payment,
                row_number() over (
                    partition by receipt_id
                    order by distance_us, after_payment, photo
                ) = 1
                and row_number() over (
                    partition by photo
                    order by distance_us, after_payment, receipt_id
                ) = 1 as nearest
            from rounds
            where not paired
        ) as ranked
    ) as marked
    where nearest or not (receipt_taken or photo_taken)
),

by_time as (
    select
        rounds.receipt_id,
        capture_times.photo,
        capture_times.captured_at,
        capture_times.predicted_age,
        capture_times.status,
        capture_times.quality_score,
        capture_times.quality_part,
        'time' as paired_by
    from rounds
    inner join capture_times on rounds.photo = capture_times.photo
    where rounds.paired and capture_times.shot and capture_times.receipt_id is null
),

final as (
    select * from named
    union all
    select * from by_time
)

select * from final
