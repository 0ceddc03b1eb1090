-- ocs_resend_events(jsonb) returns jsonb: the events of a store's days that the platform already accepted
-- are marked unsent again, so the sender delivers them once more under their own ids - how the platform
-- takes a correction (docs/ocs-feed.md, "Corrections"). Events are rendered when read, so what goes again
-- is what the ledger and the corrected mapping (ocs_event_types) say now. Events not yet sent are left as
-- they are: they go with the correction already. Each request is kept in ocs_resends.

CREATE OR REPLACE FUNCTION ocs_resend_events(p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET lock_timeout = '3s'
AS $$
DECLARE
    v_store_id uuid;
    v_from     date;
    v_to       date;
    v_types    text[];
    v_ids      bigint[];
    v_resend   public.ocs_resends;
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    PERFORM posledger_private.refuse_problems(posledger_private.ocs_resend_problems(p_request), 'resend');
    v_store_id := (p_request->>'store_id')::uuid;
    v_from := (p_request->>'from_day')::date;
    v_to := coalesce((p_request->>'to_day')::date, v_from);
    v_types := CASE WHEN posledger_private.json_is_given(p_request->'transaction_types')
                    THEN ARRAY(SELECT jsonb_array_elements_text(p_request->'transaction_types')) END;
    PERFORM posledger_private.existing_store(v_store_id);

    -- Every row named, sent or not, in id order as ocs_record_delivery locks them: a batch a sender has
    -- claimed (rendered under the old mapping, not yet marked sent) is waited for, not skipped, so it too
    -- goes again once its sender has committed. The requeue is a second statement, which sees that commit.
    SELECT array_agg(o.id ORDER BY o.id) INTO v_ids
    FROM (SELECT o.id FROM public.ocs_outbox o
          WHERE o.store_id = v_store_id AND o.day BETWEEN v_from AND v_to
            AND (v_types IS NULL OR EXISTS (
                  SELECT FROM public.ocs_inventory_transactions t
                  WHERE t.store_id = v_store_id AND t.id = o.ledger_id AND t.transaction_type = ANY (v_types)))
          ORDER BY o.id FOR UPDATE) o;
    WITH requeued AS (
        UPDATE public.ocs_outbox o SET sent_at = NULL
        WHERE o.store_id = v_store_id AND o.id = ANY (v_ids) AND o.sent_at IS NOT NULL
        RETURNING o.id
    )
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_ids FROM requeued;
    INSERT INTO public.ocs_resends (store_id, from_day, to_day, transaction_types, reason, actor, outbox_ids)
    VALUES (v_store_id, v_from, v_to, v_types, p_request->>'reason', p_request->>'actor', v_ids)
    RETURNING * INTO v_resend;
    RETURN jsonb_build_object('resend_id', v_resend.id, 'store_id', v_store_id, 'from_day', v_from, 'to_day', v_to,
                              'transaction_types', to_jsonb(v_types), 'requeued', cardinality(v_ids),
                              'outbox_ids', to_jsonb(v_ids));
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION ocs_resend_events(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ocs_resend_events(jsonb) TO posledger_app;
COMMENT ON FUNCTION ocs_resend_events(jsonb) IS 'Marks a store''s accepted OCS events of the days from_day..to_day (of the ledger types named, else all) unsent again, so the sender delivers them once more under their own ids: a correction ({store_id, from_day, to_day, transaction_types, reason, actor}). Kept in ocs_resends.';

-- Every problem of a resend request, as [{field, problem}]; never raises. The ledger types it may name are
-- those the feed maps (ocs_event_types): a type misspelt would requeue nothing and look done.
CREATE OR REPLACE FUNCTION posledger_private.ocs_resend_problems(p_request jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', c.field, 'problem', c.problem) ORDER BY c.ord), '[]')
    FROM (SELECT CASE jsonb_typeof(p_request) WHEN 'object' THEN p_request ELSE '{}' END AS d) r,
    LATERAL (VALUES
        (0, '$', 'the payload must be a JSON object', jsonb_typeof(p_request) IS DISTINCT FROM 'object'),
        (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(d->'store_id')),
        (2, 'from_day', 'is required and must be a date (YYYY-MM-DD)', NOT posledger_private.json_is_date(d->'from_day')),
        (3, 'to_day', 'must be a date (YYYY-MM-DD) when given', posledger_private.json_is_given(d->'to_day')
            AND NOT posledger_private.json_is_date(d->'to_day')),
        (4, 'to_day', 'must not be before from_day', posledger_private.json_is_date(d->'from_day')
            AND posledger_private.json_is_date(d->'to_day') AND (d->>'to_day')::date < (d->>'from_day')::date),
        (5, 'transaction_types', 'must be a non-empty array of ledger types the feed maps (ocs_event_types: sale, '
            'receipt, ...) when given',
            posledger_private.json_is_given(d->'transaction_types')
            AND NOT coalesce(jsonb_typeof(d->'transaction_types') = 'array'
                             AND jsonb_array_length(d->'transaction_types') > 0
                             AND NOT EXISTS (SELECT FROM jsonb_array_elements(d->'transaction_types') t
                                             WHERE NOT posledger_private.json_is_text(t)
                                                OR NOT EXISTS (SELECT FROM public.ocs_event_types e
                                                               WHERE e.transaction_type = t->>0)), false)),
        (6, 'reason', 'is required and must be a non-empty string of at most 200 characters: why the platform must '
            'hear these again',
            NOT posledger_private.json_is_text(d->'reason') OR posledger_private.json_is_long(d->'reason')),
        (7, 'actor', 'is required and must be a non-empty string of at most 200 characters: who asked',
            NOT posledger_private.json_is_text(d->'actor') OR posledger_private.json_is_long(d->'actor'))
    ) AS c(ord, field, problem, failed)
    WHERE c.failed
$$;
