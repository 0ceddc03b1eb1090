-- return_pos_sale(jsonb) returns jsonb: a partial return or a whole-order void, all or nothing.
-- Units go back to the batches they were sold from, never more than sold minus already returned;
-- loyalty points come back in proportion. Read top to bottom: entry first, then its helpers.

CREATE OR REPLACE FUNCTION return_pos_sale(p_return jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.pos_return_record(p_return);
EXCEPTION
    WHEN lock_not_available THEN
        PERFORM posledger_private.refuse_busy(SQLERRM);
        RETURN NULL;  -- not reached: refuse_busy raises
    WHEN numeric_value_out_of_range THEN
        PERFORM posledger_private.refuse_overflow(SQLERRM, 'return');
        RETURN NULL;  -- not reached: refuse_overflow raises
END $$;

REVOKE ALL ON FUNCTION return_pos_sale(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION return_pos_sale(jsonb) TO posledger_app;
COMMENT ON FUNCTION return_pos_sale(jsonb) IS 'A partial return or a whole-order void: units back to the batches they came from, points back in proportion. Idempotent by store and reference.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same call as the one-argument form.
CREATE OR REPLACE FUNCTION return_pos_sale(p_store_id uuid, p_return jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_return) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.pos_return_problems(p_return), 'return');
    END IF;
    RETURN public.return_pos_sale(p_return);
END $$;

REVOKE ALL ON FUNCTION return_pos_sale(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION return_pos_sale(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION return_pos_sale(uuid, jsonb) IS 'return_pos_sale routed by its store (the form Citus distributes).';

-- Validate, find the order, claim the reference, lock the order (returns of one order take turns, so
-- "already returned" cannot change under us), plan, lock the batches in id order, write. The order's
-- lock is FOR NO KEY UPDATE: the pos_returns row inserted just before holds a key-share lock on it
-- through its foreign key, which FOR UPDATE would wait for, deadlocking two returns of one order.
CREATE OR REPLACE FUNCTION posledger_private.pos_return_record(p_return jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid;
    v_order    public.pos_orders;
    v_return   public.pos_returns;
    v_plan     posledger_private.pos_return_plan;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.pos_return_problems(p_return), 'return');
    v_store_id := (p_return->>'store_id')::uuid;
    -- One index probe per way of naming the order (validation allows exactly one; order_id is a uuid):
    -- as one OR over a cast id, the lookup filtered every order of the store (docs/benchmarks.md, growth).
    SELECT * INTO v_order FROM public.pos_orders o
    WHERE o.store_id = v_store_id AND o.id = (p_return->>'order_id')::uuid
    UNION ALL
    SELECT * FROM public.pos_orders o
    WHERE o.store_id = v_store_id AND o.receipt_number = p_return->>'receipt_number';
    PERFORM posledger_private.refuse_missing(CASE WHEN v_order.id IS NULL THEN jsonb_build_array(jsonb_strip_nulls(
        jsonb_build_object('store_id', v_store_id, 'order_id', p_return->'order_id',
                           'receipt_number', p_return->'receipt_number'))) ELSE '[]' END,
        'Name an order of this store by order_id or receipt_number.');

    v_return := posledger_private.pos_return_claim(v_order, p_return);
    IF v_return.result IS NOT NULL THEN
        RETURN v_return.result || '{"replayed": true}';
    END IF;

    PERFORM FROM public.pos_orders WHERE store_id = v_store_id AND id = v_order.id FOR NO KEY UPDATE;
    v_plan := posledger_private.pos_return_plan(v_order, p_return);
    PERFORM posledger_private.refuse_missing(v_plan.unknown, 'Name line numbers (and batches) of this order.');
    IF v_plan.excess <> '[]' OR cardinality(v_plan.lines) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'IV410', MESSAGE = 'over-return: more than was sold and not yet returned',
            DETAIL = jsonb_build_object('over_returned', v_plan.excess, 'order_id', v_order.id)::text,
            HINT = 'Return at most what each line sold minus what earlier returns took back.';
    END IF;
    PERFORM FROM public.ocs_inventory
    WHERE store_id = v_store_id AND id IN (SELECT l.inventory_id FROM unnest(v_plan.lines) l)
    ORDER BY id FOR NO KEY UPDATE;
    RETURN posledger_private.pos_return_complete(v_order, v_return, v_plan.lines);
END $$;

-- Claims the return's reference for the store: the new return (result NULL), or the one recorded before
-- with its result, after refusing a reference reused for another payload (IV412).
CREATE OR REPLACE FUNCTION posledger_private.pos_return_claim(p_order public.pos_orders, p_return jsonb)
RETURNS public.pos_returns
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_order.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_order.store_id;
    v_return public.pos_returns;
BEGIN
    INSERT INTO public.pos_returns (store_id, order_id, reference, kind, reason, actor, payload)
    VALUES (v_store_id, p_order.id, p_return->>'reference',
            CASE WHEN (p_return->>'void')::boolean THEN 'void' ELSE 'return' END,
            p_return->>'reason', p_return->>'cashier_id', p_return)
    ON CONFLICT ON CONSTRAINT pos_returns_reference_once DO NOTHING
    RETURNING * INTO v_return;
    IF NOT FOUND THEN
        SELECT * INTO v_return FROM public.pos_returns
        WHERE store_id = v_store_id AND reference = p_return->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_return.payload, p_return, jsonb_build_object(
            'store_id', v_store_id, 'reference', v_return.reference, 'id', v_return.id));
    END IF;
    RETURN v_return;
END $$;

-- Every problem of the payload at once, as [{field, problem}]; [] for a valid return.
CREATE OR REPLACE FUNCTION posledger_private.pos_return_problems(p_return jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    WITH ret AS (
        SELECT CASE jsonb_typeof(p_return) WHEN 'object' THEN p_return ELSE '{}' END AS r
    ), problem AS (
        SELECT c.field, c.problem, c.ord
        FROM ret, LATERAL (VALUES
            (0, '$', 'the return must be a JSON object', jsonb_typeof(p_return) IS DISTINCT FROM 'object'),
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(r->'store_id')),
            (2, 'reference', 'is required and must be a non-empty string: the idempotency key of this return',
                NOT posledger_private.json_is_text(r->'reference')),
            (20, 'reference', 'must be at most 200 characters', posledger_private.json_is_long(r->'reference')),
            (21, 'receipt_number', 'must be at most 200 characters', posledger_private.json_is_long(r->'receipt_number')),
            (3, 'order_id', 'give exactly one of order_id (a uuid) and receipt_number (a non-empty string)',
                posledger_private.json_is_given(r->'order_id') = posledger_private.json_is_given(r->'receipt_number')
                OR (posledger_private.json_is_given(r->'order_id') AND NOT posledger_private.json_is_uuid(r->'order_id'))
                OR (posledger_private.json_is_given(r->'receipt_number') AND NOT posledger_private.json_is_text(r->'receipt_number'))),
            (4, 'void', 'must be true or false when given',
                posledger_private.json_is_given(r->'void') AND NOT posledger_private.json_is_boolean(r->'void')),
            (5, 'lines', format('is required for a return and must be an array of 1 to %s lines; a void (true) takes none',
                                posledger_private.max_lines()),
                CASE WHEN r->'void' = 'true' THEN posledger_private.json_is_given(r->'lines') AND r->'lines' <> '[]'
                     ELSE NOT posledger_private.json_is_lines(r->'lines')
                END),
            (6, 'reason', 'must be a non-empty string when given',
                posledger_private.json_is_given(r->'reason') AND NOT posledger_private.json_is_text(r->'reason')),
            (7, 'cashier_id', 'must be a non-empty string when given',
                posledger_private.json_is_given(r->'cashier_id') AND NOT posledger_private.json_is_text(r->'cashier_id'))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed
        UNION ALL
        SELECT format('lines[%s].%s', i.n - 1, c.field), c.problem, 100 * i.n + c.ord
        -- The lines naming one line_no are counted by a window, in n log n, not by comparing every pair.
        FROM ret, LATERAL (
                SELECT l.line, l.n, count(*) OVER (PARTITION BY l.line->'line_no') AS naming
                FROM jsonb_array_elements(posledger_private.json_lines(r->'lines')) WITH ORDINALITY AS l(line, n)) i,
             LATERAL (VALUES
                (1, 'line_no', 'must be a whole number from 1 to 1000000, once per return',
                    NOT posledger_private.json_is_number(i.line->'line_no', 1, 1000000, true) OR i.naming > 1),
                (2, 'quantity', 'must be a whole number from 1 to 1000000',
                    NOT posledger_private.json_is_number(i.line->'quantity', 1, 1000000, true)),
                (3, 'batch_lot', 'must be a non-empty string when given',
                    posledger_private.json_is_given(i.line->'batch_lot') AND NOT posledger_private.json_is_text(i.line->'batch_lot')),
                (4, 'defective', 'must be true or false when given',
                    posledger_private.json_is_given(i.line->'defective') AND NOT posledger_private.json_is_boolean(i.line->'defective'))
             ) AS c(ord, field, problem, failed)
        WHERE c.failed
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
    FROM problem
$$;

-- What goes back where: lines (one per order line row it takes units back to, in order line order),
-- excess and unknown. Each order line row (a line and a batch it sold from) can take back what it sold
-- minus what earlier returns took. A return line takes from the line's newest batch first (the reverse
-- of the sale's FEFO order), or only from the batch it names; a void takes everything left. excess
-- lists the return lines asking for more than is left; unknown the line numbers (and batches) this
-- order does not have. PL/pgSQL: Citus cannot plan a LANGUAGE sql function's parameterised query on its
-- tables.
CREATE OR REPLACE FUNCTION posledger_private.pos_return_plan(p_order public.pos_orders, p_return jsonb)
RETURNS posledger_private.pos_return_plan
LANGUAGE plpgsql STABLE AS $$
DECLARE
    -- Plain variables, not p_order's fields: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_order.store_id;
    v_order_id uuid := p_order.id;
BEGIN
    RETURN (WITH request AS (
        SELECT (r.line->>'line_no')::numeric::integer AS line_no, r.line->>'batch_lot' AS batch_lot,
               (r.line->>'quantity')::numeric::integer AS quantity,
               coalesce((r.line->>'defective')::boolean, false) AS defective
        FROM jsonb_array_elements(CASE WHEN p_return->'void' = 'true' THEN '[]' ELSE p_return->'lines' END) r(line)
    ), sold AS (
        SELECT ol.id, ol.line_no, ol.sku, ol.batch_lot, ol.inventory_id,
               ol.quantity - coalesce((SELECT sum(rl.quantity) FROM public.pos_return_lines rl
                                       WHERE rl.store_id = ol.store_id AND rl.order_line_id = ol.id), 0) AS left_,
               -- the reverse of the sale's FEFO order (pos_sale_allocate); NULL for a lenient shortfall
               row_number() OVER (PARTITION BY ol.line_no ORDER BY i.batch_lot IS NOT NULL DESC,
                                  i.packaged_on_date DESC NULLS LAST, i.id DESC) AS newest_first
        FROM public.pos_order_lines ol
        LEFT JOIN public.ocs_inventory i ON i.store_id = ol.store_id AND i.id = ol.inventory_id
        WHERE ol.store_id = v_store_id AND ol.order_id = v_order_id
    ), wanted AS (
        SELECT s.id, s.line_no, s.sku, s.batch_lot, s.inventory_id, s.left_, r.defective,
               least(s.left_, greatest(r.quantity - (sum(s.left_) OVER w - s.left_), 0)) AS quantity
        FROM sold s JOIN request r ON r.line_no = s.line_no AND (r.batch_lot IS NULL OR r.batch_lot = s.batch_lot)
        WHERE s.inventory_id IS NOT NULL  -- a lenient sale's shortfall came from no batch, so none takes it back
        WINDOW w AS (PARTITION BY s.line_no ORDER BY s.newest_first)
        UNION ALL
        SELECT s.id, s.line_no, s.sku, s.batch_lot, s.inventory_id, s.left_, false, s.left_
        FROM sold s WHERE p_return->'void' = 'true' AND s.inventory_id IS NOT NULL
    ), matched AS (
        -- Per return line, in one join rather than a subquery per line: the order line rows it names
        -- (none: unknown) and what they have left to take back.
        SELECT r.line_no, r.batch_lot, r.quantity, count(s.id) AS known,
               coalesce(sum(s.left_) FILTER (WHERE s.inventory_id IS NOT NULL), 0) AS returnable
        FROM request r
        LEFT JOIN sold s ON s.line_no = r.line_no AND (r.batch_lot IS NULL OR r.batch_lot = s.batch_lot)
        GROUP BY r.line_no, r.batch_lot, r.quantity
    )
    SELECT ROW(
        ARRAY(SELECT ROW(id, inventory_id, line_no, sku, batch_lot, quantity::integer, defective)
                         ::posledger_private.pos_return_line
              FROM wanted WHERE quantity > 0 ORDER BY id),
        (SELECT coalesce(jsonb_agg(jsonb_build_object('line_no', line_no, 'batch', batch_lot,
                                                                'requested', quantity, 'returnable', returnable)
                                             ORDER BY line_no), '[]')
                   FROM matched WHERE known > 0 AND quantity > returnable),
        (SELECT coalesce(jsonb_agg(jsonb_build_object('order_id', v_order_id, 'line_no', line_no,
                                                                 'batch', batch_lot) ORDER BY line_no), '[]')
                    FROM matched WHERE known = 0))::posledger_private.pos_return_plan);
END $$;

-- The writes, under the locks: units back on hand (sellable in an active batch, quarantined when
-- defective), one return line per order line row, the void's order status, points, and the result.
CREATE OR REPLACE FUNCTION posledger_private.pos_return_complete(p_order public.pos_orders, p_return public.pos_returns,
                                                           p_lines posledger_private.pos_return_line[])
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_order.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_order.store_id;
    v_restocked jsonb;
    v_result    jsonb;
BEGIN
    WITH line AS (
        SELECT * FROM unnest(p_lines)
    ), per_row AS (
        SELECT inventory_id, sum(quantity)::integer AS total,
               coalesce(sum(quantity) FILTER (WHERE defective), 0)::integer AS defective
        FROM line GROUP BY inventory_id
    ), restocked AS (
        UPDATE public.ocs_inventory i
        SET quantity_on_hand = i.quantity_on_hand + r.total,
            quantity_quarantined = i.quantity_quarantined + r.defective,
            quantity_available = i.quantity_available
                                 -- A searched CASE: Citus mis-plans a simple CASE x WHEN ... in DML (its issue 2862).
                                 + CASE WHEN i.status = 'active' THEN r.total - r.defective ELSE 0 END,
            updated_at = now(),
            -- The ledger trigger labels its rows for this return with this (_triggers.sql).
            movement = jsonb_build_object('type', p_return.kind, 'reference_type', 'pos_order',
                                          'reference_id', p_order.id, 'actor', p_return.actor,
                                          'notes', format('%s %s of receipt %s', p_return.kind, p_return.reference,
                                                          p_order.receipt_number))
        FROM per_row r
        WHERE i.store_id = v_store_id AND i.id = r.inventory_id
        RETURNING i.id, i.sku, i.batch_lot, i.status, i.quantity_on_hand, i.quantity_available, i.quantity_quarantined
    ), recorded AS (
        INSERT INTO public.pos_return_lines (store_id, return_id, order_line_id, inventory_id, quantity, defective)
        SELECT v_store_id, p_return.id, order_line_id, inventory_id, quantity, defective FROM line
    )
    SELECT jsonb_agg(jsonb_build_object('sku', sku, 'batch', batch_lot, 'status', status,
                                        'quantity_on_hand', quantity_on_hand, 'quantity_available', quantity_available,
                                        'quantity_quarantined', quantity_quarantined) ORDER BY id)
    INTO v_restocked FROM restocked;

    UPDATE public.pos_orders SET status = 'voided'
    WHERE p_return.kind = 'void' AND store_id = v_store_id AND id = p_order.id;
    v_result := jsonb_build_object(
        'id', p_return.id, 'store_id', v_store_id, 'reference', p_return.reference, 'kind', p_return.kind,
        'order_id', p_order.id, 'receipt_number', p_order.receipt_number, 'timestamp', p_return.created_at,
        'replayed', false,
        'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', l.sku, 'batch', l.batch_lot,
                                                      'quantity', l.quantity, 'defective', l.defective))
                  FROM unnest(p_lines) l),
        'restocked', v_restocked,
        'loyalty', posledger_private.pos_return_reverse_points(p_order, p_return));
    UPDATE public.pos_returns SET result = v_result WHERE store_id = v_store_id AND id = p_return.id;
    RETURN v_result;
END $$;

-- The order's points come back in proportion to the units returned so far, less what earlier returns
-- already took (floor, so rounding never takes back a point too many); a void takes back the rest. They
-- come off the customer's account at the order's store, which never goes below zero: what the customer
-- already spent of it is reported as the shortfall.
CREATE OR REPLACE FUNCTION posledger_private.pos_return_reverse_points(p_order public.pos_orders, p_return public.pos_returns)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_due      bigint;
    v_balance  bigint;
    v_reversed bigint;
    v_store_id uuid := p_order.store_id;   -- a plain variable: Citus prunes shards by a scalar only
BEGIN
    IF p_order.user_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT (CASE WHEN p_return.kind = 'void' THEN e.earned ELSE floor(e.earned * r.returned / s.sold) END
            - d.already)::bigint
    INTO v_due
    FROM (SELECT coalesce(sum(points), 0) AS earned FROM public.loyalty_transactions
          WHERE store_id = v_store_id AND order_id = p_order.id AND transaction_type = 'earn') e,
         (SELECT sum(quantity) AS sold FROM public.pos_order_lines
          WHERE store_id = v_store_id AND order_id = p_order.id) s,
         (SELECT coalesce(sum(rl.quantity), 0) AS returned FROM public.pos_return_lines rl
          JOIN public.pos_returns pr ON pr.store_id = rl.store_id AND pr.id = rl.return_id
          WHERE pr.store_id = v_store_id AND pr.order_id = p_order.id) r,
         (SELECT coalesce(sum(points_due), 0) AS already FROM public.pos_returns
          WHERE store_id = v_store_id AND order_id = p_order.id AND id <> p_return.id) d;

    SELECT points INTO v_balance FROM public.loyalty_accounts
    WHERE store_id = v_store_id AND user_id = p_order.user_id FOR NO KEY UPDATE;
    v_reversed := least(v_due, coalesce(v_balance, 0));
    -- VALUES, not a SELECT: Citus routes an INSERT ... SELECT through the coordinator's INSERT/SELECT path.
    IF v_reversed > 0 THEN
        UPDATE public.loyalty_accounts SET points = points - v_reversed, updated_at = now()
        WHERE store_id = v_store_id AND user_id = p_order.user_id;
        INSERT INTO public.loyalty_transactions (user_id, store_id, order_id, return_id, transaction_type, points,
                                                 balance_after)
        VALUES (p_order.user_id, v_store_id, p_order.id, p_return.id, 'reversal', -v_reversed,
                v_balance - v_reversed);
    END IF;
    UPDATE public.pos_returns SET points_due = v_due WHERE store_id = v_store_id AND id = p_return.id;
    RETURN jsonb_build_object('user_id', p_order.user_id, 'points_due', v_due, 'points_reversed', v_reversed,
                              'shortfall', v_due - v_reversed, 'balance', coalesce(v_balance, 0) - v_reversed);
END $$;
