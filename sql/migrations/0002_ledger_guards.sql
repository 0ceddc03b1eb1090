-- The ledger invariant, whatever path stock takes: for every ocs_inventory row, quantity_on_hand equals
-- the sum of its ledger quantities. Every change of quantity_on_hand - a sale, a DBA's bare INSERT as in
-- the old fix plan's tests, a manual UPDATE - is ledgered here, by the database, once per changed row,
-- so no writer can forget it. Our functions describe their movement (type, reference, notes, actor) in
-- the transaction-local setting posledger.movement before they write; a write without one is an
-- 'opening' balance (INSERT) or a 'manual_adjustment' (UPDATE) by the database role that made it.

CREATE FUNCTION ocs_inventory_write_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_movement jsonb := nullif(current_setting('posledger.movement', true), '')::jsonb;
BEGIN
    INSERT INTO public.ocs_inventory_transactions
        (store_id, inventory_id, sku, batch_lot, transaction_type, quantity, quantity_after,
         reference_type, reference_id, notes, actor)
    VALUES (NEW.store_id, NEW.id, NEW.sku, NEW.batch_lot,
            coalesce(v_movement->>'type', CASE TG_OP WHEN 'INSERT' THEN 'opening' ELSE 'manual_adjustment' END),
            NEW.quantity_on_hand - coalesce(OLD.quantity_on_hand, 0), NEW.quantity_on_hand,
            v_movement->>'reference_type', (v_movement->>'reference_id')::uuid, v_movement->>'notes',
            coalesce(v_movement->>'actor', session_user));
    RETURN NULL;
END $$;

CREATE TRIGGER ocs_inventory_ledger_opening
    AFTER INSERT ON ocs_inventory
    FOR EACH ROW WHEN (NEW.quantity_on_hand <> 0)
    EXECUTE FUNCTION ocs_inventory_write_ledger();

CREATE TRIGGER ocs_inventory_ledger_change
    AFTER UPDATE OF quantity_on_hand ON ocs_inventory
    FOR EACH ROW WHEN (OLD.quantity_on_hand IS DISTINCT FROM NEW.quantity_on_hand)
    EXECUTE FUNCTION ocs_inventory_write_ledger();

-- A regulator accepts a ledger only if its past cannot be rewritten: corrections are new rows.
CREATE FUNCTION refuse_ledger_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'IV403',
        MESSAGE = format('%s is append-only: %s is refused', TG_TABLE_NAME, TG_OP),
        DETAIL = jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP)::text,
        HINT = 'Record a correcting movement instead of editing the ledger.';
END $$;

CREATE TRIGGER ocs_inventory_transactions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ocs_inventory_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_rewrite();

CREATE TRIGGER loyalty_transactions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON loyalty_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_rewrite();
