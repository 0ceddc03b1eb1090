-- complete_reservation(jsonb) returns jsonb: the customer came; the reservation (or parked cart) becomes
-- the sale it promised, from the batches it held: on hand deducted, ledger rows, order lines, loyalty
-- points, in one transaction, idempotent by the receipt number (README, "Reservations").

CREATE OR REPLACE FUNCTION complete_reservation(p_completion jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.reservation_complete(p_completion);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION complete_reservation(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION complete_reservation(jsonb) TO posledger_app;
COMMENT ON FUNCTION complete_reservation(jsonb) IS 'Completes a reservation or parked cart as the sale it promised, from the batches it held; returns the sale''s result. Idempotent by store and receipt_number.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql).
CREATE OR REPLACE FUNCTION complete_reservation(p_store_id uuid, p_completion jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_completion) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.reservation_problems(p_completion, false), 'completion');
    END IF;
    RETURN public.complete_reservation(p_completion);
END $$;

REVOKE ALL ON FUNCTION complete_reservation(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION complete_reservation(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION complete_reservation(uuid, jsonb) IS 'complete_reservation routed by its store (the form Citus distributes).';

-- The order first (a completion takes turns with a cancellation or expiry of it), then the held rows
-- in id order. The sale is judged as it was when reserved (its lines, grams and limits); only what can
-- change since - a batch recalled, quarantined or expired meanwhile - refuses it (IV423), and the
-- reservation stays open for the cashier to cancel (docs/decisions.md, "Promised stock").
CREATE OR REPLACE FUNCTION posledger_private.reservation_complete(p_completion jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_order    public.pos_orders;
    v_store    public.stores;
    v_store_id uuid;   -- a plain variable: Citus prunes shards by a scalar only
    v_blocked  jsonb;
    v_alloc    public.pos_sale_allocation[];
    v_lines    posledger_private.pos_sale_line[];
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.reservation_problems(p_completion, false), 'completion');
    v_order := posledger_private.reservation_locked(p_completion);
    v_store_id := v_order.store_id;
    IF v_order.status = 'completed' AND v_order.payload->>'status' IN ('reserved', 'parked') THEN
        RETURN v_order.result || '{"replayed": true}';
    END IF;
    IF v_order.status NOT IN ('reserved', 'parked') OR v_order.expires_at <= now() THEN
        PERFORM posledger_private.refuse_closed(v_order);
    END IF;
    SELECT * INTO v_store FROM public.stores WHERE id = v_store_id;

    SELECT coalesce(jsonb_agg(DISTINCT jsonb_strip_nulls(jsonb_build_object(
               'sku', i.sku, 'batch', i.batch_lot, 'expiry_date', i.expiry_date,
               'status', CASE WHEN i.status <> 'active' THEN i.status ELSE 'expired' END))), '[]')
    INTO v_blocked
    FROM (SELECT i.* FROM public.ocs_inventory i
          WHERE i.store_id = v_store_id
            AND i.id = ANY (ARRAY(SELECT h.inventory_id FROM public.reservation_holds h
                                  WHERE h.store_id = v_store_id AND h.order_id = v_order.id AND h.released_at IS NULL))
          ORDER BY i.id FOR NO KEY UPDATE) i
    WHERE i.status <> 'active' OR i.expiry_date < posledger_private.store_today(v_store);
    IF v_blocked <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV423', MESSAGE = 'batch blocked: a batch this reservation holds may not be sold',
            DETAIL = jsonb_build_object('blocked', v_blocked, 'receipt_number', v_order.receipt_number)::text,
            HINT = 'Cancel the reservation (cancel_reservation) and reserve from another batch.';
    END IF;

    WITH held AS (
        UPDATE public.reservation_holds h SET released_at = now(), released_as = 'completed'
        WHERE h.store_id = v_store_id AND h.order_id = v_order.id AND h.released_at IS NULL
        RETURNING h.line_no, h.sku, h.batch_lot, h.inventory_id, h.quantity
    )
    SELECT ARRAY(SELECT ROW(line_no, sku, batch_lot, inventory_id, quantity, NULL)::public.pos_sale_allocation
                 FROM held) INTO v_alloc;
    UPDATE public.pos_orders SET status = 'completed', closed_at = now()
    WHERE store_id = v_store_id AND id = v_order.id
    RETURNING * INTO v_order;
    SELECT ARRAY(SELECT l FROM posledger_private.pos_sale_items(
                     v_order.payload, posledger_private.store_date(v_store, v_order.created_at)) l) INTO v_lines;
    RETURN posledger_private.pos_sale_complete(v_order, v_lines, v_alloc, '[]', v_order.result->'purchase_limit', true);
END $$;
