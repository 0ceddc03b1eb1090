-- Distribute a migrated posledger database on a Citus coordinator (docs/scaling.md shows this file).
-- Run by `posledger distribute`, which runs `posledger migrate` again afterwards. Idempotent: a table
-- or function that is distributed already is left as it is.

-- The ledger is written by triggers on ocs_inventory; Citus runs triggers on shards only with this on.
-- Safe here: each trigger writes the ledger row of the same store, in the colocated ledger shard. Set
-- for the database, so every session and every worker's connection has it.
DO $$ BEGIN
    EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers = on', current_database());
END $$;
SET citus.enable_unsafe_triggers = on;
-- Otherwise the first reference table turns every table with a foreign key to it into a Citus local
-- table, which cannot be distributed afterwards (its identity column).
SET citus.enable_local_reference_table_foreign_keys = off;

-- Reference tables first (a copy on every node): the distributed tables' foreign keys point at them.
SELECT create_reference_table(t)
FROM unnest(ARRAY['stores', 'adjustment_reasons', 'batch_status_requests', 'batch_lot_holds', 'product_classes',
                  'dried_equivalency_factors', 'catalogue_categories', 'products', 'product_gtins',
                  'ocs_event_types'])
     WITH ORDINALITY AS r(t, n)
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = t::regclass)
ORDER BY n;

-- Then every store-scoped table by store_id, colocated with ocs_inventory, in foreign-key order (a
-- table after every table it points at).
SELECT create_distributed_table(t, 'store_id', colocate_with => CASE WHEN n = 1 THEN 'none' ELSE 'ocs_inventory' END)
FROM unnest(ARRAY['ocs_inventory', 'ocs_inventory_transactions', 'pos_orders', 'pos_order_lines',
                  'inventory_adjustments', 'inventory_exceptions', 'pos_returns', 'pos_return_lines',
                  'loyalty_accounts', 'loyalty_transactions', 'ocs_shipments', 'ocs_shipment_lines',
                  'batch_status_changes', 'reservation_holds', 'ocs_outbox', 'ocs_deliveries', 'transfers',
                  'transfer_receipts', 'ocs_resends'])
     WITH ORDINALITY AS d(t, n)
WHERE NOT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = t::regclass)
ORDER BY n;

-- Each store-scoped call is delegated to the worker that holds its store: Citus routes a call by a
-- parameter of the function, never by a field inside its jsonb, hence the two-argument forms. Not
-- receive_inventory: a receipt takes turns with a recall of its lot on an advisory lock, which holds on
-- one node only, and a recall runs on the coordinator; so a receipt runs there too (docs/scaling.md).
-- Nor transfer_in, below.
SELECT create_distributed_function((f || '(uuid, jsonb)')::regprocedure, 'p_store_id',
                                   colocate_with => 'ocs_inventory')
FROM unnest(ARRAY['record_pos_sale', 'return_pos_sale', 'adjust_inventory', 'count_inventory',
                  'complete_reservation', 'cancel_reservation', 'resolve_inventory_exception',
                  'transfer_out', 'cancel_transfer']) AS f;

-- A transfer's receipt reads and marks the sender's transfer, on another store's shard, which a call
-- delegated to one worker cannot reach; it also takes its lots' advisory locks, as receive_inventory does.
-- So it runs on the coordinator: distributed with no argument, not delegated (and no longer delegated on a
-- cluster distributed before this line existed).
SELECT create_distributed_function((f || '(uuid, jsonb)')::regprocedure)
FROM unnest(ARRAY['transfer_in']) AS f;

-- The scheduler's call is per store too (release_expired_reservations.sql).
SELECT create_distributed_function('release_expired_reservations(uuid, integer)'::regprocedure, 'p_store_id',
                                   colocate_with => 'ocs_inventory');
