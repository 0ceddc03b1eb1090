-- transactional: false
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction
-- Validates 0020's NOT VALID constraints and builds its indexes on tables that already hold data, each
-- statement in its own transaction, as 0005 does for 0004: VALIDATE lets sales go on, CONCURRENTLY
-- builds without blocking writes. Safe to run again if cut short.

ALTER TABLE stores VALIDATE CONSTRAINT stores_reservation_minutes_bounded;
ALTER TABLE stores VALIDATE CONSTRAINT stores_parked_cart_minutes_bounded;
ALTER TABLE ocs_inventory VALIDATE CONSTRAINT ocs_inventory_reserved_within_on_hand;
ALTER TABLE pos_orders VALIDATE CONSTRAINT pos_orders_status_known;
ALTER TABLE pos_orders VALIDATE CONSTRAINT pos_orders_policy_check;
ALTER TABLE pos_orders VALIDATE CONSTRAINT pos_orders_lenient_authorized;
ALTER TABLE pos_orders VALIDATE CONSTRAINT pos_orders_offline_from_a_till;
ALTER TABLE pos_orders VALIDATE CONSTRAINT pos_orders_reservation_expires;
ALTER TABLE inventory_exceptions VALIDATE CONSTRAINT inventory_exceptions_resolution_recorded;
ALTER TABLE inventory_exceptions VALIDATE CONSTRAINT inventory_exceptions_kind_known;
ALTER TABLE inventory_exceptions VALIDATE CONSTRAINT inventory_exceptions_shortfall_names_units;

-- One sale per till and sequence number: a till that sends its queue twice is told which sale it was.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS pos_orders_terminal_sequence_once
    ON pos_orders (store_id, terminal_id, terminal_sequence) WHERE terminal_sequence IS NOT NULL;
-- What release_expired_reservations reads: a store's open reservations by their end.
CREATE INDEX CONCURRENTLY IF NOT EXISTS pos_orders_open_reservations
    ON pos_orders (store_id, expires_at) WHERE status IN ('reserved', 'parked');
CREATE INDEX CONCURRENTLY IF NOT EXISTS inventory_exceptions_open_by_age
    ON inventory_exceptions (store_id, created_at) WHERE status = 'open';
