-- resolve_inventory_exception(jsonb) returns jsonb: a person closes one item of the exception queue with
-- a reason, moving stock where it must move - by an adjustment or a count, run in the same transaction
-- (README, "The exception queue"). Idempotent by the exception.

CREATE OR REPLACE FUNCTION resolve_inventory_exception(p_resolution jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.exception_resolve(p_resolution);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION resolve_inventory_exception(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resolve_inventory_exception(jsonb) TO posledger_app;
COMMENT ON FUNCTION resolve_inventory_exception(jsonb) IS 'Closes one open inventory exception with who and why, by an adjustment or a count where stock must move (a shortfall). Idempotent by store and exception id.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql).
CREATE OR REPLACE FUNCTION resolve_inventory_exception(p_store_id uuid, p_resolution jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_resolution) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.exception_problems(p_resolution), 'resolution');
    END IF;
    RETURN public.resolve_inventory_exception(p_resolution);
END $$;

REVOKE ALL ON FUNCTION resolve_inventory_exception(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resolve_inventory_exception(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION resolve_inventory_exception(uuid, jsonb) IS 'resolve_inventory_exception routed by its store (the form Citus distributes).';

-- The stock moves first, then the exception is locked: a count locks its stock rows and then settles
-- the exceptions it covers, and this takes its locks in that same order, so the two cannot deadlock.
-- Whatever refuses after the move (the exception unknown, or closed by another payload) rolls it back.
CREATE OR REPLACE FUNCTION posledger_private.exception_resolve(p_resolution jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id  uuid;
    v_exception public.inventory_exceptions;
    v_moved     jsonb;
    v_result    jsonb;
    v_resolved_at timestamptz;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.exception_problems(p_resolution), 'resolution');
    v_store_id := (p_resolution->>'store_id')::uuid;
    v_moved := CASE WHEN p_resolution ? 'adjustment' THEN posledger_private.adjustment_record(
                        p_resolution->'adjustment' || jsonb_build_object('store_id', v_store_id))
                    WHEN p_resolution ? 'count' THEN posledger_private.count_record(
                        p_resolution->'count' || jsonb_build_object('store_id', v_store_id)) END;

    SELECT * INTO v_exception FROM public.inventory_exceptions e
    WHERE e.store_id = v_store_id AND e.id = (p_resolution->>'exception_id')::bigint
    FOR UPDATE;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_exception.id IS NULL THEN jsonb_build_array(jsonb_build_object(
        'store_id', v_store_id, 'exception_id', p_resolution->'exception_id')) ELSE '[]' END,
        'Name an exception of this store (open_inventory_exceptions lists the open ones).');
    IF v_exception.resolution IS NOT NULL THEN
        PERFORM posledger_private.refuse_other_payload(v_exception.resolution->'payload', p_resolution,
            jsonb_build_object('store_id', v_store_id, 'exception_id', v_exception.id));
        RETURN v_exception.resolution->'result' || '{"replayed": true}';
    END IF;
    PERFORM posledger_private.refuse_problems(CASE WHEN v_exception.kind = 'shortfall' AND v_exception.status = 'open'
                                                        AND v_moved IS NULL
        THEN '[{"field": "adjustment", "problem": "a shortfall is resolved by moving stock: give an adjustment or a count"}]'
        ELSE '[]' END::jsonb, 'resolution');

    -- "was": its status when the call came. A count of this call settles the shortfalls of what it counts
    -- (count_inventory), this one among them, a moment before it was locked here: then it was open.
    v_result := jsonb_build_object('id', v_exception.id, 'store_id', v_store_id, 'kind', v_exception.kind,
                                   'status', 'resolved', 'resolved_by', p_resolution->>'resolved_by',
                                   'reason', p_resolution->>'reason', 'replayed', false,
                                   'was', CASE WHEN v_exception.resolved_by = (v_moved->>'id')::uuid
                                                    AND NOT (v_moved->>'replayed')::boolean
                                               THEN 'open' ELSE v_exception.status END,
                                   'moved', v_moved);
    -- When it was resolved (a count may have settled it already), computed here: Citus refuses a
    -- statement with a non-immutable function (now()) inside a COALESCE or CASE. The row is locked.
    v_resolved_at := coalesce(v_exception.resolved_at, now());
    UPDATE public.inventory_exceptions e
    SET status = 'resolved', resolved_at = v_resolved_at,
        resolved_by = coalesce((v_moved->>'id')::uuid, e.resolved_by),
        resolution = jsonb_build_object('payload', p_resolution, 'result', v_result, 'at', now())
    WHERE e.store_id = v_store_id AND e.id = v_exception.id;
    RETURN v_result;
END $$;

-- Every problem of a resolution at once, as [{field, problem}], those of its adjustment or count among
-- them (their fields prefixed; their store is the resolution's).
CREATE OR REPLACE FUNCTION posledger_private.exception_problems(p_payload jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (WITH payload AS (
            SELECT CASE jsonb_typeof(p_payload) WHEN 'object' THEN p_payload ELSE '{}' END AS s
        ), problem AS (
            SELECT c.ord, c.field, c.problem
            FROM payload, LATERAL (VALUES
                (0, '$', 'the payload must be a JSON object', jsonb_typeof(p_payload) IS DISTINCT FROM 'object'),
                (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(s->'store_id')),
                (2, 'exception_id', 'is required and must be a whole number from 1',
                    NOT posledger_private.json_is_number(s->'exception_id', 1, 9e18, true)),
                (3, 'resolved_by', 'is required: who resolves the exception', NOT posledger_private.json_is_text(s->'resolved_by')),
                (4, 'reason', 'is required: why it is resolved this way', NOT posledger_private.json_is_text(s->'reason')),
                (5, 'adjustment', 'and count: give at most one', s ? 'adjustment' AND s ? 'count'),
                (6, 'adjustment', 'must be an adjustment (adjust_inventory''s payload) when given',
                    s ? 'adjustment' AND jsonb_typeof(s->'adjustment') IS DISTINCT FROM 'object'),
                (7, 'count', 'must be a count (count_inventory''s payload) when given',
                    s ? 'count' AND jsonb_typeof(s->'count') IS DISTINCT FROM 'object')
            ) AS c(ord, field, problem, failed)
            WHERE c.failed
            UNION ALL
            SELECT 100 + n.n, m.key || '.' || (n.p->>'field'), n.p->>'problem'
            FROM payload,
                 LATERAL (VALUES ('adjustment', 'quantity'), ('count', 'counted')) AS m(key, quantity),
                 LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(s->m.key) = 'object'
                     THEN posledger_private.adjustment_problems(s->m.key || jsonb_build_object('store_id', s->'store_id'),
                                                               m.quantity)
                     ELSE '[]' END) WITH ORDINALITY AS n(p, n)
            WHERE posledger_private.json_is_uuid(s->'store_id')
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
        FROM problem);
END $$;
