-- Age-restricted sales a manager should review: the shopper looked under the challenge age,
-- or no usable photo shows who bought (no_photo, unreadable, no_face, refused, low_quality: an
-- unchecked sale), or the till recorded a refused ID yet sold (sold_after_refusal).
-- A list to review, not a verdict.
-- Input: restricted_sales.
with final as (
    select * exclude (flagged, unchecked)
    from restricted_sales
    where reason is not null
)

select * from final
order by store_id, cashier_id, paid_at, receipt_id
