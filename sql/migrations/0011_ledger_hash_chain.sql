-- A ledger whose history cannot be rewritten unseen (issue 13). No database can stop its owner from
-- disabling a trigger or rewriting a column; it can make that evident. Each stock ledger row carries the
-- hash of its content and of the row before it in its chain, computed as the row is written. There is
-- one chain per stock row: every writer of a stock row already holds that row's lock, so the chain adds
-- no contention (one chain per store would queue every sale of a store on its head). verify_ledger()
-- names the first broken link of each chain; ledger_digest() gives per store a digest of its chains'
-- heads to keep outside the database, so a rewrite that also recomputes the hashes is evident too.
-- 0009 is the other migration of issue 13; 0010 revokes TEMP.

ALTER TABLE ocs_inventory_transactions
    -- 'posledger': written by the stock trigger, for our functions or a bare INSERT/UPDATE of stock;
    -- 'direct': an INSERT into the ledger itself (the runbook's correction, or a forgery): flagged;
    -- 'migrated': written before this migration, sealed by it.
    ADD COLUMN origin text,
    ADD COLUMN prev_hash bytea,   -- row_hash of the row before it in its chain; NULL for the first
    ADD COLUMN row_hash bytea;

-- The hash of a ledger row: every column but id (the chain orders the rows) and row_hash, with the hash
-- of the row before it, as the text of one row value (unambiguous: NULL and '' differ, separators in a
-- value are quoted). prev_hash is hex and the time epoch microseconds, so the text depends on no
-- session setting (bytea_output, TimeZone). LANGUAGE sql, STABLE and without a SET clause, so PostgreSQL
-- inlines it into the expression that calls it (docs/benchmarks.md, "The ledger's hash chain"). A column
-- added to the ledger later is not covered until a new version of this function says how old rows hash.
CREATE FUNCTION ocs_ledger_hash(p_row ocs_inventory_transactions) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(ROW(
        encode(p_row.prev_hash, 'hex'), p_row.store_id, p_row.inventory_id, p_row.sku, p_row.batch_lot,
        p_row.transaction_type, p_row.reason_code, p_row.quantity, p_row.quantity_after, p_row.reference_type,
        p_row.reference_id, p_row.notes, p_row.actor, p_row.db_user,
        (EXTRACT(epoch FROM p_row.created_at) * 1000000)::bigint, p_row.origin)::text, 'UTF8'))
$$;

-- Seals a ledger row as it is written. The stock trigger writes it at trigger depth 2, holding the stock
-- row's lock through the UPDATE or INSERT that fired it, so the row before it in the chain is committed
-- (or its own) and visible. A direct INSERT takes that lock first, as every writer of the chain does.
CREATE FUNCTION ocs_ledger_seal() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    NEW.origin := CASE WHEN pg_trigger_depth() > 1 THEN 'posledger' ELSE 'direct' END;
    IF NEW.origin = 'direct' THEN
        PERFORM FROM public.ocs_inventory i WHERE i.store_id = NEW.store_id AND i.id = NEW.inventory_id
        FOR NO KEY UPDATE;
    END IF;
    NEW.prev_hash := (SELECT t.row_hash FROM public.ocs_inventory_transactions t
                      WHERE t.store_id = NEW.store_id AND t.inventory_id = NEW.inventory_id
                      ORDER BY t.id DESC LIMIT 1);
    NEW.row_hash := public.ocs_ledger_hash(NEW);
    RETURN NEW;
END $$;

-- The rows written before this migration, sealed in chain order (the append-only trigger is set aside
-- for it inside this transaction only).
ALTER TABLE ocs_inventory_transactions DISABLE TRIGGER ocs_inventory_transactions_append_only;
DO $$
DECLARE
    v_row  ocs_inventory_transactions;
    v_prev ocs_inventory_transactions;
BEGIN
    FOR v_row IN SELECT * FROM ocs_inventory_transactions ORDER BY store_id, inventory_id, id LOOP
        v_row.origin := 'migrated';
        v_row.prev_hash := CASE WHEN v_prev.inventory_id = v_row.inventory_id THEN v_prev.row_hash END;
        v_row.row_hash := ocs_ledger_hash(v_row);
        UPDATE ocs_inventory_transactions SET origin = v_row.origin, prev_hash = v_row.prev_hash,
                                              row_hash = v_row.row_hash
        WHERE store_id = v_row.store_id AND id = v_row.id;
        v_prev := v_row;
    END LOOP;
END $$;
ALTER TABLE ocs_inventory_transactions ENABLE TRIGGER ocs_inventory_transactions_append_only;

-- Checked at once: the sealing above has just rewritten every row under this transaction's lock anyway.
ALTER TABLE ocs_inventory_transactions
    -- squawk-ignore adding-not-nullable-field
    ALTER COLUMN origin SET NOT NULL,
    -- squawk-ignore adding-not-nullable-field
    ALTER COLUMN row_hash SET NOT NULL,
    -- squawk-ignore constraint-missing-not-valid
    ADD CONSTRAINT ocs_inventory_transactions_origin_known CHECK (origin IN ('posledger', 'direct', 'migrated'));

CREATE TRIGGER ocs_inventory_transactions_seal
    BEFORE INSERT ON ocs_inventory_transactions
    FOR EACH ROW EXECUTE FUNCTION ocs_ledger_seal();

REVOKE ALL ON FUNCTION ocs_ledger_hash(ocs_inventory_transactions) FROM PUBLIC;
