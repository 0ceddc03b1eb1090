-- The monthly report's value rows at cost (issue 18; docs/monthly-report.md): migration 0025 reported value as 0,
-- written before receipts carried unit costs (0026). Now each ledger row's quantity times the unit_cost of its
-- batch (the stock row it moved, ocs_inventory_transactions.inventory_id), 0 for a batch no receipt priced: as
-- the OCS feed values a movement (sql/functions/ocs_report.sql). One rate per batch, its current unit_cost, for
-- every month, so value balances across months as units do, and the current month's closing is the sum over
-- the store's batches of on hand times unit cost. The ledger is grouped by stock row first, so ocs_inventory
-- is read once per batch, month and kind of movement; then by sku as before, so the catalogue is read once per
-- sku. Same columns in the same order: CREATE OR REPLACE (no other object reads the view).
CREATE OR REPLACE VIEW monthly_report AS
WITH by_batch AS (
    -- One row per store, stock row (batch), month and kind of movement first: each batch's unit cost is then
    -- read once per month and kind of movement, not once per ledger row.
    SELECT t.store_id, t.inventory_id, t.sku,
           date_trunc('month', coalesce(t.occurred_at, t.created_at) AT TIME ZONE s.time_zone)::date AS month,
           t.transaction_type, t.reason_code, sum(t.quantity) AS units,
           (now() AT TIME ZONE s.time_zone)::date AS today
    FROM ocs_inventory_transactions t
    JOIN stores s ON s.id = t.store_id
    GROUP BY t.store_id, t.inventory_id, t.sku, 4, t.transaction_type, t.reason_code, s.time_zone
), by_sku AS (
    -- Then per sku: the catalogue and the factors are read once per sku and month. Value: each batch's units
    -- at its one unit cost (0 unpriced), the same rate in every month, so value balances as units do. The join
    -- names store_id and id, the stock row's key: on Citus, a colocated join.
    SELECT b.store_id, b.sku, b.month, b.transaction_type, b.reason_code, b.today, sum(b.units) AS units,
           sum(b.units * coalesce(i.unit_cost, 0)) AS value
    FROM by_batch b
    LEFT JOIN ocs_inventory i ON i.store_id = b.store_id AND i.id = b.inventory_id
    GROUP BY b.store_id, b.sku, b.month, b.transaction_type, b.reason_code, b.today
), by_reason AS (
    SELECT b.store_id, coalesce(p.product_class, 'uncatalogued') AS product_class, b.month, b.transaction_type,
           b.reason_code, sum(b.units) AS units,
           sum(b.units * CASE WHEN c.counts_toward = 'dried_grams'
                              THEN coalesce(p.stated_dried_grams, p.net_content / f.amount_per_dried_gram, 0)
                              ELSE 0 END) AS grams,
           sum(b.value) AS value
    FROM by_sku b
    LEFT JOIN products p ON p.sku = b.sku
    LEFT JOIN product_classes c ON c.product_class = p.product_class
    LEFT JOIN LATERAL (SELECT f.amount_per_dried_gram FROM dried_equivalency_factors f
                       WHERE f.product_class = p.product_class AND f.net_unit = p.net_unit
                         AND f.in_force_from <= b.today
                       ORDER BY f.in_force_from DESC LIMIT 1) f ON true
    GROUP BY b.store_id, 2, b.month, b.transaction_type, b.reason_code
), moved AS NOT MATERIALIZED (
    -- Read twice (the months, the movements): inlined in both, so a query's store_id reaches the ledger's
    -- index instead of every store's ledger being summed first.
    SELECT store_id, product_class, month, m.measure,
           sum(m.amount) FILTER (WHERE transaction_type = 'receipt') AS receipts,
           sum(m.amount) FILTER (WHERE transaction_type = 'sale') AS sales,
           sum(m.amount) FILTER (WHERE transaction_type IN ('return', 'void')) AS returns,
           sum(m.amount) FILTER (WHERE transaction_type = 'transfer_in') AS transfers_in,
           sum(m.amount) FILTER (WHERE transaction_type = 'transfer_out') AS transfers_out,
           sum(m.amount) FILTER (WHERE transaction_type = 'adjustment' AND reason_code <> 'destruction') AS adjusted,
           jsonb_object_agg(reason_code, m.amount)
               FILTER (WHERE transaction_type = 'adjustment' AND reason_code <> 'destruction') AS adjustments,
           sum(m.amount) FILTER (WHERE transaction_type = 'adjustment' AND reason_code = 'destruction') AS destructions,
           sum(m.amount) FILTER (WHERE transaction_type NOT IN ('receipt', 'sale', 'return', 'void', 'transfer_in',
                                                                'transfer_out', 'adjustment')) AS other,
           sum(m.amount) AS net
    FROM by_reason
    CROSS JOIN LATERAL (VALUES ('units', units), ('grams', grams), ('value', value)) AS m(measure, amount)
    GROUP BY store_id, product_class, month, m.measure
), months AS (
    -- Each class's months, from its first movement in the store to the store's current month.
    SELECT f.store_id, f.product_class, f.measure, g.month::date AS month
    FROM (SELECT store_id, product_class, measure, min(month) AS first_month, max(month) AS last_month
          FROM moved GROUP BY store_id, product_class, measure) f
    JOIN stores s ON s.id = f.store_id
    CROSS JOIN LATERAL generate_series(f.first_month,
                                       greatest(f.last_month, date_trunc('month', now() AT TIME ZONE s.time_zone)),
                                       interval '1 month') AS g(month)
)
SELECT n.store_id, n.month, n.product_class, n.measure,
       coalesce(sum(m.net) OVER w, 0) - coalesce(m.net, 0) AS opening,
       coalesce(m.receipts, 0) AS receipts, coalesce(m.sales, 0) AS sales, coalesce(m.returns, 0) AS returns,
       coalesce(m.transfers_in, 0) AS transfers_in, coalesce(m.transfers_out, 0) AS transfers_out,
       coalesce(m.adjusted, 0) AS adjusted, coalesce(m.adjustments, '{}') AS adjustments,
       coalesce(m.destructions, 0) AS destructions, coalesce(m.other, 0) AS other,
       coalesce(sum(m.net) OVER w, 0) AS closing
FROM months n
LEFT JOIN moved m USING (store_id, product_class, measure, month)
WINDOW w AS (PARTITION BY n.store_id, n.product_class, n.measure ORDER BY n.month);
COMMENT ON VIEW monthly_report IS 'The monthly report a store files: per store, month (the store''s calendar month a movement happened), product class (''uncatalogued'': not in the catalogue) and measure (units; grams: dried-equivalent, by today''s catalogue and factors; value: at cost, each batch''s units times its unit_cost, 0 where no receipt priced it): opening, receipts, sales, returns (and voids), transfers in and out, adjusted (adjustments by reason in adjustments, destruction apart), destructions, other (ledger rows of type opening or manual_adjustment), closing; signed as the ledger (out < 0), opening + movements = closing. Filter by store_id (docs/monthly-report.md).';
