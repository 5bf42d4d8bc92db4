-- Per store and register: does the camera's clock agree with the till's? One row per
-- register seen in the day's receipts or photos.
-- lag = paid - captured, in seconds on the register's clock (after any clock offset):
-- positive when the photo was taken before payment, as it should be (a few seconds).
-- A camera running 90 s fast gives lags near -85, one running 90 s slow near +95.
-- Matched pairs alone cannot show that: a fast camera's photos mostly fall outside the
-- window, and at a busy till a drifted photo is often nearer the next shopper's payment.
-- So every shot is set against every receipt at its register within $search_s, and the
-- differences are counted in $bin_s-wide bins: the fullest bin is the register's typical
-- lag (a true lag repeats for every shopper, the distances to other shoppers' payments
-- scatter). Each shot's lag is then its difference nearest that typical lag, kept when it is
-- within threshold_s of it; median_lag_s and p90_lag_s are over those (lagged) shots.
-- drift_suspected: |median_lag_s| > threshold_s, half the window's width
-- ($before_s + $after_s) / 2: the camera's clock is more likely wrong than the shoppers slow.
-- captures counts shots (a burst in one second once); matched counts the register's receipts
-- that have a photo. Inputs: register_clocks, receipt_times, capture_times, receipt_captures.
-- Parameters: $day, $before_s, $after_s, $search_s, $bin_s.
with shots as (
    select
        photo,
        store_id,
        register_id,
        epoch_us(captured_on_clock) as captured_us,
        epoch_us(captured_on_clock) // ($search_s * 1e6)::bigint as bucket
    from capture_times
    where shot
),

-- A receipt reaches shots in its own bucket and the two beside it.
receipts as (
    select
        store_id,
        register_id,
        paid_us,
        unnest([bucket - 1, bucket, bucket + 1]) as bucket
    from (
        select
            store_id,
            register_id,
            epoch_us(paid_on_clock) as paid_us,
            epoch_us(paid_on_clock) // ($search_s * 1e6)::bigint as bucket
        from receipt_times
    ) as timed
),

differences as (
    select
        shots.store_id,
        shots.register_id,
        shots.photo,
        receipts.paid_us - shots.captured_us as lag_us
    from shots
    inner join receipts
        on shots.store_id = receipts.store_id
        and shots.register_id = receipts.register_id
        and shots.bucket = receipts.bucket
    where abs(receipts.paid_us - shots.captured_us) <= ($search_s * 1e6)::bigint
),

bins as (
    select
        store_id,
        register_id,
        floor(lag_us / ($bin_s * 1e6)) as bin,
        count(*) as differences
    from differences
    group by store_id, register_id, bin
),

-- The fullest bin; ties go to the one nearest zero, then the earlier.
typical as (
    select
        store_id,
        register_id,
        ((bin + 0.5) * $bin_s * 1e6)::bigint as typical_us
    from bins
    qualify row_number() over (
        partition by store_id, register_id
        order by differences desc, abs(bin + 0.5), bin
    ) = 1
),

-- Each shot's difference nearest the typical lag (ties: the smaller lag).
shot_lags as (
    select
        differences.store_id,
        differences.register_id,
        differences.photo,
        arg_min(
            differences.lag_us,
            abs(differences.lag_us - typical.typical_us) * 2
            + (differences.lag_us > typical.typical_us)::bigint
        ) / 1e6 as lag_s
    from differences
    inner join typical
        on differences.store_id = typical.store_id
        and differences.register_id = typical.register_id
    where abs(differences.lag_us - typical.typical_us) <= ($before_s + $after_s) / 2 * 1e6
    group by differences.store_id, differences.register_id, differences.photo
),

lags as (
    select
        store_id,
        register_id,
        count(*) as lagged,
        median(lag_s) as median_lag_s,
        quantile_cont(lag_s, 0.9) as p90_lag_s
    from shot_lags
    group by store_id, register_id
),

receipt_counts as (
    select
        receipt_times.store_id,
        receipt_times.register_id,
        count(*) as receipts,
        count(receipt_captures.receipt_id) as matched
    from receipt_times
    left join receipt_captures on receipt_times.receipt_id = receipt_captures.receipt_id
    group by receipt_times.store_id, receipt_times.register_id
),

shot_counts as (
    select
        store_id,
        register_id,
        count(*) as captures
    from shots
    group by store_id, register_id
),

final as (
    select
        $day::date as day,
        register_clocks.store_id,
        register_clocks.register_id,
        register_clocks.clock,
        register_clocks.offset_s,
        coalesce(receipt_counts.receipts, 0) as receipts,
        coalesce(shot_counts.captures, 0) as captures,
        coalesce(receipt_counts.matched, 0) as matched,
        coalesce(lags.lagged, 0) as lagged,
        lags.median_lag_s,
        lags.p90_lag_s,
        ($before_s + $after_s) / 2 as threshold_s,
        coalesce(abs(lags.median_lag_s) > ($before_s + $after_s) / 2, false) as drift_suspected
    from register_clocks
    left join receipt_counts
        on register_clocks.store_id = receipt_counts.store_id
        and register_clocks.register_id = receipt_counts.register_id
    left join shot_counts
        on register_clocks.store_id = shot_counts.store_id
        and register_clocks.register_id = shot_counts.register_id
    left join lags
        on register_clocks.store_id = lags.store_id
        and register_clocks.register_id = lags.register_id
)

select * from final
order by store_id, register_id
