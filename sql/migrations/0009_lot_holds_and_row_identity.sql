-- A hold follows its lot, and a stock row keeps its identity (issue 13).

-- A stock row's store, sku and lot never change: the ledger, the order lines and a recall name the row by
-- them. A bare UPDATE of one was neither refused nor ledgered: the ledger kept the old names, per-lot
-- totals stopped matching, and a recall of the original lot answered IV404 with its units on the shelf.
-- The column list keeps the trigger off every other UPDATE (a sale's included).
CREATE FUNCTION refuse_identity_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'IV403',
        MESSAGE = format('%s: a stock row''s id, store, sku and batch_lot never change', TG_TABLE_NAME),
        DETAIL = jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP, 'id', OLD.id,
                                    'store_id', OLD.store_id, 'sku', OLD.sku, 'batch_lot', OLD.batch_lot)::text,
        HINT = 'Move the units with adjustments (out of this row, into the right one) instead.';
END $$;

CREATE TRIGGER ocs_inventory_identity_fixed
    BEFORE UPDATE OF id, store_id, sku, batch_lot ON ocs_inventory
    FOR EACH ROW
    WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.store_id IS DISTINCT FROM NEW.store_id
          OR OLD.sku IS DISTINCT FROM NEW.sku OR OLD.batch_lot IS DISTINCT FROM NEW.batch_lot)
    EXECUTE FUNCTION refuse_identity_change();

-- The holds in force, one per scope: a lot, optionally one sku of it, optionally one store. A hold is of
-- the lot wherever and whenever it shows up, so stock of a held lot received later is received held.
-- set_batch_status writes it (a release removes the holds inside its scope); receive_inventory reads it.
-- Not store-scoped when store_id is NULL: like batch_status_requests, a reference table on Citus.
CREATE TABLE batch_lot_holds (
    batch_lot  text NOT NULL CHECK (batch_lot <> ''),
    sku        text,   -- NULL: every sku of the lot
    store_id   uuid,   -- NULL: every store
    status     text NOT NULL CHECK (status IN ('quarantined', 'recalled', 'awaiting_destruction')),
    reference  text NOT NULL REFERENCES batch_status_requests (reference),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT batch_lot_holds_one_per_scope UNIQUE NULLS NOT DISTINCT (batch_lot, sku, store_id)
);

-- The holds of a database that recalled before this migration: its status changes replayed in order.
DO $$
DECLARE
    v_request batch_status_requests;
BEGIN
    FOR v_request IN SELECT * FROM batch_status_requests ORDER BY created_at, reference LOOP
        DELETE FROM batch_lot_holds h
        WHERE h.batch_lot = v_request.payload->>'batch_lot'
          AND (v_request.payload->>'sku' IS NULL OR h.sku = v_request.payload->>'sku')
          AND (v_request.payload->>'store_id' IS NULL OR h.store_id = (v_request.payload->>'store_id')::uuid);
        INSERT INTO batch_lot_holds (batch_lot, sku, store_id, status, reference, created_at)
        SELECT v_request.payload->>'batch_lot', v_request.payload->>'sku', (v_request.payload->>'store_id')::uuid,
               v_request.payload->>'status', v_request.reference, v_request.created_at
        WHERE v_request.payload->>'status' <> 'active';
    END LOOP;
END $$;
