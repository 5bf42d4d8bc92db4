-- The catalog's product names, for the report and analysts (a sku's name beside its code):
-- every sku of the day's catalog that has a name. No shopper is in it. Input: catalog (its
-- optional name column: null when the file has none). Parameter: $day.
with final as (
    select
        $day::date as day,
        sku,
        name,
        category,
        age_restricted
    from catalog
    where name is not null
)

select * from final
order by sku
