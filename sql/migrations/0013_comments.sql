-- What every table, view and important column is, where a DBA reads it: \d+ and \dv+ in psql, and the
-- schema snapshot (sql/schema.sql). The entry functions' comments live beside their bodies in
-- sql/functions. Writers go through the functions; everything here may be read.

COMMENT ON TABLE stores IS 'One row per store. Created by the back office; posledger reads it.';
COMMENT ON COLUMN stores.loyalty_points_per_unit IS 'Loyalty points per whole currency unit of a sale''s total (a store may run a promotion rate).';
COMMENT ON COLUMN stores.max_sale_lines IS 'The most lines one sale may have at this store (1 to 10000; IV400 beyond).';

COMMENT ON TABLE ocs_inventory IS 'Stock per store, sku and batch lot: one row each, at most one unbatched (legacy) row per store and sku. Written only by the entry functions; every change of quantity_on_hand is ledgered by a trigger.';
COMMENT ON COLUMN ocs_inventory.batch_lot IS 'The lot; NULL is legacy unbatched stock. Never changes (IV403), nor do id, store_id and sku.';
COMMENT ON COLUMN ocs_inventory.quantity_on_hand IS 'Units physically in the store, quarantined ones included. Equals the sum of the row''s ledger quantities.';
COMMENT ON COLUMN ocs_inventory.quantity_available IS 'Units a sale may take: 0 while the batch is held; on hand less quarantined units otherwise.';
COMMENT ON COLUMN ocs_inventory.quantity_quarantined IS 'Units on hand that may never be sold (defective returns) until destroyed or sent back.';
COMMENT ON COLUMN ocs_inventory.status IS 'active (sellable), quarantined, recalled or awaiting_destruction (held: nothing available).';

COMMENT ON TABLE ocs_inventory_transactions IS 'The stock ledger: one row per change of a stock row''s quantity_on_hand, written by the stock trigger. Append-only (IV403), and each row sealed into its stock row''s hash chain: verify_ledger() checks it.';
COMMENT ON COLUMN ocs_inventory_transactions.transaction_type IS 'sale, receipt, return, void, adjustment (with reason_code), opening (a bare INSERT) or manual_adjustment (a bare UPDATE).';
COMMENT ON COLUMN ocs_inventory_transactions.quantity IS 'Signed: negative takes stock out.';
COMMENT ON COLUMN ocs_inventory_transactions.quantity_after IS 'The stock row''s quantity_on_hand after this movement: a running balance.';
COMMENT ON COLUMN ocs_inventory_transactions.reference_id IS 'The order, shipment or adjustment the movement belongs to (reference_type says which).';
COMMENT ON COLUMN ocs_inventory_transactions.actor IS 'The person, as the caller names them; db_user is the database role.';
COMMENT ON COLUMN ocs_inventory_transactions.origin IS 'posledger (the stock trigger wrote it), direct (an INSERT into the ledger itself: review it) or migrated (sealed by migration 0011).';
COMMENT ON COLUMN ocs_inventory_transactions.prev_hash IS 'row_hash of the row before it in its stock row''s chain; NULL for the first.';
COMMENT ON COLUMN ocs_inventory_transactions.row_hash IS 'sha256 over the row and prev_hash (ocs_ledger_hash()), computed as the row is written.';

COMMENT ON TABLE pos_orders IS 'One row per sale (receipt), with the payload as sent and the result a replay returns.';
COMMENT ON COLUMN pos_orders.receipt_number IS 'The idempotency key of the sale, per store.';
COMMENT ON COLUMN pos_orders.status IS 'completed, or voided by return_pos_sale.';
COMMENT ON COLUMN pos_orders.policy IS 'strict (refuse short lines) or lenient (record them as inventory_exceptions; authorized_by says who allowed it).';
COMMENT ON TABLE pos_order_lines IS 'One row per sale line and batch its units came from; inventory_id NULL marks units a lenient sale sold without stock.';
COMMENT ON TABLE inventory_exceptions IS 'Units lenient sales sold that the books did not have: open until a count settles them.';
COMMENT ON TABLE profiles IS 'Loyalty customers and their balance; the balance equals the sum of their loyalty_transactions.';
COMMENT ON TABLE loyalty_transactions IS 'The loyalty ledger: earn, reversal (by a return) and redemption. Append-only (IV403).';

COMMENT ON TABLE adjustment_reasons IS 'The reason codes Ontario retailers report adjustments under.';
COMMENT ON TABLE ocs_shipments IS 'One row per OCS shipment received into a store, with the payload and the result a replay returns.';
COMMENT ON TABLE ocs_shipment_lines IS 'Each shipment line as shipped and as received.';
COMMENT ON TABLE pos_returns IS 'Returns and voids of orders; reference is the idempotency key per store.';
COMMENT ON TABLE pos_return_lines IS 'What each return gave back, per order line row (line and batch).';
COMMENT ON TABLE inventory_adjustments IS 'The header of an adjustment or a count; its lines are the ledger rows that reference it.';
COMMENT ON TABLE batch_status_requests IS 'Each hold, recall or release as asked, keyed by its reference (a recall spans stores).';
COMMENT ON TABLE batch_status_changes IS 'Each status change of a stock row, with who and why. Append-only (IV403).';
COMMENT ON TABLE batch_lot_holds IS 'The holds in force, per lot (and optionally sku and store): stock of a held lot received later arrives held.';

COMMENT ON VIEW inventory_discrepancies IS 'Stock rows whose on hand differs from their ledger (its sum or its last running balance). Empty on a healthy database; docs/runbook.md says what to do.';
COMMENT ON VIEW negative_inventory IS 'Stock rows breaking what the CHECK constraints guarantee (after a restore or an import that disabled them). Empty on a healthy database.';
COMMENT ON VIEW sales_per_hour IS 'Orders (and how many were voided), units and totals per store and hour (the session''s TimeZone).';
COMMENT ON VIEW stock_by_batch IS 'Each store''s batches in the order a sale line without a batch takes them (fefo_rank).';
COMMENT ON VIEW inventory_movements_monthly IS 'Per store, sku and month: opening, every kind of movement signed, and closing.';
COMMENT ON VIEW recall_report IS 'Per store and lot: where the lot is, how much was received, sold and came back.';
COMMENT ON VIEW receiving_variances IS 'Shipment lines whose received quantity differs from what OCS shipped.';
