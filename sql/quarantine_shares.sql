-- The stores over the quarantine gate's limit: at least $least receipts quarantined, and more
-- than $share of the store's receipts or of its revenue (absolute line amounts) quarantined.
-- Input: lines (before the quarantined receipts are taken out), line_receipts.
with quarantined as (
    select receipt
    from line_receipts
    where rule is not null
),

stores as (
    select
        lines.store_id,
        count(distinct lines.receipt) filter (where quarantined.receipt is not null) as bad,
        count(distinct lines.receipt) as total,
        coalesce(sum(abs(lines.amount)) filter (where quarantined.receipt is not null), 0)
            as bad_revenue,
        coalesce(sum(abs(lines.amount)), 0) as revenue
    from lines
    left join quarantined on lines.receipt = quarantined.receipt
    where lines.store_id in (
        select line_receipts.store_id from line_receipts where line_receipts.rule is not null
    )
    group by lines.store_id
),

final as (
    select
        store_id,
        bad,
        total,
        bad / total as share,
        case when revenue > 0 then bad_revenue / revenue else 0 end as revenue_share
    from stores
    where bad >= $least and (bad / total > $share or (revenue > 0 and bad_revenue / revenue > $share))
)

select * from final
order by store_id
