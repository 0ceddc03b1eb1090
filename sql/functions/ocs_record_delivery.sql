-- ocs_record_delivery(jsonb) returns jsonb: one attempt to deliver the OCS feed and the platform's answer,
-- kept in ocs_deliveries; when the platform accepted an events delivery (a 2xx), its outbox rows are
-- marked sent. Called by the sender in the transaction that claimed the rows (ocs_claim_events), before it
-- commits, so a row is marked sent exactly when the answer that accepted it is on record.

CREATE OR REPLACE FUNCTION ocs_record_delivery(p_delivery jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '3s'
AS $$
DECLARE
    v_store_id uuid;
    v_kind     text;
    v_ids      bigint[];
    v_accepted boolean;
    v_id       bigint;
    v_marked   integer := 0;
    v_now      timestamptz := now();   -- a value, not now() beside a column: Citus refuses that in an UPDATE
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    PERFORM posledger_private.refuse_problems(posledger_private.ocs_delivery_problems(p_delivery), 'delivery');
    v_store_id := (p_delivery->>'store_id')::uuid;
    v_kind := coalesce(p_delivery->>'kind', 'events');
    v_ids := ARRAY(SELECT i::numeric::bigint FROM jsonb_array_elements_text(coalesce(p_delivery->'outbox_ids', '[]')) i);
    PERFORM posledger_private.existing_store(v_store_id);
    -- The rows are the caller's already (claimed in this transaction); locking them again in id order
    -- makes a caller that did not claim them wait for the one that did, never mark them under its feet.
    PERFORM FROM public.ocs_outbox o WHERE o.store_id = v_store_id AND o.id = ANY (v_ids) ORDER BY o.id FOR UPDATE;
    PERFORM posledger_private.refuse_missing((
        SELECT coalesce(jsonb_agg(jsonb_build_object('outbox_id', i) ORDER BY i), '[]')
        FROM unnest(v_ids) i
        WHERE NOT EXISTS (SELECT FROM public.ocs_outbox o WHERE o.store_id = v_store_id AND o.id = i)),
        'Name outbox rows of this store, as ocs_claim_events returned them.');

    -- Accepted means the platform answered 2xx: a refusal (4xx), a failure (5xx) or no answer at all
    -- (a timeout, a refused connection) leaves the rows to be sent again.
    v_accepted := coalesce((p_delivery->>'status')::numeric::integer BETWEEN 200 AND 299
                           AND NOT posledger_private.json_is_given(p_delivery->'error'), false);
    INSERT INTO public.ocs_deliveries (store_id, kind, outbox_ids, day, attempt, status_code, body, error, accepted, sender)
    VALUES (v_store_id, v_kind, v_ids, (p_delivery->>'day')::date, (p_delivery->>'attempt')::numeric::integer,
            (p_delivery->>'status')::numeric::integer, left(p_delivery->>'body', 10000), p_delivery->>'error', v_accepted,
            p_delivery->>'sender')
    RETURNING id INTO v_id;
    -- attempts counts every POST that carried the row, whatever came back.
    UPDATE public.ocs_outbox o SET attempts = o.attempts + 1, sent_at = CASE WHEN v_accepted THEN v_now END
    WHERE o.store_id = v_store_id AND o.id = ANY (v_ids) AND o.sent_at IS NULL;
    IF v_accepted THEN
        GET DIAGNOSTICS v_marked = ROW_COUNT;
    END IF;
    RETURN jsonb_build_object('delivery_id', v_id, 'store_id', v_store_id, 'kind', v_kind, 'accepted', v_accepted,
                              'marked_sent', v_marked);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION ocs_record_delivery(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ocs_record_delivery(jsonb) TO posledger_app;
COMMENT ON FUNCTION ocs_record_delivery(jsonb) IS 'Records one delivery attempt of the OCS feed and its answer ({store_id, kind events|position, outbox_ids | day, attempt, status, body, error, sender}) in ocs_deliveries; an accepted (2xx) events delivery marks its outbox rows sent.';

-- Every problem of a delivery, as [{field, problem}]; never raises.
CREATE OR REPLACE FUNCTION posledger_private.ocs_delivery_problems(p_delivery jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', c.field, 'problem', c.problem) ORDER BY c.ord), '[]')
    FROM (SELECT coalesce(p_delivery->>'kind', 'events') AS kind) k,
    LATERAL (VALUES
        (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(p_delivery->'store_id')),
        (2, 'kind', 'must be events or position', k.kind NOT IN ('events', 'position')),
        (3, 'outbox_ids', 'an events delivery needs 1 to 1000 outbox ids (whole numbers > 0)',
         k.kind = 'events' AND NOT coalesce(jsonb_typeof(p_delivery->'outbox_ids') = 'array'
             AND jsonb_array_length(p_delivery->'outbox_ids') BETWEEN 1 AND 1000
             AND NOT EXISTS (SELECT FROM jsonb_array_elements(p_delivery->'outbox_ids') i
                             WHERE NOT posledger_private.json_is_number(i, 1, 9007199254740991, true)), false)),
        (4, 'day', 'must be a date (YYYY-MM-DD); a position delivery needs one',
         (k.kind = 'position' OR posledger_private.json_is_given(p_delivery->'day'))
         AND NOT posledger_private.json_is_date(p_delivery->'day')),
        (5, 'attempt', 'is required and must be a whole number from 1 to 1000',
         NOT posledger_private.json_is_number(p_delivery->'attempt', 1, 1000, true)),
        (6, 'status', 'must be an HTTP status code (100 to 599)',
         posledger_private.json_is_given(p_delivery->'status')
         AND NOT posledger_private.json_is_number(p_delivery->'status', 100, 599, true)),
        (7, 'error', 'must be a text', posledger_private.json_is_given(p_delivery->'error')
         AND NOT posledger_private.json_is_text(p_delivery->'error')),
        (8, 'status', 'a delivery needs its answer: a status, or the error that stood for one',
         NOT posledger_private.json_is_given(p_delivery->'status') AND NOT posledger_private.json_is_given(p_delivery->'error')),
        (9, 'body', 'must be a text', posledger_private.json_is_given(p_delivery->'body')
         AND jsonb_typeof(p_delivery->'body') <> 'string'),
        (10, 'sender', 'must be a text of at most 200 characters', posledger_private.json_is_given(p_delivery->'sender')
         AND (NOT posledger_private.json_is_text(p_delivery->'sender') OR posledger_private.json_is_long(p_delivery->'sender'))),
        (11, 'outbox_ids', 'a position delivery carries no outbox rows',
         k.kind = 'position' AND posledger_private.json_is_given(p_delivery->'outbox_ids'))
    ) AS c(ord, field, problem, failed)
    WHERE c.failed
$$;
