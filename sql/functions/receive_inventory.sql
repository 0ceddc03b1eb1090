-- receive_inventory(jsonb) returns jsonb: one OCS shipment into one store, all or nothing.
-- Read top to bottom: the entry function first, then its private helpers in the order it calls them.

-- The public entry, built like record_pos_sale's (SECURITY DEFINER, pinned search_path, bounded lock
-- wait): the same shipment id twice changes nothing the second time.
CREATE OR REPLACE FUNCTION receive_inventory(p_shipment jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.receiving_record(p_shipment);
EXCEPTION
    WHEN lock_not_available THEN
        PERFORM posledger_private.refuse_busy(SQLERRM);
        RETURN NULL;  -- not reached: refuse_busy raises
    WHEN numeric_value_out_of_range THEN
        PERFORM posledger_private.refuse_overflow(SQLERRM, 'shipment');
        RETURN NULL;  -- not reached: refuse_overflow raises
END $$;

REVOKE ALL ON FUNCTION receive_inventory(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_inventory(jsonb) TO posledger_app;
COMMENT ON FUNCTION receive_inventory(jsonb) IS 'One OCS shipment into one store: creates or tops up batch rows, records variances; a held lot arrives held. Idempotent by store and shipment_id.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same call as the one-argument form.
CREATE OR REPLACE FUNCTION receive_inventory(p_store_id uuid, p_shipment jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_shipment) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.receiving_problems(p_shipment), 'shipment');
    END IF;
    RETURN public.receive_inventory(p_shipment);
END $$;

REVOKE ALL ON FUNCTION receive_inventory(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION receive_inventory(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION receive_inventory(uuid, jsonb) IS 'receive_inventory routed by its store (the form Citus distributes).';

-- Validate, claim the shipment id, lock what exists, then create or top up one row per sku+batch.
CREATE OR REPLACE FUNCTION posledger_private.receiving_record(p_shipment jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid;
    v_shipment public.ocs_shipments;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.receiving_problems(p_shipment), 'shipment');
    v_store_id := (p_shipment->>'store_id')::uuid;
    PERFORM posledger_private.existing_store(v_store_id);

    v_shipment := posledger_private.receiving_claim(v_store_id, p_shipment);
    IF v_shipment.result IS NOT NULL THEN
        RETURN v_shipment.result || '{"replayed": true}';
    END IF;

    -- The lots first (a status change of one takes turns with its receipts: lock_lots), then the rows
    -- (stock_batches).
    PERFORM posledger_private.lock_lots(ARRAY(SELECT l->>'batch_lot' FROM jsonb_array_elements(p_shipment->'lines') l),
                                       false);
    RETURN posledger_private.receiving_complete(v_shipment);
END $$;

-- Claims the shipment id for the store: the new shipment (result NULL), or the one received before with
-- its result, after refusing an id reused for another payload (IV412).
CREATE OR REPLACE FUNCTION posledger_private.receiving_claim(p_store_id uuid, p_shipment jsonb)
RETURNS public.ocs_shipments
LANGUAGE plpgsql AS $$
DECLARE
    v_shipment public.ocs_shipments;
BEGIN
    INSERT INTO public.ocs_shipments (store_id, ocs_shipment_id, received_by, payload)
    VALUES (p_store_id, p_shipment->>'shipment_id', p_shipment->>'received_by', p_shipment)
    ON CONFLICT ON CONSTRAINT ocs_shipments_received_once DO NOTHING
    RETURNING * INTO v_shipment;
    IF NOT FOUND THEN
        SELECT * INTO v_shipment FROM public.ocs_shipments
        WHERE store_id = p_store_id AND ocs_shipment_id = p_shipment->>'shipment_id';
        PERFORM posledger_private.refuse_other_payload(v_shipment.payload, p_shipment, jsonb_build_object(
            'store_id', p_store_id, 'shipment_id', v_shipment.ocs_shipment_id, 'id', v_shipment.id));
    END IF;
    RETURN v_shipment;
END $$;

-- Every problem of the payload at once, as [{field, problem}]; [] for a valid shipment.
CREATE OR REPLACE FUNCTION posledger_private.receiving_problems(p_shipment jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    WITH shipment AS (
        SELECT CASE jsonb_typeof(p_shipment) WHEN 'object' THEN p_shipment ELSE '{}' END AS s
    ), problem AS (
        SELECT c.field, c.problem, c.ord
        FROM shipment, LATERAL (VALUES
            (0, '$', 'the shipment must be a JSON object', jsonb_typeof(p_shipment) IS DISTINCT FROM 'object'),
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(s->'store_id')),
            (2, 'shipment_id', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(s->'shipment_id')),
            (5, 'shipment_id', 'must be at most 200 characters', posledger_private.json_is_long(s->'shipment_id')),
            (3, 'received_by', 'must be a non-empty string when given',
                posledger_private.json_is_given(s->'received_by') AND NOT posledger_private.json_is_text(s->'received_by')),
            (4, 'lines', format('is required and must be an array of 1 to %s lines', posledger_private.max_lines()),
                NOT posledger_private.json_is_lines(s->'lines'))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed
        UNION ALL
        SELECT format('lines[%s].%s', i.n - 1, c.field), c.problem, 100 * i.n + c.ord
        FROM shipment, jsonb_array_elements(posledger_private.json_lines(s->'lines')) WITH ORDINALITY AS i(line, n),
             LATERAL (VALUES
                (1, 'sku', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(i.line->'sku')),
                (2, 'batch_lot', 'is required and must be a non-empty string',
                    NOT posledger_private.json_is_text(i.line->'batch_lot')),
                (3, 'quantity_shipped', 'must be a whole number from 0 to 1000000',
                    NOT posledger_private.json_is_number(i.line->'quantity_shipped', 0, 1000000, true)),
                (4, 'quantity_received', 'must be a whole number from 0 to 1000000',
                    NOT posledger_private.json_is_number(i.line->'quantity_received', 0, 1000000, true)),
                (5, 'case_gtin', 'must be a GTIN-8, -12, -13 or -14 (digits, valid GS1 check digit) when given',
                    posledger_private.json_is_given(i.line->'case_gtin')
                    AND posledger_private.gtin14(CASE jsonb_typeof(i.line->'case_gtin') WHEN 'string'
                                      THEN i.line->>'case_gtin' END) IS NULL),
                (6, 'each_gtin', 'must be a GTIN-8, -12, -13 or -14 (digits, valid GS1 check digit) when given',
                    posledger_private.json_is_given(i.line->'each_gtin')
                    AND posledger_private.gtin14(CASE jsonb_typeof(i.line->'each_gtin') WHEN 'string'
                                      THEN i.line->>'each_gtin' END) IS NULL),
                (7, 'packaged_on_date', 'must be a date (YYYY-MM-DD) when given',
                    posledger_private.json_is_given(i.line->'packaged_on_date')
                    AND NOT posledger_private.json_is_date(i.line->'packaged_on_date')),
                (8, 'expiry_date', 'must be a date (YYYY-MM-DD) when given',
                    posledger_private.json_is_given(i.line->'expiry_date')
                    AND NOT posledger_private.json_is_date(i.line->'expiry_date')),
                (9, 'sku', 'must be at most 200 characters', posledger_private.json_is_long(i.line->'sku')),
                (10, 'batch_lot', 'must be at most 200 characters', posledger_private.json_is_long(i.line->'batch_lot')),
                (11, 'unit_cost', 'must be a number from 0 to 1000000 when given (what one unit cost the store)',
                    posledger_private.json_is_given(i.line->'unit_cost')
                    AND NOT posledger_private.json_is_number(i.line->'unit_cost', 0, 1000000))
             ) AS c(ord, field, problem, failed)
        WHERE c.failed
        UNION ALL
        -- Per sku and batch, over all its lines (one stock row takes them all): one set of GTINs and
        -- date, and a bounded sum, so the row's arithmetic cannot overflow (22003).
        SELECT format('lines[%s]', b.first_n - 1), c.problem, 100 * b.first_n + 90 + c.ord
        FROM (SELECT min(i.n) AS first_n,
                     count(DISTINCT jsonb_build_array(i.line->'case_gtin', i.line->'each_gtin', i.line->'packaged_on_date',
                                                      i.line->'expiry_date', i.line->'unit_cost')) AS variants,
                     sum(CASE WHEN posledger_private.json_is_number(i.line->'quantity_received', 0, 1000000, true)
                              THEN (i.line->>'quantity_received')::numeric END) AS received
              FROM shipment, jsonb_array_elements(posledger_private.json_lines(s->'lines')) WITH ORDINALITY AS i(line, n)
              WHERE jsonb_typeof(i.line) = 'object'
              GROUP BY i.line->'sku', i.line->'batch_lot') b,
             LATERAL (VALUES
                (1, 'ships the same sku and batch as another line with a different GTIN, packaged_on_date, expiry_date or unit_cost',
                    b.variants > 1),
                (2, 'receives more than 1000000 units of one sku and batch across its lines', b.received > 1000000)
             ) AS c(ord, problem, failed)
        WHERE c.failed
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
    FROM problem
$$;

-- The writes, under the locks: rows created or topped up (stock_batches), one shipment line per payload
-- line, and the result a replay returns. Lines of the same sku and batch (several containers) are summed
-- first: one row, one ledger row per shipment.
CREATE OR REPLACE FUNCTION posledger_private.receiving_complete(p_shipment public.ocs_shipments) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_shipment.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_shipment.store_id;
    v_stocked  jsonb;
    v_result   jsonb;
BEGIN
    v_stocked := posledger_private.stock_batches(v_store_id, (
            SELECT jsonb_agg(to_jsonb(b))
            FROM (SELECT sku, batch_lot, sum(received) AS units, min(case_gtin) AS case_gtin,
                         min(each_gtin) AS each_gtin, min(packaged_on_date) AS packaged_on_date,
                         min(expiry_date) AS expiry_date, min(unit_cost) AS unit_cost
                  FROM posledger_private.receiving_lines(p_shipment.payload) GROUP BY sku, batch_lot) b),
        -- The ledger trigger labels its rows for this receipt with this (_triggers.sql).
        jsonb_build_object('type', 'receipt', 'reference_type', 'ocs_shipment', 'reference_id', p_shipment.id,
                           'notes', 'OCS shipment ' || p_shipment.ocs_shipment_id, 'actor', p_shipment.received_by),
        'OCS shipment ' || p_shipment.ocs_shipment_id);
    WITH recorded AS (
        INSERT INTO public.ocs_shipment_lines (store_id, shipment_id, line_no, inventory_id, sku, batch_lot,
                                               quantity_shipped, quantity_received, unit_cost)
        SELECT v_store_id, p_shipment.id, l.line_no, (s->>'id')::bigint, l.sku, l.batch_lot, l.shipped, l.received,
               l.unit_cost
        FROM posledger_private.receiving_lines(p_shipment.payload) l
        JOIN jsonb_array_elements(v_stocked) s ON s->>'sku' = l.sku AND s->>'batch_lot' = l.batch_lot
        RETURNING line_no, sku, batch_lot, quantity_shipped, quantity_received
    )
    SELECT jsonb_build_object(
        'id', p_shipment.id, 'store_id', v_store_id, 'shipment_id', p_shipment.ocs_shipment_id,
        'timestamp', p_shipment.created_at, 'replayed', false,
        'batches', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                                         'sku', s->'sku', 'batch', s->'batch_lot', 'status', s->'status',
                                         'quantity_on_hand', s->'quantity_on_hand',
                                         'quantity_available', s->'quantity_available', 'held_by', s->'held_by'))
                                     ORDER BY s->>'sku', s->>'batch_lot')
                    FROM jsonb_array_elements(v_stocked) s),
        'variances', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                 'line_no', line_no, 'sku', sku, 'batch', batch_lot, 'shipped', quantity_shipped,
                                 'received', quantity_received, 'variance', quantity_received - quantity_shipped)
                             ORDER BY line_no), '[]')
                      FROM recorded WHERE quantity_received <> quantity_shipped),
        'units_received', (SELECT sum(quantity_received) FROM recorded))
    INTO v_result;
    UPDATE public.ocs_shipments SET result = v_result WHERE store_id = v_store_id AND id = p_shipment.id;
    RETURN v_result;
END $$;

-- A shipment's payload lines, typed (validated before: receiving_problems).
CREATE OR REPLACE FUNCTION posledger_private.receiving_lines(p_payload jsonb)
RETURNS TABLE (line_no integer, sku text, batch_lot text, case_gtin text, each_gtin text, packaged_on_date date,
               expiry_date date, unit_cost numeric, shipped integer, received integer)
LANGUAGE sql IMMUTABLE AS $$
    SELECT l.n::integer, l.line->>'sku', l.line->>'batch_lot',
           posledger_private.gtin14(l.line->>'case_gtin'), posledger_private.gtin14(l.line->>'each_gtin'),
           (l.line->>'packaged_on_date')::date, (l.line->>'expiry_date')::date,
           round((l.line->>'unit_cost')::numeric, 4),
           (l.line->>'quantity_shipped')::numeric::integer, (l.line->>'quantity_received')::numeric::integer
    FROM jsonb_array_elements(p_payload->'lines') WITH ORDINALITY AS l(line, n)
$$;
