-- cancel_transfer(jsonb) returns jsonb: a transfer still in transit is called off at the sending store,
-- and its units come back to the batches they left (docs/transfers.md). Writes the sender's rows only.

CREATE OR REPLACE FUNCTION cancel_transfer(p_cancel jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.transfer_cancel_record(p_cancel);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION cancel_transfer(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cancel_transfer(jsonb) TO posledger_app;
COMMENT ON FUNCTION cancel_transfer(jsonb) IS 'A transfer in transit is called off at the sending store: its units come back to their batches. Refused once received. Idempotent.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same call as the one-argument form.
CREATE OR REPLACE FUNCTION cancel_transfer(p_store_id uuid, p_cancel jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_cancel) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.transfer_problems(p_cancel, 'cancel'), 'transfer');
    END IF;
    RETURN public.cancel_transfer(p_cancel);
END $$;

REVOKE ALL ON FUNCTION cancel_transfer(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cancel_transfer(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION cancel_transfer(uuid, jsonb) IS 'cancel_transfer routed by its (sending) store (the form Citus distributes).';

-- The transfer is locked first (a second cancel, a receipt of it, wait), then its stock rows in id order.
-- A cancel already made is replayed (the same payload) or refused (IV412, another); a transfer the
-- receiver recorded (received_at, set by transfer_in under the same row lock) is refused (IV400): its
-- units are on the receiver's shelf.
CREATE OR REPLACE FUNCTION posledger_private.transfer_cancel_record(p_cancel jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid;
    v_header   public.transfers;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.transfer_problems(p_cancel, 'cancel'), 'transfer');
    v_store_id := (p_cancel->>'store_id')::uuid;
    SELECT * INTO v_header FROM public.transfers
    WHERE store_id = v_store_id AND reference = p_cancel->>'reference' FOR NO KEY UPDATE;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_header.id IS NULL
        THEN jsonb_build_array(jsonb_build_object('store_id', v_store_id, 'transfer', p_cancel->>'reference'))
        ELSE '[]' END, 'Cancel a transfer this store sent, by its reference.');
    IF v_header.status = 'cancelled' THEN
        PERFORM posledger_private.refuse_other_payload(v_header.cancel_payload, p_cancel, jsonb_build_object(
            'store_id', v_store_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header.cancel_result || '{"replayed": true}';
    END IF;
    PERFORM posledger_private.refuse_problems(CASE WHEN v_header.received_at IS NOT NULL
        THEN jsonb_build_array(jsonb_build_object('field', 'reference', 'problem', format(
            'names a transfer %s has received: its units are there; send them back by a transfer', v_header.to_crsa)))
        ELSE '[]' END, 'transfer');
    RETURN posledger_private.transfer_cancel_complete(v_header, p_cancel);
END $$;

-- The sender's writes: each line's units back on its batch (available again if the batch is active, as
-- a receipt's; a batch held since stays held).
CREATE OR REPLACE FUNCTION posledger_private.transfer_cancel_complete(p_header public.transfers, p_cancel jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_movement jsonb;
    v_skus     text[];
    v_lots     text[];
    v_units    integer[];
    v_lines    jsonb;
    v_result   jsonb;
    v_at       timestamptz := now();
BEGIN
    SELECT array_agg(l.sku), array_agg(l.batch_lot), array_agg(l.quantity) INTO v_skus, v_lots, v_units
    FROM posledger_private.transfer_lines(p_header.payload) l;
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = v_store_id AND i.sku = ANY (v_skus) AND i.batch_lot = ANY (v_lots)
    ORDER BY i.id FOR NO KEY UPDATE;
    -- The ledger trigger labels its rows with this; notes is the CRSA the units were bound for.
    v_movement := jsonb_build_object('type', 'transfer_cancel', 'reference_type', 'store_transfer',
                                     'reference_id', p_header.id, 'notes', p_header.to_crsa,
                                     'actor', p_cancel->>'actor');
    WITH moved AS (
        UPDATE public.ocs_inventory i
        SET quantity_on_hand = i.quantity_on_hand + l.quantity,
            quantity_available = i.quantity_available + CASE WHEN i.status = 'active' THEN l.quantity ELSE 0 END,
            updated_at = now(),
            movement = v_movement
        FROM unnest(v_skus, v_lots, v_units) AS l(sku, batch_lot, quantity)
        WHERE i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot
        RETURNING i.id, i.sku, i.batch_lot, l.quantity
    )
    SELECT jsonb_agg(jsonb_build_object('sku', sku, 'batch_lot', batch_lot, 'quantity', quantity) ORDER BY id)
    INTO v_lines FROM moved;
    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'reference', p_header.reference, 'to_store_id', p_header.to_store_id,
        'to_crsa', p_header.to_crsa, 'status', 'cancelled', 'timestamp', v_at, 'replayed', false, 'lines', v_lines);
    UPDATE public.transfers
    SET status = 'cancelled', cancelled_at = v_at, cancel_payload = p_cancel, cancel_result = v_result
    WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;
