-- ocs_claim_events(jsonb) returns jsonb: up to `limit` unsent outbox rows of a store, oldest first, locked
-- for the caller's transaction, with their events as the platform reads them (docs/ocs-feed.md). A sender
-- calls it inside ITS OWN transaction, POSTs the events, records each answer with ocs_record_delivery and
-- commits: FOR UPDATE SKIP LOCKED means two senders never hold one row, and a sender that dies before it
-- commits releases its rows unsent (its transaction rolls back).

CREATE OR REPLACE FUNCTION ocs_claim_events(p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_store    public.stores;
    v_store_id uuid;
    v_limit    integer;
    v_ids      bigint[];
    v_id       bigint;
    v_held     jsonb;
BEGIN
    PERFORM posledger_private.refuse_problems((
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', c.field, 'problem', c.problem) ORDER BY c.ord), '[]')
        FROM (VALUES
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(p_request->'store_id')),
            (2, 'limit', 'must be a whole number from 1 to 1000',
             posledger_private.json_is_given(p_request->'limit')
             AND NOT posledger_private.json_is_number(p_request->'limit', 1, 1000, true))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed), 'claim');
    v_store := posledger_private.existing_store((p_request->>'store_id')::uuid);
    v_store_id := v_store.id;   -- a plain variable: Citus prunes shards by a scalar only
    v_limit := coalesce((p_request->>'limit')::numeric::integer, 100);

    -- Oldest first, so the platform hears of movements in the order they were committed; SKIP LOCKED, so
    -- a second sender takes the next rows instead of waiting for (and then resending) these.
    -- A loop over one locking statement, not a subquery: the FOR UPDATE at the top of the statement is what
    -- tells PL/pgSQL (and plpgsql_check) that this function takes locks, so it must stay VOLATILE.
    v_ids := '{}';
    FOR v_id IN
        SELECT o.id FROM public.ocs_outbox o
        WHERE o.store_id = v_store_id AND o.sent_at IS NULL
        ORDER BY o.id LIMIT v_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        v_ids := v_ids || v_id;
    END LOOP;

    -- The platform rejects a day whose events do not reconcile with its positions; a day that fails the
    -- check is held back (its rows stay unsent, released at commit) and reported, for a person to mend.
    v_held := posledger_private.ocs_unbalanced_days(v_store, v_ids);
    SELECT coalesce(array_agg(o.id ORDER BY o.id), '{}') INTO v_ids
    FROM public.ocs_outbox o
    WHERE o.store_id = v_store_id AND o.id = ANY (v_ids)
      AND NOT EXISTS (SELECT FROM jsonb_array_elements(v_held) h WHERE (h->>'day')::date = o.day);

    RETURN jsonb_build_object('store_id', v_store_id, 'crsa', v_store.crsa, 'crol', v_store.crol,
                              'outbox_ids', to_jsonb(v_ids),
                              'events', (SELECT coalesce(jsonb_agg(e.event ORDER BY e.outbox_id), '[]')
                                         FROM posledger_private.ocs_events(v_store_id, v_ids) e),
                              'held', v_held);
END $$;

REVOKE ALL ON FUNCTION ocs_claim_events(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ocs_claim_events(jsonb) TO posledger_app;
COMMENT ON FUNCTION ocs_claim_events(jsonb) IS 'Claims up to limit (default 100) unsent OCS outbox rows of a store, oldest first, FOR UPDATE SKIP LOCKED in the caller''s transaction: {store_id, crsa, crol, outbox_ids, events, held: [{day, differences}] (days failing the platform''s check, not claimed)}.';

-- The days of a store's outbox rows p_ids whose check fails (ocs_report's check), with their differences.
-- A loop over the days (one or two in a batch), not ocs_day in a LATERAL join: on Citus that join would run
-- on the shard, and ocs_day's own queries from there are nested distributed queries, which Citus refuses.
CREATE OR REPLACE FUNCTION posledger_private.ocs_unbalanced_days(p_store stores, p_ids bigint[]) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store_id uuid := p_store.id;
    v_day      date;
    v_report   jsonb;
    v_held     jsonb := '[]'::jsonb;
BEGIN
    FOR v_day IN SELECT DISTINCT o.day FROM public.ocs_outbox o
                 WHERE o.store_id = v_store_id AND o.id = ANY (p_ids) ORDER BY 1
    LOOP
        v_report := posledger_private.ocs_day(p_store, v_day);
        IF NOT (v_report->'check'->>'balanced')::boolean THEN
            v_held := v_held || jsonb_build_array(jsonb_build_object('day', v_day,
                                                                     'differences', v_report->'check'->'differences'));
        END IF;
    END LOOP;
    RETURN v_held;
END $$;
