-- release_expired_reservations(store_id uuid, max_orders integer) returns jsonb: what a scheduler calls
-- (pg_cron, or the backend's own timer; docs/runbook.md) to release a store's reservations and parked
-- carts past their end, each release recorded on its holds and its order.

-- Safe from two schedulers at once: each takes the expired orders no other has locked (SKIP LOCKED),
-- so no reservation is released twice, and a completion or cancellation holding one is left to finish.
-- At most p_max_orders per call ("more" says whether to call again), so one call's locks stay bounded.
-- Per store, like every other call: on Citus it runs on the store's worker.
-- Custom plans, unlike the other entries: each call's orders are then a constant array, whose `= ANY`
-- is a hash lookup wherever the plan puts it. Under a generic plan it is a parameter, searched element
-- by element: planned when the statistics said no hold was open, the holds were read by their partial
-- index with that search as a filter, 50,000 holds against 10,000 orders, 3 s of a 4.4 s release
-- (docs/benchmarks.md, "Reservations"). A scheduler's call is worth planning.
CREATE OR REPLACE FUNCTION release_expired_reservations(p_store_id uuid, p_max_orders integer DEFAULT 10000)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_custom_plan
SET lock_timeout = '3s'
AS $$
DECLARE
    v_store_id uuid := p_store_id;
    v_orders uuid[];
    v_units  bigint;
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    PERFORM posledger_private.refuse_problems(CASE WHEN p_max_orders BETWEEN 1 AND 100000 THEN '[]'
        ELSE '[{"field": "max_orders", "problem": "must be a whole number from 1 to 100000"}]' END::jsonb, 'release');
    PERFORM posledger_private.existing_store(v_store_id);
    SELECT ARRAY(SELECT o.id FROM public.pos_orders o
                 WHERE o.store_id = v_store_id AND o.status IN ('reserved', 'parked') AND o.expires_at <= now()
                 ORDER BY o.expires_at, o.id LIMIT p_max_orders
                 FOR NO KEY UPDATE SKIP LOCKED) INTO v_orders;
    v_units := posledger_private.reservation_release(v_store_id, v_orders, 'expired', '{}');
    RETURN jsonb_build_object('store_id', v_store_id, 'released', cardinality(v_orders), 'units', v_units,
                              'more', cardinality(v_orders) = p_max_orders);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION release_expired_reservations(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION release_expired_reservations(uuid, integer) TO posledger_app;
COMMENT ON FUNCTION release_expired_reservations(uuid, integer) IS 'Releases a store''s reservations and parked carts past their end (at most max_orders per call; "more" says to call again). Safe from two schedulers at once.';
