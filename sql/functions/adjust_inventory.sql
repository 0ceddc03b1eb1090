-- adjust_inventory(jsonb) returns jsonb: signed corrections of batch rows with a reason code, a note and
-- who did it, all or nothing. count_inventory.sql posts a count through the same helpers below.

CREATE OR REPLACE FUNCTION adjust_inventory(p_adjustment jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.adjustment_record(p_adjustment);
EXCEPTION
    WHEN lock_not_available THEN
        PERFORM posledger_private.refuse_busy(SQLERRM);
        RETURN NULL;  -- not reached: refuse_busy raises
    WHEN numeric_value_out_of_range THEN
        PERFORM posledger_private.refuse_overflow(SQLERRM, 'adjustment');
        RETURN NULL;  -- not reached: refuse_overflow raises
END $$;

REVOKE ALL ON FUNCTION adjust_inventory(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adjust_inventory(jsonb) TO posledger_app;
COMMENT ON FUNCTION adjust_inventory(jsonb) IS 'Signed corrections of batch rows with a reason code, a note and who did it; never below zero. Idempotent by store and reference.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same call as the one-argument form.
CREATE OR REPLACE FUNCTION adjust_inventory(p_store_id uuid, p_adjustment jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_adjustment) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.adjustment_problems(p_adjustment, 'quantity'), 'adjustment');
    END IF;
    RETURN public.adjust_inventory(p_adjustment);
END $$;

REVOKE ALL ON FUNCTION adjust_inventory(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adjust_inventory(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION adjust_inventory(uuid, jsonb) IS 'adjust_inventory routed by its store (the form Citus distributes).';

CREATE OR REPLACE FUNCTION posledger_private.adjustment_record(p_adjustment jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_header   public.inventory_adjustments;
    v_store_id uuid;
    v_deltas   public.inventory_delta[];
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.adjustment_problems(p_adjustment, 'quantity'), 'adjustment');
    v_header := posledger_private.adjustment_claim(p_adjustment, 'adjustment');
    IF v_header.result IS NOT NULL THEN
        RETURN v_header.result || '{"replayed": true}';
    END IF;
    -- Read by a plain store id, apart from the call: Citus sends a statement it cannot prune (by a field
    -- of v_header) to every shard, the function it calls with it.
    v_store_id := v_header.store_id;
    SELECT ARRAY(
        SELECT ROW(i.id, sum(l.quantity) FILTER (WHERE NOT l.quarantined),
                   sum(l.quantity) FILTER (WHERE l.quarantined))::public.inventory_delta
        FROM posledger_private.adjustment_lines(v_header) l
        JOIN public.ocs_inventory i ON i.store_id = v_store_id AND i.sku = l.sku
                                   AND i.batch_lot IS NOT DISTINCT FROM l.batch_lot
        GROUP BY i.id) INTO v_deltas;
    RETURN posledger_private.adjustment_complete(v_header, v_deltas);
END $$;

-- Every problem of an adjustment or a count at once, as [{field, problem}]. p_quantity names the
-- line's number: 'quantity' (signed, not 0) for an adjustment, 'counted' (0 or more) for a count.
CREATE OR REPLACE FUNCTION posledger_private.adjustment_problems(p_payload jsonb, p_quantity text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH doc AS (
        SELECT CASE jsonb_typeof(p_payload) WHEN 'object' THEN p_payload ELSE '{}' END AS d
    ), problem AS (
        SELECT c.field, c.problem, c.ord
        FROM doc, LATERAL (VALUES
            (0, '$', 'the payload must be a JSON object', jsonb_typeof(p_payload) IS DISTINCT FROM 'object'),
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(d->'store_id')),
            (2, 'reference', 'is required and must be a non-empty string: the idempotency key',
                NOT posledger_private.json_is_text(d->'reference')),
            (3, 'reason_code', 'is required and must be one of adjustment_reasons.code'
                || CASE p_quantity WHEN 'counted' THEN ' for a count: physical_count, cycle_count, internal_audit'
                   ELSE '' END,
                NOT coalesce(d->>'reason_code' IN (SELECT code FROM public.adjustment_reasons)
                             AND jsonb_typeof(d->'reason_code') = 'string'
                             AND (p_quantity <> 'counted'
                                  OR d->>'reason_code' IN ('physical_count', 'cycle_count', 'internal_audit')), false)),
            (4, 'note', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(d->'note')),
            (20, 'reference', 'must be at most 200 characters', posledger_private.json_is_long(d->'reference')),
            (5, 'actor', 'is required and must be a non-empty string: who did it', NOT posledger_private.json_is_text(d->'actor')),
            (6, 'lines', format('is required and must be an array of 1 to %s lines', posledger_private.max_lines()),
                NOT posledger_private.json_is_lines(d->'lines'))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed
        UNION ALL
        SELECT format('lines[%s].%s', i.n - 1, c.field), c.problem, 100 * i.n + c.ord
        -- The lines naming one row (sku, and batch_lot with absent and null alike) are counted and summed
        -- by one window, in n log n: a count names each row once; an adjustment moves at most 10^6 units of
        -- a row in all, so its sums cannot overflow (22003), and gives the row one expiry date at most.
        FROM doc, LATERAL (
                SELECT l.line, l.n, count(*) OVER same AS naming,
                       min(l.line->>'expiry_date') OVER same AS first_expiry, max(l.line->>'expiry_date') OVER same AS last_expiry,
                       sum(CASE WHEN posledger_private.json_is_number(l.line->p_quantity, -1e6, 1e6, true)
                                THEN abs((l.line->>p_quantity)::numeric) END) OVER same AS units,
                       row_number() OVER (same ORDER BY l.n) AS nth
                FROM jsonb_array_elements(posledger_private.json_lines(d->'lines')) WITH ORDINALITY AS l(line, n)
                WINDOW same AS (PARTITION BY l.line->'sku', l.line->>'batch_lot')) i,
             LATERAL (VALUES
                (1, 'sku', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(i.line->'sku')),
                (2, 'batch_lot', 'must be a non-empty string when given (absent: the unbatched row)',
                    posledger_private.json_is_given(i.line->'batch_lot') AND NOT posledger_private.json_is_text(i.line->'batch_lot')),
                (3, p_quantity, CASE p_quantity WHEN 'counted' THEN 'must be a whole number from 0 to 1000000'
                                ELSE 'must be a whole number from -1000000 to 1000000, not 0 (absent: the line only sets expiry_date)' END,
                    (NOT posledger_private.json_is_number(i.line->p_quantity, CASE p_quantity WHEN 'counted' THEN 0 ELSE -1e6 END,
                                               1e6, true)
                     OR (p_quantity = 'quantity' AND i.line->'quantity' = '0'))
                    AND NOT (p_quantity = 'quantity' AND NOT i.line ? 'quantity'
                             AND posledger_private.json_is_given(i.line->'expiry_date'))),
                (4, 'quarantined', 'must be true or false when given; a count takes none',
                    posledger_private.json_is_given(i.line->'quarantined')
                    AND (p_quantity = 'counted' OR NOT posledger_private.json_is_boolean(i.line->'quarantined'))),
                (5, 'batch_lot', 'is counted twice in this count',
                    p_quantity = 'counted' AND i.naming > 1 AND posledger_private.json_is_text(i.line->'sku')),
                (6, p_quantity, 'moves more than 1000000 units of one sku and batch across its lines',
                    p_quantity = 'quantity' AND i.nth = 1 AND i.units > 1000000),
                (7, 'expiry_date', 'must be a date (YYYY-MM-DD) when given; a count takes none',
                    posledger_private.json_is_given(i.line->'expiry_date')
                    AND (p_quantity = 'counted' OR NOT posledger_private.json_is_date(i.line->'expiry_date'))),
                (8, 'expiry_date', 'differs from another line''s for the same sku and batch',
                    i.first_expiry <> i.last_expiry AND posledger_private.json_is_given(i.line->'expiry_date'))
             ) AS c(ord, field, problem, failed)
        WHERE c.failed
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
    FROM problem
$$;

-- The lines of a valid adjustment or count: sku, batch_lot (NULL: the unbatched row), the number
-- (quantity or counted) and whether it is about quarantined units.
CREATE OR REPLACE FUNCTION posledger_private.adjustment_lines(p_header public.inventory_adjustments)
RETURNS TABLE (sku text, batch_lot text, quantity integer, quarantined boolean)
LANGUAGE sql IMMUTABLE AS $$
    SELECT l->>'sku', l->>'batch_lot',
           (l->>CASE p_header.kind WHEN 'count' THEN 'counted' ELSE 'quantity' END)::numeric::integer,
           coalesce((l->>'quarantined')::boolean, false)
    FROM jsonb_array_elements(p_header.payload->'lines') l
$$;

-- Claims the reference for an adjustment or a count and returns its header: new (result NULL), or the
-- one recorded before with its result, after refusing the unknown and a reference reused for another
-- payload (IV412). Then locks the rows the lines name, in id order, as every writer of stock does.
CREATE OR REPLACE FUNCTION posledger_private.adjustment_claim(p_payload jsonb, p_kind text) RETURNS public.inventory_adjustments
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid := (p_payload->>'store_id')::uuid;
    v_header   public.inventory_adjustments;
BEGIN
    PERFORM posledger_private.refuse_missing(CASE
        WHEN NOT EXISTS (SELECT FROM public.stores WHERE id = v_store_id)
            THEN jsonb_build_array(jsonb_build_object('store_id', v_store_id))
        ELSE (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('sku', l->>'sku', 'batch', l->>'batch_lot')), '[]')
              FROM jsonb_array_elements(p_payload->'lines') l
              WHERE NOT EXISTS (SELECT FROM public.ocs_inventory i WHERE i.store_id = v_store_id
                                AND i.sku = l->>'sku' AND i.batch_lot IS NOT DISTINCT FROM l->>'batch_lot'))
        END, 'Adjust or count only batches this store has stocked; receive new stock instead.');

    INSERT INTO public.inventory_adjustments (store_id, reference, kind, reason_code, note, actor, payload)
    VALUES (v_store_id, p_payload->>'reference', p_kind, p_payload->>'reason_code', p_payload->>'note',
            p_payload->>'actor', p_payload)
    ON CONFLICT ON CONSTRAINT inventory_adjustments_reference_once DO NOTHING
    RETURNING * INTO v_header;
    IF NOT FOUND THEN
        SELECT * INTO v_header FROM public.inventory_adjustments
        WHERE store_id = v_store_id AND reference = p_payload->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_header.payload, p_payload, jsonb_build_object(
            'store_id', v_store_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header;
    END IF;
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = v_store_id AND i.sku IN (SELECT l->>'sku' FROM jsonb_array_elements(p_payload->'lines') l)
    ORDER BY i.id FOR NO KEY UPDATE;
    RETURN v_header;
END $$;

-- The writes of an adjustment or a count, under the locks. No bucket may go below zero: not the
-- quarantined units, not the rest (sellable units, or a held batch's units); IV409 lists every line
-- that would. A held batch's units change on hand but never become available; an active row's available
-- units become all its sellable units.
CREATE OR REPLACE FUNCTION posledger_private.adjustment_complete(p_header public.inventory_adjustments, p_deltas public.inventory_delta[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_short    jsonb;
    v_adjusted jsonb;
    v_dated    jsonb;
    v_result   jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', i.sku, 'batch', i.batch_lot, 'stock', b.stock,
                                                 'requested', b.delta, 'available', b.units) ORDER BY i.id), '[]')
    INTO v_short
    FROM unnest(p_deltas) d
    JOIN public.ocs_inventory i ON i.store_id = v_store_id AND i.id = d.inventory_id,
    -- Units held by reservations are promised: an adjustment cannot take them (cancel the reservation).
    LATERAL (VALUES ('sellable', coalesce(d.sellable, 0), i.quantity_on_hand - i.quantity_quarantined - i.quantity_reserved),
                    ('quarantined', coalesce(d.quarantined, 0), i.quantity_quarantined)) AS b(stock, delta, units)
    WHERE b.units + b.delta < 0;
    IF v_short <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV409', MESSAGE = 'insufficient stock: the adjustment would go below zero',
            DETAIL = jsonb_build_object('short_lines', v_short)::text,
            HINT = 'Take out at most the units each batch holds (sellable or quarantined); units reserved are not sellable until their reservation is completed, cancelled or expires.';
    END IF;

    WITH adjusted AS (
        UPDATE public.ocs_inventory i
        SET quantity_on_hand = i.quantity_on_hand + coalesce(d.sellable, 0) + coalesce(d.quarantined, 0),
            quantity_quarantined = i.quantity_quarantined + coalesce(d.quarantined, 0),
            -- Set, not shifted: a row opened by a bare INSERT has nothing available (the column's default)
            -- and shifting it went below zero (a raw 23514); a count is what repairs such a row. With no
            -- An active row's available units are its units on hand neither quarantined nor reserved.
            -- A searched CASE: Citus mis-plans a simple CASE x WHEN ... in DML (its issue 2862).
            quantity_available = CASE WHEN i.status = 'active'
                                     THEN i.quantity_on_hand + coalesce(d.sellable, 0) - i.quantity_quarantined
                                          - i.quantity_reserved
                                     ELSE 0 END,
            updated_at = now(),
            -- The ledger trigger labels its rows for this adjustment with this (_triggers.sql).
            movement = jsonb_build_object('type', 'adjustment', 'reason_code', p_header.reason_code,
                                          'reference_type', 'inventory_adjustment', 'reference_id', p_header.id,
                                          'notes', p_header.note, 'actor', p_header.actor)
        FROM unnest(p_deltas) d
        WHERE i.store_id = v_store_id AND i.id = d.inventory_id
          AND (coalesce(d.sellable, 0) <> 0 OR coalesce(d.quarantined, 0) <> 0
               OR (i.status = 'active'
                   AND i.quantity_available <> i.quantity_on_hand - i.quantity_quarantined - i.quantity_reserved))
        RETURNING i.id, i.sku, i.batch_lot, coalesce(d.sellable, 0) + coalesce(d.quarantined, 0) AS quantity,
                  i.quantity_on_hand, i.quantity_available, i.quantity_quarantined
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sku, 'batch', batch_lot, 'quantity', quantity,
                                                 'quantity_on_hand', quantity_on_hand,
                                                 'quantity_available', quantity_available,
                                                 'quantity_quarantined', quantity_quarantined) ORDER BY id), '[]')
    INTO v_adjusted FROM adjusted;
    v_dated := posledger_private.adjustment_expiry_dates(p_header);

    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'reference', p_header.reference, 'kind', p_header.kind,
        'reason_code', p_header.reason_code, 'timestamp', p_header.created_at, 'replayed', false,
        'adjustments', v_adjusted) || jsonb_strip_nulls(jsonb_build_object('expiry_dates', v_dated));
    UPDATE public.inventory_adjustments SET result = v_result WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;

-- An adjustment's line may set (or correct) a batch's expiry date, with or without moving units: the
-- adjustment's reference, reason, note and actor are its record. Returns [{sku, batch, expiry_date}], or
-- NULL when no line sets one (a count never does). Under the locks adjustment_claim took.
CREATE OR REPLACE FUNCTION posledger_private.adjustment_expiry_dates(p_header public.inventory_adjustments)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_skus     text[];
    v_lots     text[];
    v_dates    date[];
    v_dated    jsonb;
BEGIN
    -- The dates are read before the UPDATE: Citus refuses a STABLE function (the text-to-date cast) of a
    -- column inside one.
    SELECT array_agg(l->>'sku'), array_agg(l->>'batch_lot'), array_agg((l->>'expiry_date')::date)
    INTO v_skus, v_lots, v_dates
    FROM jsonb_array_elements(p_header.payload->'lines') l
    WHERE posledger_private.json_is_given(l->'expiry_date');
    WITH dated AS (
        UPDATE public.ocs_inventory i SET expiry_date = d.expiry_date, updated_at = now()
        FROM unnest(v_skus, v_lots, v_dates) AS d(sku, batch_lot, expiry_date)
        WHERE i.store_id = v_store_id AND i.sku = d.sku AND i.batch_lot IS NOT DISTINCT FROM d.batch_lot
        RETURNING i.id, i.sku, i.batch_lot, i.expiry_date)
    SELECT jsonb_agg(jsonb_build_object('sku', sku, 'batch', batch_lot, 'expiry_date', expiry_date) ORDER BY id)
    INTO v_dated FROM dated;
    RETURN v_dated;
END $$;
