-- A fresh demo store with stock, one statement so the demo can run again and again side by side.
-- The bare INSERT into ocs_inventory is ledgered as 'opening' rows by the ledger trigger.
WITH store AS (
    INSERT INTO stores (name) VALUES ('posledger demo store') RETURNING id
), stock AS (
    INSERT INTO ocs_inventory (store_id, sku, batch_lot, packaged_on_date, quantity_on_hand, quantity_available)
    SELECT store.id, v.sku, v.batch_lot, v.packaged_on_date::date, v.quantity, v.quantity
    FROM store, (VALUES
        ('OCS-PREROLL-1G', 'LOT-2025-09-A', '2025-09-01', 5),
        ('OCS-PREROLL-1G', 'LOT-2025-10-B', '2025-10-15', 10),
        ('OCS-GUMMIES-10', NULL, NULL, 20)
    ) AS v(sku, batch_lot, packaged_on_date, quantity)
)
SELECT id FROM store;
