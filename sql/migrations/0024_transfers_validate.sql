-- transactional: false
-- Validates 0024's widened ledger type list outside a transaction, as 0005 does for 0004: VALIDATE scans
-- the ledger with a lock that lets sales go on. Safe to run again if cut short.

ALTER TABLE ocs_inventory_transactions VALIDATE CONSTRAINT ocs_inventory_transactions_type_known;
