-- count_inventory(jsonb) returns jsonb: counted quantities per batch, posted as adjustments in one
-- transaction (the differences from the books, under the count's reason code), settling the lenient
-- sales' open shortfalls of what was counted. The helpers are adjust_inventory's.

CREATE OR REPLACE FUNCTION count_inventory(p_count jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.count_record(p_count);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION count_inventory(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION count_inventory(jsonb) TO posledger_app;
COMMENT ON FUNCTION count_inventory(jsonb) IS 'Counted quantities per batch, posted as adjustments (the differences) under a count reason; settles open shortfalls of what was counted.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same call as the one-argument form.
CREATE OR REPLACE FUNCTION count_inventory(p_store_id uuid, p_count jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_count) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.adjustment_problems(p_count, 'counted'), 'count');
    END IF;
    RETURN public.count_inventory(p_count);
END $$;

REVOKE ALL ON FUNCTION count_inventory(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION count_inventory(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION count_inventory(uuid, jsonb) IS 'count_inventory routed by its store (the form Citus distributes).';

-- A counted quantity is every unit of the batch on the shelf, quarantined ones included; the
-- difference is read under the lock, so a sale that committed while the count waited is not lost.
CREATE OR REPLACE FUNCTION posledger_private.count_record(p_count jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_header public.inventory_adjustments;
    v_store_id uuid;
    v_deltas public.inventory_delta[];
    v_result jsonb;
    v_settled integer;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.adjustment_problems(p_count, 'counted'), 'count');
    v_header := posledger_private.adjustment_claim(p_count, 'count');
    IF v_header.result IS NOT NULL THEN
        RETURN v_header.result || '{"replayed": true}';
    END IF;
    -- Read by a plain store id, apart from the call: Citus sends a statement it cannot prune (by a field
    -- of v_header) to every shard, the function it calls with it.
    v_store_id := v_header.store_id;
    SELECT ARRAY(
        SELECT ROW(i.id, l.quantity - i.quantity_on_hand, 0)::public.inventory_delta
        FROM posledger_private.adjustment_lines(v_header) l
        JOIN public.ocs_inventory i ON i.store_id = v_store_id AND i.sku = l.sku
                                   AND i.batch_lot IS NOT DISTINCT FROM l.batch_lot) INTO v_deltas;
    v_result := posledger_private.adjustment_complete(v_header, v_deltas);

    -- A shortfall names its batch, or none when FEFO found nothing: counting the sku settles the latter.
    -- Only shortfalls: a rule an offline sale broke (a recalled batch sold) is closed by a person's reason.
    UPDATE public.inventory_exceptions e SET status = 'resolved', resolved_by = v_header.id, resolved_at = now()
    WHERE e.store_id = v_store_id AND e.status = 'open' AND e.kind = 'shortfall'
      AND EXISTS (SELECT FROM posledger_private.adjustment_lines(v_header) l
                  WHERE l.sku = e.sku AND (e.batch_lot IS NULL OR l.batch_lot = e.batch_lot));
    GET DIAGNOSTICS v_settled = ROW_COUNT;
    v_result := v_result || jsonb_build_object('exceptions_resolved', v_settled);
    UPDATE public.inventory_adjustments SET result = v_result WHERE store_id = v_store_id AND id = v_header.id;
    RETURN v_result;
END $$;
