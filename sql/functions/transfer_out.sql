-- transfer_out(jsonb) returns jsonb: units leave a store by batch for another store of the same retailer
-- and are in transit until transfer_in records them there, or cancel_transfer brings them back
-- (docs/transfers.md). Writes the sender's rows only: its transfers row, its stock and their ledger.

CREATE OR REPLACE FUNCTION transfer_out(p_transfer jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.transfer_out_record(p_transfer);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION transfer_out(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION transfer_out(jsonb) TO posledger_app;
COMMENT ON FUNCTION transfer_out(jsonb) IS 'Units leave a store by named batch for another store of its retailer (same CROL), in transit until received or cancelled. Idempotent by store and reference.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same call as the one-argument form.
CREATE OR REPLACE FUNCTION transfer_out(p_store_id uuid, p_transfer jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_transfer) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.transfer_problems(p_transfer, 'out'), 'transfer');
    END IF;
    RETURN public.transfer_out(p_transfer);
END $$;

REVOKE ALL ON FUNCTION transfer_out(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION transfer_out(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION transfer_out(uuid, jsonb) IS 'transfer_out routed by its (sending) store (the form Citus distributes).';

CREATE OR REPLACE FUNCTION posledger_private.transfer_out_record(p_transfer jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid;
    v_parties  record;
    v_header   public.transfers;
    v_missing  jsonb;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.transfer_problems(p_transfer, 'out'), 'transfer');
    v_store_id := (p_transfer->>'store_id')::uuid;
    v_parties := posledger_private.transfer_parties(v_store_id, (p_transfer->>'to_store_id')::uuid, 'to_store_id');
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('sku', l.sku, 'batch', l.batch_lot)), '[]') INTO v_missing
    FROM posledger_private.transfer_lines(p_transfer) l
    WHERE NOT EXISTS (SELECT FROM public.ocs_inventory i
                      WHERE i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot);
    PERFORM posledger_private.refuse_missing(v_missing, 'Transfer only batches this store has stocked.');

    INSERT INTO public.transfers (store_id, reference, to_store_id, to_crsa, actor, payload)
    VALUES (v_store_id, p_transfer->>'reference', (p_transfer->>'to_store_id')::uuid, v_parties.other_crsa,
            p_transfer->>'actor', p_transfer)
    ON CONFLICT ON CONSTRAINT transfers_reference_once DO NOTHING
    RETURNING * INTO v_header;
    IF NOT FOUND THEN
        SELECT * INTO v_header FROM public.transfers WHERE store_id = v_store_id AND reference = p_transfer->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_header.payload, p_transfer, jsonb_build_object(
            'store_id', v_store_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header.result || '{"replayed": true}';
    END IF;
    RETURN posledger_private.transfer_out_complete(v_header, v_parties.own_crsa);
END $$;

-- The sender's writes, under the locks of its rows (id order, as every writer of stock takes them). Only
-- available units leave: not quarantined, not reserved, none of a held batch; IV409 lists every short line.
CREATE OR REPLACE FUNCTION posledger_private.transfer_out_complete(p_header public.transfers, p_own_crsa text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_movement jsonb;
    v_short    jsonb;
    v_lines    jsonb;
    v_result   jsonb;
    v_skus     text[];
    v_lots     text[];
    v_units    integer[];
BEGIN
    -- Arrays, unnested in the statements on stock: Citus routes a statement by its store, and plans
    -- unnest of a variable where it might not a function of a jsonb.
    SELECT array_agg(l.sku), array_agg(l.batch_lot), array_agg(l.quantity) INTO v_skus, v_lots, v_units
    FROM posledger_private.transfer_lines(p_header.payload) l;
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = v_store_id AND i.sku = ANY (v_skus) AND i.batch_lot = ANY (v_lots)
    ORDER BY i.id FOR NO KEY UPDATE;
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', i.sku, 'batch', i.batch_lot, 'requested', l.quantity,
                                                 'available', i.quantity_available) ORDER BY i.id), '[]')
    INTO v_short
    FROM unnest(v_skus, v_lots, v_units) AS l(sku, batch_lot, quantity)
    JOIN public.ocs_inventory i ON i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot
    WHERE i.quantity_available < l.quantity;
    IF v_short <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV409', MESSAGE = 'insufficient stock: the transfer takes more than is available',
            DETAIL = jsonb_build_object('short_lines', v_short)::text,
            HINT = 'Send at most the available units of each batch: quarantined, reserved and held units stay.';
    END IF;

    -- The ledger trigger labels its rows with this (_triggers.sql); notes is the counterpart's CRSA, which
    -- the OCS feed reports as counterPartyCRSA (ocs_report.sql). Built here: Citus refuses a STABLE
    -- function beside a column reference in an UPDATE.
    v_movement := jsonb_build_object('type', 'transfer_out', 'reference_type', 'store_transfer',
                                     'reference_id', p_header.id, 'notes', p_header.to_crsa, 'actor', p_header.actor);
    WITH moved AS (
        UPDATE public.ocs_inventory i
        SET quantity_on_hand = i.quantity_on_hand - l.quantity,
            quantity_available = i.quantity_available - l.quantity,
            updated_at = now(),
            movement = v_movement
        FROM unnest(v_skus, v_lots, v_units) AS l(sku, batch_lot, quantity)
        WHERE i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot
        RETURNING i.id, i.sku, i.batch_lot, l.quantity, i.expiry_date, i.packaged_on_date, i.each_gtin, i.case_gtin,
                  i.unit_cost
    )
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'sku', sku, 'batch_lot', batch_lot, 'quantity', quantity, 'expiry_date', expiry_date,
               'packaged_on_date', packaged_on_date, 'each_gtin', each_gtin, 'case_gtin', case_gtin,
               'unit_cost', unit_cost)) ORDER BY id)
    INTO v_lines FROM moved;

    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'crsa', p_own_crsa, 'reference', p_header.reference,
        'to_store_id', p_header.to_store_id, 'to_crsa', p_header.to_crsa, 'status', 'in_transit',
        'timestamp', p_header.created_at, 'replayed', false, 'lines', v_lines);
    UPDATE public.transfers SET result = v_result WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;
