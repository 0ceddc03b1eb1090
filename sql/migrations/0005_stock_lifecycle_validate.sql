-- transactional: false
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction
-- Validates 0004's NOT VALID constraints and builds the indexes of tables that already hold data, each
-- statement in its own transaction (the directive above; yoyo runs no transaction around this file):
-- VALIDATE takes a lock that lets sales go on, and CONCURRENTLY builds an index without blocking writes.
-- Every statement is safe to run again if a run is cut short (IF NOT EXISTS; VALIDATE is idempotent).

ALTER TABLE ocs_inventory VALIDATE CONSTRAINT ocs_inventory_status_known;
ALTER TABLE ocs_inventory VALIDATE CONSTRAINT ocs_inventory_quarantine_within_on_hand;
ALTER TABLE ocs_inventory VALIDATE CONSTRAINT ocs_inventory_held_batch_not_available;
ALTER TABLE ocs_inventory_transactions VALIDATE CONSTRAINT ocs_inventory_transactions_type_known;
ALTER TABLE ocs_inventory_transactions VALIDATE CONSTRAINT ocs_inventory_transactions_adjustment_has_reason;
ALTER TABLE pos_orders VALIDATE CONSTRAINT pos_orders_status_known;
ALTER TABLE loyalty_transactions VALIDATE CONSTRAINT loyalty_transactions_type_known;
ALTER TABLE loyalty_transactions VALIDATE CONSTRAINT loyalty_transactions_return_fk;
ALTER TABLE inventory_exceptions VALIDATE CONSTRAINT inventory_exceptions_resolved_by_fk;
ALTER TABLE inventory_exceptions VALIDATE CONSTRAINT inventory_exceptions_resolution_recorded;
ALTER TABLE ocs_inventory_transactions VALIDATE CONSTRAINT ocs_inventory_transactions_reason_fk;

CREATE INDEX CONCURRENTLY IF NOT EXISTS loyalty_transactions_by_order ON loyalty_transactions (store_id, order_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS inventory_exceptions_open ON inventory_exceptions (store_id, sku) WHERE status = 'open';
