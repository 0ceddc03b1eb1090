-- set_batch_status(jsonb) returns jsonb: hold, recall or release a lot - in one store, or in every store
-- that has it when no store_id is given (a recall). Only an active batch is sellable: a held batch has
-- nothing available, so a sale naming it is refused (IV423) and FEFO passes it by. A hold stays in force
-- for the lot (in its store, or everywhere) until released: stock of it received later is received held.

CREATE OR REPLACE FUNCTION set_batch_status(p_change jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.batch_status_record(p_change);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION set_batch_status(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_batch_status(jsonb) TO posledger_app;
COMMENT ON FUNCTION set_batch_status(jsonb) IS 'Hold, recall or release a lot, in one store or every store; the hold stays in force for stock of the lot received later. Idempotent by reference.';

CREATE OR REPLACE FUNCTION posledger_private.batch_status_record(p_change jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_request  public.batch_status_requests;
    v_targets  public.ocs_inventory[];
    v_rows     public.ocs_inventory[];   -- NULL || an array is that array
    v_locked   public.ocs_inventory[];
    v_store_id uuid;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.batch_status_problems(p_change), 'status change');
    -- On Citus a recall writes reference tables (the request, the holds) after reading and writing the
    -- stores' shards in one transaction, which Citus allows over one connection per worker only. The
    -- setting exists only where Citus is loaded.
    IF current_setting('citus.multi_shard_modify_mode', true) IS NOT NULL THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    PERFORM posledger_private.lock_lots(ARRAY[p_change->>'batch_lot'], true);
    -- The lot's rows, read once: its advisory lock keeps a receipt from adding one until this call ends.
    -- SELECT ... INTO, not v := ARRAY(...): Citus cannot type the latter's parameter (42P18).
    SELECT ARRAY(SELECT t FROM posledger_private.batch_status_targets(p_change) t) INTO v_targets;
    PERFORM posledger_private.refuse_missing(CASE WHEN cardinality(v_targets) = 0
        THEN jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
            'store_id', p_change->'store_id', 'sku', p_change->'sku', 'batch', p_change->'batch_lot')))
        ELSE '[]' END, 'Name a batch_lot (and optionally sku and store_id) that some store has stocked.');

    v_request := posledger_private.batch_status_claim(p_change);
    IF v_request.result IS NOT NULL THEN
        RETURN v_request.result || '{"replayed": true}';
    END IF;
    -- Locked store by store in store_id order, each store's rows in id order: a sale locks one store's
    -- rows in id order, so no two calls lock in opposite orders; on Citus each store is a single-shard
    -- statement (a lock across shards is refused). Rows are matched by their whole key (store_id, id): by
    -- id alone no index serves the match. The condition is on the row alone, keys computed beforehand,
    -- as the sale's lock (docs/decisions.md, "What is locked"): its rows are used.
    FOR v_store_id IN SELECT DISTINCT t.store_id FROM unnest(v_targets) t ORDER BY t.store_id LOOP
        SELECT ARRAY(SELECT i FROM public.ocs_inventory i
                     WHERE i.store_id = v_store_id
                       AND i.id = ANY (ARRAY(SELECT t.id FROM unnest(v_targets) t WHERE t.store_id = v_store_id))
                     ORDER BY i.id FOR NO KEY UPDATE) INTO v_locked;
        v_rows := v_rows || v_locked;
    END LOOP;
    RETURN posledger_private.batch_status_complete(v_request, v_rows);
END $$;

-- Claims the reference: the new request (result NULL), or the one recorded before with its result,
-- after refusing a reference reused for another payload (IV412). A recall spans stores, so the key is
-- global.
CREATE OR REPLACE FUNCTION posledger_private.batch_status_claim(p_change jsonb) RETURNS public.batch_status_requests
LANGUAGE plpgsql AS $$
DECLARE
    v_request public.batch_status_requests;
BEGIN
    INSERT INTO public.batch_status_requests (reference, payload) VALUES (p_change->>'reference', p_change)
    ON CONFLICT (reference) DO NOTHING
    RETURNING * INTO v_request;
    IF NOT FOUND THEN
        SELECT * INTO v_request FROM public.batch_status_requests WHERE reference = p_change->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_request.payload, p_change,
                                                      jsonb_build_object('reference', v_request.reference));
    END IF;
    RETURN v_request;
END $$;

CREATE OR REPLACE FUNCTION posledger_private.batch_status_problems(p_change jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    WITH change AS (
        SELECT CASE jsonb_typeof(p_change) WHEN 'object' THEN p_change ELSE '{}' END AS c
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', p.field, 'problem', p.problem) ORDER BY p.ord), '[]')
    FROM change, LATERAL (VALUES
        (0, '$', 'the status change must be a JSON object', jsonb_typeof(p_change) IS DISTINCT FROM 'object'),
        (1, 'reference', 'is required and must be a non-empty string: the idempotency key (e.g. the recall notice)',
            NOT posledger_private.json_is_text(c->'reference')),
        (2, 'batch_lot', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(c->'batch_lot')),
        (20, 'reference', 'must be at most 200 characters', posledger_private.json_is_long(c->'reference')),
        (21, 'batch_lot', 'must be at most 200 characters', posledger_private.json_is_long(c->'batch_lot')),
        (22, 'sku', 'must be at most 200 characters', posledger_private.json_is_long(c->'sku')),
        (3, 'status', 'must be one of active, quarantined, recalled, awaiting_destruction',
            coalesce(c->'status' NOT IN ('"active"', '"quarantined"', '"recalled"', '"awaiting_destruction"'), true)),
        (4, 'reason', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(c->'reason')),
        (5, 'actor', 'is required and must be a non-empty string: who decided it', NOT posledger_private.json_is_text(c->'actor')),
        (6, 'sku', 'must be a non-empty string when given',
            posledger_private.json_is_given(c->'sku') AND NOT posledger_private.json_is_text(c->'sku')),
        (7, 'store_id', 'must be a uuid when given (absent: every store)',
            posledger_private.json_is_given(c->'store_id') AND NOT posledger_private.json_is_uuid(c->'store_id'))
    ) AS p(ord, field, problem, failed)
    WHERE p.failed
$$;

-- The batch rows a valid status change is about. PL/pgSQL: Citus cannot plan a LANGUAGE sql function's
-- parameterised query on its tables (inlined on the coordinator, it read the empty shell).
CREATE OR REPLACE FUNCTION posledger_private.batch_status_targets(p_change jsonb) RETURNS SETOF public.ocs_inventory
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT * FROM public.ocs_inventory i
    WHERE i.batch_lot = p_change->>'batch_lot'
      AND (p_change->>'sku' IS NULL OR i.sku = p_change->>'sku')
      AND (p_change->>'store_id' IS NULL OR i.store_id = (p_change->>'store_id')::uuid);
END $$;

-- The writes to the rows p_rows, under their locks: the status, what is available (none while held;
-- on release, every unit on hand that is not quarantined - there are no reservations yet), one history
-- row per batch changed, and the hold in force for stock of the lot received later: a change replaces
-- every hold inside its scope (the latest word on a lot, sku or store wins), and a hold adds its own.
CREATE OR REPLACE FUNCTION posledger_private.batch_status_complete(p_request public.batch_status_requests,
                                                             p_rows public.ocs_inventory[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_status text := p_request.payload->>'status';
    v_result jsonb;
BEGIN
    WITH target AS (
        SELECT t.id, t.store_id, t.status FROM unnest(p_rows) t
    ), changed AS (
        UPDATE public.ocs_inventory i
        SET status = v_status,
            -- A searched CASE: Citus mis-plans a simple CASE x WHEN ... in DML (its issue 2862).
            quantity_available = CASE WHEN v_status = 'active'
                                      THEN i.quantity_on_hand - i.quantity_quarantined - i.quantity_reserved ELSE 0 END,
            updated_at = now()
        FROM target t
        WHERE i.store_id = t.store_id AND i.id = t.id AND t.status <> v_status
        RETURNING i.id, i.store_id, i.sku, i.batch_lot, t.status AS from_status, i.quantity_on_hand
    ), logged AS (
        INSERT INTO public.batch_status_changes (store_id, inventory_id, sku, batch_lot, from_status, to_status,
                                                 quantity_on_hand, reference, reason, actor)
        SELECT store_id, id, sku, batch_lot, from_status, v_status, quantity_on_hand, p_request.reference,
               p_request.payload->>'reason', p_request.payload->>'actor'
        FROM changed
    )
    SELECT jsonb_build_object(
        'reference', p_request.reference, 'status', v_status, 'timestamp', p_request.created_at, 'replayed', false,
        'changed', coalesce(jsonb_agg(jsonb_build_object('store_id', store_id, 'sku', sku, 'batch', batch_lot,
                                                         'from', from_status, 'quantity_on_hand', quantity_on_hand)
                                      ORDER BY store_id, sku), '[]'),
        'changed_count', count(*))
    INTO v_result FROM changed;
    DELETE FROM public.batch_lot_holds h
    WHERE h.batch_lot = p_request.payload->>'batch_lot'
      AND (p_request.payload->>'sku' IS NULL OR h.sku = p_request.payload->>'sku')
      AND (p_request.payload->>'store_id' IS NULL OR h.store_id = (p_request.payload->>'store_id')::uuid);
    INSERT INTO public.batch_lot_holds (batch_lot, sku, store_id, status, reference)
    SELECT p_request.payload->>'batch_lot', p_request.payload->>'sku', (p_request.payload->>'store_id')::uuid,
           v_status, p_request.reference
    WHERE v_status <> 'active';
    UPDATE public.batch_status_requests SET result = v_result WHERE reference = p_request.reference;
    RETURN v_result;
END $$;
