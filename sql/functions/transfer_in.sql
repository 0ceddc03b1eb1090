-- transfer_in(jsonb) returns jsonb: a transfer arrives at the receiving store, which records per line the
-- units sent and the units received (the variance, more or less than sent, is theirs to explain). Writes
-- the receiver's rows - its transfer_receipts row, its stock (a batch new to it is created) and their
-- ledger - and marks the sender's transfer received (docs/transfers.md).

CREATE OR REPLACE FUNCTION transfer_in(p_receipt jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.transfer_in_record(p_receipt);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION transfer_in(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION transfer_in(jsonb) TO posledger_app;
COMMENT ON FUNCTION transfer_in(jsonb) IS 'A transfer from another store of the retailer arrives: per line the units sent and received, the variance recorded. Idempotent by store, sending store and reference.';

-- The entry routed by its store, as the shell calls it (routed in _shared.sql). On one server it is the
-- same call as the one-argument form; Citus does not delegate it (it reaches the sender's shard too) but
-- runs it on the coordinator (sql/citus/distribute.sql).
CREATE OR REPLACE FUNCTION transfer_in(p_store_id uuid, p_receipt jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_receipt) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.transfer_problems(p_receipt, 'in'), 'transfer');
    END IF;
    RETURN public.transfer_in(p_receipt);
END $$;

REVOKE ALL ON FUNCTION transfer_in(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION transfer_in(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION transfer_in(uuid, jsonb) IS 'transfer_in routed by its (receiving) store; on Citus it runs on the coordinator, not delegated.';

CREATE OR REPLACE FUNCTION posledger_private.transfer_in_record(p_receipt jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid;
    v_from_id  uuid;
    v_parties  record;
    v_header   public.transfer_receipts;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.transfer_problems(p_receipt, 'in'), 'transfer');
    v_store_id := (p_receipt->>'store_id')::uuid;
    v_from_id := (p_receipt->>'from_store_id')::uuid;
    v_parties := posledger_private.transfer_parties(v_store_id, v_from_id, 'from_store_id');

    INSERT INTO public.transfer_receipts (store_id, reference, from_store_id, from_crsa, actor, payload)
    VALUES (v_store_id, p_receipt->>'reference', v_from_id, v_parties.other_crsa, p_receipt->>'actor', p_receipt)
    ON CONFLICT ON CONSTRAINT transfer_receipts_once DO NOTHING
    RETURNING * INTO v_header;
    IF NOT FOUND THEN
        SELECT * INTO v_header FROM public.transfer_receipts
        WHERE store_id = v_store_id AND from_store_id = v_from_id AND reference = p_receipt->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_header.payload, p_receipt, jsonb_build_object(
            'store_id', v_store_id, 'from_store_id', v_from_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header.result || '{"replayed": true}';
    END IF;
    -- The lots first (a status change of one takes turns with its arrivals: lock_lots), then the sender's
    -- transfer, then existing rows in id order (stock_batches).
    PERFORM posledger_private.lock_lots(ARRAY(SELECT l.batch_lot FROM posledger_private.transfer_lines(p_receipt) l), false);
    RETURN posledger_private.transfer_in_complete(v_header, v_parties.own_crsa, posledger_private.transfer_in_sent(v_header));
END $$;

-- The sender's side: a transfer it never sent to this store (IV404) or has cancelled (IV400) is refused;
-- else it is marked received, so a cancel of it is refused from now on (cancel_transfer). The sender's one
-- row decides: locked here, and by a cancel, the two take turns and the second sees the first. Returns the
-- lines sent, with what the sender knows of each batch (transfer_out's result). On Citus this runs on the
-- coordinator, which reaches both stores' shards (docs/transfers.md).
CREATE OR REPLACE FUNCTION posledger_private.transfer_in_sent(p_header public.transfer_receipts) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_from_id uuid := p_header.from_store_id;   -- a plain variable: Citus prunes shards by a scalar only
    v_at      timestamptz := p_header.created_at;   -- a value: Citus refuses now() beside a column in an UPDATE
    v_sent    public.transfers;
BEGIN
    SELECT * INTO v_sent FROM public.transfers t
    WHERE t.store_id = v_from_id AND t.reference = p_header.reference AND t.to_store_id = p_header.store_id
    FOR NO KEY UPDATE;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_sent.id IS NULL
        THEN jsonb_build_array(jsonb_build_object('transfer', p_header.reference, 'from_store_id', v_from_id))
        ELSE '[]' END, 'Receive a transfer the sending store sent to this store, by its reference.');
    PERFORM posledger_private.refuse_problems(CASE WHEN v_sent.status = 'cancelled'
        THEN '[{"field": "reference", "problem": "names a transfer the sending store cancelled: its units are back there"}]'::jsonb
        ELSE '[]' END, 'transfer');
    UPDATE public.transfers SET received_at = v_at WHERE store_id = v_from_id AND id = v_sent.id;
    RETURN v_sent.result->'lines';
END $$;

-- The receiver's writes: the units received arrive as the sending batch (stock_batches: created, or
-- added to; a lot held here arrives held, as in a receipt), carrying what the sender knows of it
-- (p_sent: its GTINs, dates and unit cost; the receiver's expiry_date where the sender had none). A line
-- received at 0 moves nothing and leaves no ledger row; its variance is recorded. Each line of the
-- result says how its batch stands here (status, and held_by when a hold kept it from sale).
CREATE OR REPLACE FUNCTION posledger_private.transfer_in_complete(p_header public.transfer_receipts, p_own_crsa text,
                                                                  p_sent jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_batches  jsonb;
    v_stocked  jsonb;
    v_lines    jsonb;
    v_result   jsonb;
BEGIN
    SELECT jsonb_agg(coalesce(s.line, '{}') - 'quantity' || jsonb_build_object(
               'sku', l.sku, 'batch_lot', l.batch_lot, 'units', l.quantity,
               'expiry_date', coalesce((s.line->>'expiry_date')::date, l.expiry_date)))
    INTO v_batches
    FROM posledger_private.transfer_lines(p_header.payload) l
    LEFT JOIN jsonb_array_elements(p_sent) s(line) ON s.line->>'sku' = l.sku AND s.line->>'batch_lot' = l.batch_lot
    WHERE l.quantity > 0;
    -- The ledger trigger labels its rows with this; notes is the sender's CRSA (counterPartyCRSA).
    v_stocked := posledger_private.stock_batches(v_store_id, coalesce(v_batches, '[]'),
        jsonb_build_object('type', 'transfer_in', 'reference_type', 'store_transfer_receipt',
                           'reference_id', p_header.id, 'notes', p_header.from_crsa, 'actor', p_header.actor),
        format('transfer %s from %s', p_header.reference, p_header.from_crsa));

    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'sku', l.sku, 'batch_lot', l.batch_lot, 'sent', l.sent, 'received', l.quantity,
               'variance', l.quantity - l.sent, 'status', s->'status', 'held_by', s->'held_by'))
           ORDER BY l.sku, l.batch_lot)
    INTO v_lines
    FROM posledger_private.transfer_lines(p_header.payload) l
    LEFT JOIN jsonb_array_elements(v_stocked) s ON s->>'sku' = l.sku AND s->>'batch_lot' = l.batch_lot;
    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'crsa', p_own_crsa, 'reference', p_header.reference,
        'from_store_id', p_header.from_store_id, 'from_crsa', p_header.from_crsa, 'timestamp', p_header.created_at,
        'replayed', false, 'balanced', NOT EXISTS (SELECT FROM jsonb_array_elements(v_lines) e
                                                  WHERE (e->>'variance')::integer <> 0),
        'lines', v_lines);
    UPDATE public.transfer_receipts SET result = v_result WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;
