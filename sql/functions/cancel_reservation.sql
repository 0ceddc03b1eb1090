-- cancel_reservation(jsonb) returns jsonb: the reservation (or parked cart) is not wanted; its units go
-- back to available. Idempotent by the receipt number (README, "Reservations").

CREATE OR REPLACE FUNCTION cancel_reservation(p_cancellation jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.reservation_cancel(p_cancellation);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION cancel_reservation(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cancel_reservation(jsonb) TO posledger_app;
COMMENT ON FUNCTION cancel_reservation(jsonb) IS 'Cancels an open reservation or parked cart: its held units become available again. Idempotent by store and receipt_number.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql).
CREATE OR REPLACE FUNCTION cancel_reservation(p_store_id uuid, p_cancellation jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_cancellation) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.reservation_problems(p_cancellation, true), 'cancellation');
    END IF;
    RETURN public.cancel_reservation(p_cancellation);
END $$;

REVOKE ALL ON FUNCTION cancel_reservation(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cancel_reservation(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION cancel_reservation(uuid, jsonb) IS 'cancel_reservation routed by its store (the form Citus distributes).';

-- A reservation already released answers with its result: cancelled by the same payload, a replay;
-- by another, IV412; expired, its expiry (what a cancellation asks, the units back, has happened).
CREATE OR REPLACE FUNCTION posledger_private.reservation_cancel(p_cancellation jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_order    public.pos_orders;
    v_store_id uuid;   -- a plain variable: Citus prunes shards by a scalar only
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.reservation_problems(p_cancellation, true), 'cancellation');
    v_order := posledger_private.reservation_locked(p_cancellation);
    v_store_id := v_order.store_id;
    IF v_order.status = 'cancelled' THEN
        PERFORM posledger_private.refuse_other_payload(v_order.result->'cancellation', p_cancellation,
            jsonb_build_object('store_id', v_store_id, 'receipt_number', v_order.receipt_number, 'order_id', v_order.id));
    END IF;
    IF v_order.status IN ('cancelled', 'expired') THEN
        RETURN v_order.result || '{"replayed": true}';
    END IF;
    IF v_order.status NOT IN ('reserved', 'parked') THEN
        PERFORM posledger_private.refuse_closed(v_order);
    END IF;
    PERFORM posledger_private.reservation_release(v_store_id, ARRAY[v_order.id], 'cancelled',
                                                  jsonb_build_object('cancellation', p_cancellation));
    RETURN (SELECT o.result FROM public.pos_orders o WHERE o.store_id = v_store_id AND o.id = v_order.id);
END $$;
