-- transactional: false
-- squawk-ignore-file ban-concurrent-index-creation-in-transaction
-- Every store-scoped table's keys lead with store_id, so the schema can be distributed by store on Citus
-- (docs/scaling.md); the loyalty ledger was keyed by id alone. The new key's index is built without
-- blocking writes, then swapped in as the primary key. Rerunnable after a failure, statement by statement.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS loyalty_transactions_store_key ON loyalty_transactions (store_id, id);

ALTER TABLE loyalty_transactions
    -- squawk-ignore ban-drop-constraint
    DROP CONSTRAINT IF EXISTS loyalty_transactions_pkey,  -- replaced at once by the store-leading key
    ADD CONSTRAINT loyalty_transactions_pkey PRIMARY KEY USING INDEX loyalty_transactions_store_key;
