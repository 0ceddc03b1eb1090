-- What newcomers to the DBA views hit (issue 14): the recall report listed every lot, active ones too,
-- without the recall's reference or reason; the monthly movements took their closing from the ledger
-- alone, so a stock row changed behind the ledger's back did not show. Columns are only added at the
-- end, so queries written against 0006's views keep working.

-- The lots that are held, or were: per store and lot, where the lot is, how much was sold and came back,
-- and the latest status change's reference and reason (a recall's notice, a lab's release).
CREATE OR REPLACE VIEW recall_report AS
SELECT i.store_id, s.name AS store_name, i.sku, i.batch_lot, i.status, h.created_at AS status_changed_at,
       i.quantity_on_hand, i.quantity_quarantined,
       coalesce(l.received, 0) AS received, coalesce(l.sold, 0) AS sold, coalesce(l.returned, 0) AS returned,
       l.first_sold, i.last_sold, h.reference, h.reason
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
    SELECT c.created_at, c.reference, c.reason
    FROM batch_status_changes c WHERE c.store_id = i.store_id AND c.inventory_id = i.id
    ORDER BY c.id DESC LIMIT 1
) h ON true
WHERE i.status <> 'active' OR h.created_at IS NOT NULL;

-- The monthly movements as in 0006, and on the sku's latest month the units on hand now beside the
-- ledger's closing: they differ when stock was changed behind the ledger's back
-- (inventory_discrepancies names the rows; docs/runbook.md).
CREATE OR REPLACE VIEW inventory_movements_monthly AS
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
SELECT m.store_id, m.sku, m.month,
       sum(m.net) OVER w - m.net AS opening, m.received, m.sold, m.returned, m.adjusted, m.destroyed, m.lost,
       m.manual, sum(m.net) OVER w AS closing, m.adjusted_by_reason,
       CASE WHEN m.month = max(m.month) OVER (PARTITION BY m.store_id, m.sku)
            THEN (SELECT sum(i.quantity_on_hand) FROM ocs_inventory i WHERE i.store_id = m.store_id AND i.sku = m.sku)
       END AS on_hand_now
FROM monthly m
WINDOW w AS (PARTITION BY m.store_id, m.sku ORDER BY m.month);

COMMENT ON VIEW recall_report IS 'The lots that are held or ever were, per store: where the lot is, how much was received, sold and came back, and the latest status change''s reference and reason.';
COMMENT ON VIEW inventory_movements_monthly IS 'Per store, sku and month: opening, every kind of movement signed, and closing; on the latest month, on_hand_now beside the closing shows stock changed behind the ledger''s back.';
