-- Views for DBAs in psql: reconciliation (empty on a healthy database) and monitoring. Ledger rows join
-- inventory by (store_id, inventory_id): NULL-safe on batch_lot, and aggregated per row before any join
-- so nothing fans out. Months and hours are in the session's TimeZone.

-- Rows whose on-hand differs from their ledger: the sum of its movements or its last running balance.
CREATE VIEW inventory_discrepancies AS
SELECT i.store_id, i.id AS inventory_id, i.sku, i.batch_lot, i.quantity_on_hand,
       coalesce(l.total, 0) AS ledger_total, l.last_balance,
       i.quantity_on_hand - coalesce(l.total, 0) AS difference
FROM ocs_inventory i
LEFT JOIN LATERAL (
    SELECT sum(t.quantity) AS total, (array_agg(t.quantity_after ORDER BY t.id DESC))[1] AS last_balance
    FROM ocs_inventory_transactions t
    WHERE t.store_id = i.store_id AND t.inventory_id = i.id
) l ON true
WHERE i.quantity_on_hand <> coalesce(l.total, 0) OR i.quantity_on_hand <> coalesce(l.last_balance, 0);

-- The CHECK constraints forbid all of this; the view proves they held (e.g. after a restore or an import
-- that disabled them). Empty on a healthy database.
CREATE VIEW negative_inventory AS
SELECT store_id, id AS inventory_id, sku, batch_lot, quantity_on_hand, quantity_available, quantity_quarantined
FROM ocs_inventory
WHERE quantity_on_hand < 0 OR quantity_available < 0 OR quantity_quarantined < 0
   OR quantity_available + quantity_quarantined > quantity_on_hand;

CREATE VIEW sales_per_hour AS
SELECT o.store_id, date_trunc('hour', o.created_at) AS hour, count(*) AS orders,
       count(*) FILTER (WHERE o.status = 'voided') AS voided, sum(l.units) AS units, sum(o.total) AS total
FROM pos_orders o
LEFT JOIN LATERAL (
    SELECT sum(ol.quantity) AS units FROM pos_order_lines ol WHERE ol.store_id = o.store_id AND ol.order_id = o.id
) l ON true
GROUP BY o.store_id, date_trunc('hour', o.created_at);

-- fefo_rank is the order in which a sale line without a batch takes stock (pos_sale_allocate); held
-- batches keep their place but are not sellable.
CREATE VIEW stock_by_batch AS
SELECT store_id, sku, batch_lot, status,
       row_number() OVER (PARTITION BY store_id, sku
                          ORDER BY batch_lot IS NOT NULL, packaged_on_date NULLS FIRST, id) AS fefo_rank,
       status = 'active' AS sellable, packaged_on_date, current_date - packaged_on_date AS age_days,
       quantity_on_hand, quantity_available, quantity_quarantined, last_sold, id AS inventory_id
FROM ocs_inventory;

-- Per store, sku and month, every movement signed (in > 0, out < 0), so opening + received + sold +
-- returned + adjusted + destroyed + lost + manual = closing, and each month opens at the last closing.
-- adjusted excludes destruction and loss_theft, which have their own columns; adjusted_by_reason has all.
CREATE VIEW inventory_movements_monthly AS
WITH by_reason AS (
    SELECT store_id, sku, date_trunc('month', created_at)::date AS month, transaction_type, reason_code,
           sum(quantity) AS quantity
    FROM ocs_inventory_transactions
    GROUP BY store_id, sku, date_trunc('month', created_at), transaction_type, reason_code
), monthly AS (
    SELECT store_id, sku, month,
           coalesce(sum(quantity) FILTER (WHERE transaction_type = 'receipt'), 0) AS received,
           coalesce(sum(quantity) FILTER (WHERE transaction_type = 'sale'), 0) AS sold,
           coalesce(sum(quantity) FILTER (WHERE transaction_type IN ('return', 'void')), 0) AS returned,
           coalesce(sum(quantity) FILTER (WHERE transaction_type = 'adjustment'
                                          AND reason_code NOT IN ('destruction', 'loss_theft')), 0) AS adjusted,
           coalesce(sum(quantity) FILTER (WHERE reason_code = 'destruction'), 0) AS destroyed,
           coalesce(sum(quantity) FILTER (WHERE reason_code = 'loss_theft'), 0) AS lost,
           coalesce(sum(quantity) FILTER (WHERE transaction_type IN ('opening', 'manual_adjustment')), 0) AS manual,
           coalesce(jsonb_object_agg(reason_code, quantity) FILTER (WHERE reason_code IS NOT NULL), '{}')
               AS adjusted_by_reason,
           sum(quantity) AS net
    FROM by_reason
    GROUP BY store_id, sku, month
)
SELECT store_id, sku, month,
       sum(net) OVER w - net AS opening, received, sold, returned, adjusted, destroyed, lost, manual,
       sum(net) OVER w AS closing, adjusted_by_reason
FROM monthly
WINDOW w AS (PARTITION BY store_id, sku ORDER BY month);

-- A 24-hour recall report: per store and lot, where the lot is, how much was sold and came back.
CREATE VIEW recall_report AS
SELECT i.store_id, s.name AS store_name, i.sku, i.batch_lot, i.status, h.status_changed_at,
       i.quantity_on_hand, i.quantity_quarantined,
       coalesce(l.received, 0) AS received, coalesce(l.sold, 0) AS sold, coalesce(l.returned, 0) AS returned,
       l.first_sold, i.last_sold
FROM ocs_inventory i
JOIN stores s ON s.id = i.store_id
LEFT JOIN LATERAL (
    SELECT sum(t.quantity) FILTER (WHERE t.transaction_type IN ('receipt', 'opening')) AS received,
           -sum(t.quantity) FILTER (WHERE t.transaction_type = 'sale') AS sold,
           sum(t.quantity) FILTER (WHERE t.transaction_type IN ('return', 'void')) AS returned,
           min(t.created_at) FILTER (WHERE t.transaction_type = 'sale') AS first_sold
    FROM ocs_inventory_transactions t
    WHERE t.store_id = i.store_id AND t.inventory_id = i.id
) l ON true
LEFT JOIN LATERAL (
    SELECT max(c.created_at) AS status_changed_at
    FROM batch_status_changes c WHERE c.store_id = i.store_id AND c.inventory_id = i.id
) h ON true;

-- Shipment lines whose received quantity differs from what OCS shipped.
CREATE VIEW receiving_variances AS
SELECT sh.store_id, sh.ocs_shipment_id, sh.created_at AS received_at, sl.line_no, sl.sku, sl.batch_lot,
       sl.quantity_shipped, sl.quantity_received, sl.quantity_received - sl.quantity_shipped AS variance
FROM ocs_shipment_lines sl
JOIN ocs_shipments sh ON sh.store_id = sl.store_id AND sh.id = sl.shipment_id
WHERE sl.quantity_received <> sl.quantity_shipped;
