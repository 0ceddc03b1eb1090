-- record_pos_sale(jsonb) returns jsonb: one sale at the till, all or nothing (DESIGN.md sections 3-6).
-- Read top to bottom: the entry function first, then its private helpers in the order it calls them.

-- The public entry. It runs as the owner (SECURITY DEFINER: callers hold no table privileges) with a
-- pinned search_path, so nothing a caller plants in its own search_path is called instead of ours;
-- pg_temp is named last because unnamed it would be searched first. Its lock wait is bounded: a caller
-- never hangs behind a stuck till, and gets IV503, safe to retry since the receipt makes it idempotent.
-- Generic plans, as in every entry function: each statement is keyed by store and sku through an index,
-- so planning it afresh for each call's values buys nothing and cost the helpers most of their time
-- (docs/benchmarks.md: without, a sale ran at 0.72). On Citus, which plans a distributed statement only
-- with its parameters' values, migrate takes the setting off again (sql/citus/plan_cache.sql).
CREATE OR REPLACE FUNCTION record_pos_sale(p_sale jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
-- This clause only scopes apply_lock_timeout() to this call; see _shared.sql.
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.pos_sale_record(p_sale);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION record_pos_sale(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_pos_sale(jsonb) TO posledger_app;
COMMENT ON FUNCTION record_pos_sale(jsonb) IS 'One sale at the till, all or nothing: validates, locks its batches, deducts, ledgers, awards points; returns the result (DESIGN.md sections 3-4). Idempotent by store and receipt_number.';

-- The entry Citus distributes by store (docs/scaling.md; routed in _shared.sql). On one
-- server it is the same sale as the one-argument form.
CREATE OR REPLACE FUNCTION record_pos_sale(p_store_id uuid, p_sale jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_sale) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.pos_sale_problems(p_sale), 'sale');
    END IF;
    RETURN public.record_pos_sale(p_sale);
END $$;

REVOKE ALL ON FUNCTION record_pos_sale(uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_pos_sale(uuid, jsonb) TO posledger_app;
COMMENT ON FUNCTION record_pos_sale(uuid, jsonb) IS 'record_pos_sale routed by its store (the form Citus distributes); the store must be the payload''s.';

-- The sale itself, in the order its guarantees need: what needs no lock first, then the receipt claim,
-- the law, the stock locks, the allocation, and the writes.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_record(p_sale jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store   public.stores;
    v_store_id uuid;   -- v_store.id: Citus prunes shards by a plain variable only
    v_today   date;
    v_lines   posledger_private.pos_sale_line[];
    v_order   public.pos_orders;
    v_stock   public.ocs_inventory[];
    v_alloc   public.pos_sale_allocation[];
    v_short   jsonb;
    v_blocked jsonb;
    v_limits  jsonb;
    v_grams   numeric;
    v_plants  bigint;
    v_uncatalogued jsonb;
    v_checks  boolean;
    v_unlawful boolean;
BEGIN
    -- The payload's shape and its store first; then the receipt claim, before anything the catalogue
    -- decides (a scan's sku, the law), so that a retry of a recorded sale replays whatever the catalogue
    -- says now. Claiming makes a concurrent retry of the same sale wait here and then replay. Locks on
    -- stock are taken only after every check that needs none.
    PERFORM posledger_private.refuse_problems(posledger_private.pos_sale_problems(p_sale), 'sale');
    v_store := posledger_private.existing_store((p_sale->>'store_id')::uuid);
    v_store_id := v_store.id;
    v_order := posledger_private.pos_sale_claim(v_store, p_sale);
    IF v_order.result IS NOT NULL THEN
        RETURN v_order.result || '{"replayed": true}';
    END IF;

    -- A sale is judged by the store's day now; an offline one by the day it happened.
    v_today := posledger_private.store_date(v_store, CASE WHEN v_order.policy = 'offline' THEN v_order.occurred_at
                                                          ELSE now() END);
    -- The lines, what they weigh, and whether any carries what only the lines can check (a scan, a price),
    -- in one statement: a plain sale pays no call for what it does not carry. Grams are rounded to the
    -- microgram: a derived unit (10 g of gummies / 15) is a repeating decimal cut at 20 digits, and 45 of
    -- them must weigh 30 g, not 30.00000000000000000015; 30.001 g is over 30 g.
    SELECT array_agg(l ORDER BY l.line_no),
           trim_scale(round(coalesce(sum(l.quantity * coalesce(l.dried_grams_per_unit, 0)), 0), 6)),
           coalesce(sum(l.quantity) FILTER (WHERE l.counts_toward = 'plants'), 0),
           coalesce(jsonb_agg(DISTINCT l.sku) FILTER (WHERE l.dried_grams_per_unit IS NULL), '[]'),
           bool_or(l.unit_price IS NOT NULL OR l.scanned_gtin IS NOT NULL) OR count(*) > v_store.max_sale_lines
    INTO v_lines, v_grams, v_plants, v_uncatalogued, v_checks
    FROM posledger_private.pos_sale_items(p_sale, v_today) l;
    v_limits := jsonb_build_object('limit_grams', v_store.purchase_limit_grams, 'dried_grams', v_grams,
                                   'plant_limit', v_store.plant_limit, 'plants', v_plants,
                                   'uncatalogued', v_uncatalogued);
    IF v_checks THEN
        PERFORM posledger_private.refuse_problems(posledger_private.pos_sale_line_problems(v_store, p_sale, v_lines), 'sale');
    END IF;
    -- An offline sale already happened: what the books lack or the law forbids becomes an exception
    -- (pos_sale_flag), never a refusal. Any other sale is refused for it.
    v_unlawful := v_grams > v_store.purchase_limit_grams OR v_plants > v_store.plant_limit
                  OR (v_uncatalogued <> '[]' AND v_store.uncatalogued_skus = 'refuse');
    IF v_order.policy <> 'offline' THEN
        PERFORM posledger_private.refuse_missing(posledger_private.pos_sale_missing(v_store_id, v_lines),
            'Stock a sku or batch in this store (receive it) before selling it.');
        IF v_unlawful THEN
            PERFORM posledger_private.pos_sale_refuse_unlawful(v_store, v_lines, v_limits);
        END IF;
    END IF;

    -- One statement, id order: two sales lock shared rows in the same order and cannot deadlock. A line
    -- naming its batch can take only that batch; a line without one may take any batch of its sku.
    -- The rows come back as they are once locked, and the checks and the allocation read only them.
    -- The lock's condition is on the row alone, ids computed beforehand: a row changed while the sale
    -- waited is re-checked on its new version, and a condition joining another scan can fail that
    -- re-check, leaving the row locked but out of the result (tests/test_concurrency.py). The ids come
    -- from two index-driven selects: as one OR, PostgreSQL filters every row of the store.
    SELECT ARRAY(
        SELECT i FROM public.ocs_inventory i
        WHERE i.store_id = v_store_id
          AND i.id = ANY (ARRAY(SELECT c.id FROM public.ocs_inventory c
                                WHERE c.store_id = v_store_id
                                  AND c.sku = ANY (ARRAY(SELECT l.sku FROM unnest(v_lines) l WHERE l.batch_lot IS NULL))
                                UNION ALL
                                SELECT c.id FROM public.ocs_inventory c JOIN unnest(v_lines) l
                                    ON c.store_id = v_store_id AND c.sku = l.sku AND c.batch_lot = l.batch_lot))
        ORDER BY i.id FOR NO KEY UPDATE) INTO v_stock;

    v_blocked := posledger_private.pos_sale_blocked(v_stock, v_lines, v_today);
    IF v_blocked <> '[]' AND v_order.policy <> 'offline' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV423', MESSAGE = 'batch blocked: a batch of this sale may not be sold',
            DETAIL = jsonb_build_object('blocked', v_blocked)::text,
            HINT = 'Take the item off the sale; a held batch is released with set_batch_status, an expired one never.';
    END IF;

    SELECT ARRAY(SELECT a FROM posledger_private.pos_sale_allocate(v_stock, v_lines, v_today) a) INTO v_alloc;
    v_short := posledger_private.pos_sale_shortfalls(v_lines, v_alloc);
    IF v_short <> '[]' AND v_order.policy = 'strict' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV409', MESSAGE = 'insufficient stock: the sale was not recorded',
            DETAIL = jsonb_build_object('short_lines', v_short)::text,
            HINT = 'Sell at most the available quantity, or record the sale with an authorised lenient policy.';
    END IF;

    IF v_order.status <> 'completed' THEN
        RETURN posledger_private.reservation_hold(v_order, v_alloc, v_limits);
    END IF;
    IF v_order.policy = 'offline' AND (v_unlawful OR v_blocked <> '[]') THEN
        PERFORM posledger_private.pos_sale_flag(v_order, v_store, v_blocked, v_limits);
    END IF;
    RETURN posledger_private.pos_sale_complete(v_order, v_lines, v_alloc, v_short, v_limits, false);
END $$;

-- Every problem of the payload's shape at once, as [{field, problem}]; [] for a valid sale. A scan is
-- parsed here, so a bad barcode is named with the rest.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_problems(p_sale jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (WITH sale AS (
            SELECT CASE jsonb_typeof(p_sale) WHEN 'object' THEN p_sale ELSE '{}' END AS s
        ), problem AS (
            SELECT c.field, c.problem, c.ord
            FROM sale, LATERAL (VALUES
                (0, '$', 'the sale must be a JSON object', jsonb_typeof(p_sale) IS DISTINCT FROM 'object'),
                (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(s->'store_id')),
                (2, 'receipt_number', 'is required and must be a non-empty string',
                    NOT posledger_private.json_is_text(s->'receipt_number')),
                (3, 'user_id', 'must be a uuid when given',
                    posledger_private.json_is_given(s->'user_id') AND NOT posledger_private.json_is_uuid(s->'user_id')),
                (4, 'status', 'must be "completed", "reserved" or "parked" when given',
                    posledger_private.json_is_given(s->'status') AND s->'status' NOT IN ('"completed"', '"reserved"', '"parked"')),
                (5, 'policy', 'must be "strict", "lenient" or "offline" when given',
                    posledger_private.json_is_given(s->'policy') AND s->'policy' NOT IN ('"strict"', '"lenient"', '"offline"')),
                (12, 'policy', 'must be "strict" for a reservation: stock is promised only when it is there',
                    s->'status' IN ('"reserved"', '"parked"') AND s->'policy' IN ('"lenient"', '"offline"')),
                (13, 'occurred_at', 'must be an ISO 8601 time with its offset (2026-11-30T14:05:00-05:00)'
                                    || CASE WHEN s->'policy' = '"offline"' THEN ', required for an offline sale' ELSE ' when given' END,
                    (posledger_private.json_is_given(s->'occurred_at') OR s->'policy' = '"offline"')
                    AND NOT posledger_private.json_is_timestamp(s->'occurred_at')),
                (14, 'terminal_id', 'must be a non-empty string'
                                    || CASE WHEN s->'policy' = '"offline"' THEN ', required for an offline sale'
                                            ELSE ' when given (and with a terminal_sequence)' END,
                    (posledger_private.json_is_given(s->'terminal_id') OR s->'policy' = '"offline"'
                     OR posledger_private.json_is_given(s->'terminal_sequence'))
                    AND NOT posledger_private.json_is_text(s->'terminal_id')),
                (15, 'terminal_sequence', 'must be a whole number from 1 to 1000000000000000'
                                    || CASE WHEN s->'policy' = '"offline"' THEN ', required for an offline sale' ELSE ' when given' END,
                    (posledger_private.json_is_given(s->'terminal_sequence') OR s->'policy' = '"offline"')
                    AND NOT posledger_private.json_is_number(s->'terminal_sequence', 1, 1e15, true)),
                (16, 'terminal_id', 'must be at most 200 characters', posledger_private.json_is_long(s->'terminal_id')),
                (17, 'occurred_at', 'is for a sale that already happened: a reservation starts when it is recorded',
                    s->'status' IN ('"reserved"', '"parked"') AND posledger_private.json_is_given(s->'occurred_at')),
                (6, 'authorized_by', 'is required for a lenient sale: who authorised it',
                    s->'policy' = '"lenient"' AND NOT posledger_private.json_is_text(s->'authorized_by')),
                (7, 'total', 'is required and must be a number from 0 to 1000000000',
                    NOT posledger_private.json_is_number(s->'total', 0, 1e9)),
                (8, 'subtotal', 'must be a number from 0 to 1000000000 when given',
                    posledger_private.json_is_given(s->'subtotal') AND NOT posledger_private.json_is_number(s->'subtotal', 0, 1e9)),
                (9, 'tax', 'must be a number from 0 to 1000000000 when given',
                    posledger_private.json_is_given(s->'tax') AND NOT posledger_private.json_is_number(s->'tax', 0, 1e9)),
                (10, 'items', format('is required and must be an array of 1 to %s lines', posledger_private.max_lines()),
                    NOT posledger_private.json_is_lines(s->'items')),
                (11, 'receipt_number', 'must be at most 200 characters', posledger_private.json_is_long(s->'receipt_number'))
            ) AS c(ord, field, problem, failed)
            WHERE c.failed
            UNION ALL
            SELECT format('items[%s].%s', i.n - 1, c.field), c.problem, 100 * i.n + c.ord
            FROM sale, jsonb_array_elements(posledger_private.json_lines(s->'items')) WITH ORDINALITY AS i(item, n),
                 LATERAL (VALUES
                    (1, 'product.sku', 'is required (or product.id, or a scan) and must be a non-empty string',
                        NOT posledger_private.json_is_text(coalesce(i.item->'product'->'sku', i.item->'product'->'id'))
                        AND NOT posledger_private.json_is_given(i.item->'scan')),
                    (2, 'quantity', 'must be a whole number from 1 to 1000000',
                        NOT posledger_private.json_is_number(i.item->'quantity', 1, 1000000, true)),
                    (3, 'batch.batch_lot', 'is required when a batch is given',
                        posledger_private.json_is_given(i.item->'batch') AND NOT posledger_private.json_is_text(i.item->'batch'->'batch_lot')),
                    (9, 'product.sku', 'must be at most 200 characters', posledger_private.json_is_long(coalesce(i.item->'product'->'sku', i.item->'product'->'id'))),
                    (10, 'batch.batch_lot', 'must be at most 200 characters', posledger_private.json_is_long(i.item->'batch'->'batch_lot'))
                 ) AS c(ord, field, problem, failed)
            WHERE c.failed
            UNION ALL
            -- The optional fields of issue 15, only on the lines that have any: a line without them costs a test.
            SELECT format('items[%s].%s', i.n - 1, c.field), c.problem, 100 * i.n + c.ord
            FROM sale, jsonb_array_elements(posledger_private.json_lines(s->'items')) WITH ORDINALITY AS i(item, n),
                 LATERAL (SELECT CASE WHEN posledger_private.json_is_text(i.item->'scan')
                                      THEN posledger_private.gs1_parse(i.item->>'scan') END AS scan) g,
                 LATERAL (VALUES
                    (4, 'scan', coalesce('is not a usable GS1 barcode: ' || (g.scan->>'problem'),
                                         'must be a non-empty string (the scanned barcode) when given'),
                        posledger_private.json_is_given(i.item->'scan') AND (g.scan IS NULL OR g.scan ? 'problem')),
                    (5, 'unit_price', 'must be a number from 0 to 1000000000 when given',
                        posledger_private.json_is_given(i.item->'unit_price')
                        AND NOT posledger_private.json_is_number(i.item->'unit_price', 0, 1e9)),
                    (6, 'discount_type', 'must be "percentage" or "amount" when given',
                        posledger_private.json_is_given(i.item->'discount_type')
                        AND i.item->'discount_type' NOT IN ('"percentage"', '"amount"')),
                    (7, 'discount', CASE WHEN i.item->'discount_type' = '"percentage"'
                                         THEN 'must be a number from 0 to 100 (a percentage) when given'
                                         ELSE 'must be a number from 0 to 1000000000 when given' END,
                        posledger_private.json_is_given(i.item->'discount') AND NOT posledger_private.json_is_number(
                            i.item->'discount', 0, CASE WHEN i.item->'discount_type' = '"percentage"' THEN 100 ELSE 1e9 END)),
                    (8, 'tax', 'must be a number from 0 to 1000000000 when given',
                        posledger_private.json_is_given(i.item->'tax') AND NOT posledger_private.json_is_number(i.item->'tax', 0, 1e9))
                 ) AS c(ord, field, problem, failed)
            WHERE i.item ?| ARRAY['scan', 'unit_price', 'discount', 'discount_type', 'tax'] AND c.failed
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
        FROM problem
    );
END $$;

-- The lines of a valid sale, numbered from 1 in payload order: a scan gives the sku (through the
-- catalogue's GTINs) and batch a line does not name itself; money is rounded to cents, so a till's
-- float noise (4.550000000000001) is not refused; a percentage discount becomes its amount; the class
-- and grams of a unit are the catalogue's on p_today (NULL for a sku it does not know). PL/pgSQL, not an
-- inlinable LANGUAGE sql function: Citus cannot plan a SQL function's parameterised query on its tables.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_items(p_sale jsonb, p_today date)
RETURNS SETOF posledger_private.pos_sale_line
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    WITH line AS (
        SELECT i.n, i.item, k.sku, s.quantity, s.unit_price, s.scan, g.sku AS scanned_sku
        FROM jsonb_array_elements(p_sale->'items') WITH ORDINALITY AS i(item, n)
        CROSS JOIN LATERAL (SELECT (i.item->>'quantity')::numeric::integer AS quantity,
                                   round((i.item->>'unit_price')::numeric, 2) AS unit_price,
                                   CASE WHEN jsonb_typeof(i.item->'scan') = 'string'
                                        THEN posledger_private.gs1_parse(i.item->>'scan') END AS scan) s
        -- Each line looks its GTIN up by the key. OFFSET 0 keeps the planner from flattening this into a
        -- join, which it hashes over the whole catalogue (5 ms a sale at 5,000 products) for a cart it
        -- guesses has a hundred lines.
        LEFT JOIN LATERAL (SELECT g.sku FROM public.product_gtins g WHERE s.scan IS NOT NULL AND g.gtin = s.scan->>'gtin'
                           OFFSET 0) g ON true
        CROSS JOIN LATERAL (SELECT coalesce(i.item->'product'->>'sku', i.item->'product'->>'id', g.sku) AS sku) k
    )
    SELECT l.n::integer,
           l.sku,
           l.item->'product'->>'name',
           coalesce(l.item->'batch'->>'batch_lot', l.scan->>'batch_lot'),
           l.quantity,
           l.unit_price,
           CASE WHEN l.item->>'discount_type' = 'percentage'
                THEN round(l.quantity * l.unit_price * (l.item->>'discount')::numeric / 100, 2)
                ELSE round((l.item->>'discount')::numeric, 2) END,
           round((l.item->>'tax')::numeric, 2),
           l.scan->>'gtin', l.scanned_sku, l.scan->>'batch_lot', (l.scan->>'expiry_date')::date,
           c.product_class, c.counts_toward, c.dried_grams_per_unit
    FROM line l
    LEFT JOIN posledger_private.catalogue_grams(p_today, ARRAY(SELECT l.sku FROM line l)) c ON c.sku = l.sku;
END $$;

-- The problems only the read lines show, as [{field, problem}]: too many lines for the store, a
-- scanned GTIN the catalogue does not know, a scan that contradicts the line's sku or batch, and line
-- values that do not add up to the sale's totals within a cent. Values are checked only when the lines
-- carry prices, all of them. Windows and joins only: a cart's cost stays linear in its lines.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_line_problems(p_store stores, p_sale jsonb,
                                                                   p_lines posledger_private.pos_sale_line[])
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (WITH problem AS (
            SELECT 'items' AS field, format('has %s lines: at most %s in one sale at this store (stores.max_sale_lines)',
                                           cardinality(p_lines), p_store.max_sale_lines) AS problem, 0 AS ord
            WHERE cardinality(p_lines) > p_store.max_sale_lines
            UNION ALL
            SELECT format('items[%s].%s', l.line_no - 1, c.field), c.problem, 100 * l.line_no + c.ord
            FROM (SELECT l.*, bool_or(l.unit_price IS NOT NULL) OVER () AS priced FROM unnest(p_lines) l) l,
                 LATERAL (VALUES
                (1, 'scan', format('names GTIN %s, which is not in the catalogue', l.scanned_gtin),
                    l.scanned_gtin IS NOT NULL AND l.scanned_sku IS NULL),
                (2, 'product.sku', format('is %s but the scan names %s', l.sku, l.scanned_sku), l.sku <> l.scanned_sku),
                (3, 'batch.batch_lot', format('is %s but the scan names lot %s', l.batch_lot, l.scanned_lot),
                    l.batch_lot <> l.scanned_lot),
                (4, 'unit_price', 'is required on every line when any line has one', l.unit_price IS NULL AND l.priced),
                (5, 'discount', format('is %s, more than the line''s %s', l.discount, l.quantity * l.unit_price),
                    l.discount > l.quantity * l.unit_price)
            ) AS c(ord, field, problem, failed)
            WHERE c.failed
            UNION ALL
            SELECT t.field, format('is %s but the lines add up to %s', t.sent, t.lines), 1000000 + t.ord
            FROM posledger_private.pos_sale_totals(p_sale, p_lines) t
            WHERE abs(t.sent - t.lines) > 0.01
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
        FROM problem
    );
END $$;

-- The sale's totals as sent beside what its priced lines add up to, rounded to cents: subtotal (the
-- lines net of discounts), tax (when the lines carry it) and total (subtotal plus the tax). No rows
-- when a line is unpriced.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_totals(p_sale jsonb, p_lines posledger_private.pos_sale_line[])
RETURNS TABLE (ord integer, field text, sent numeric, lines numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT t.ord, t.field, t.sent, t.lines
    FROM (SELECT sum(round(l.quantity * l.unit_price, 2) - coalesce(l.discount, 0)) AS net,
                 sum(l.tax) AS tax,
                 bool_and(l.unit_price IS NOT NULL) AS priced
          FROM unnest(p_lines) l) s,
         LATERAL (VALUES
            (1, 'subtotal', round((p_sale->>'subtotal')::numeric, 2), s.net),
            (2, 'tax', round((p_sale->>'tax')::numeric, 2), s.tax),
            (3, 'total', round((p_sale->>'total')::numeric, 2),
                s.net + coalesce(round((p_sale->>'tax')::numeric, 2), s.tax, 0))
         ) AS t(ord, field, sent, lines)
    WHERE s.priced AND t.sent IS NOT NULL AND t.lines IS NOT NULL
$$;

-- The skus and batches the sale names that this store never stocked, as [{sku, batch}]. Stock rows
-- are never deleted once they have a ledger, so this unlocked read cannot go stale.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_missing(p_store_id uuid, p_lines posledger_private.pos_sale_line[]) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('sku', l.sku, 'batch', l.batch_lot)
                                      ORDER BY l.sku, l.batch_lot), '[]')
            FROM (SELECT DISTINCT sku, batch_lot FROM unnest(p_lines)) l
            WHERE NOT EXISTS (SELECT FROM public.ocs_inventory i
                              WHERE i.store_id = p_store_id AND i.sku = l.sku
                                AND (l.batch_lot IS NULL OR i.batch_lot = l.batch_lot)));
END $$;

-- Inserts the order header, or returns the order already recorded for this store and receipt
-- (result set), raising IV412 when that order was a different sale, or when the till's sequence number
-- is another sale's. Its money is kept to the cent; a reservation's end is set by its store. ON CONFLICT
-- (on either key) waits for a concurrent insert of the same key to commit or roll back, so a retry never
-- sees 23505.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_claim(p_store stores, p_sale jsonb) RETURNS pos_orders
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid := p_store.id;   -- a plain variable: Citus prunes shards by a scalar only
    v_order public.pos_orders;
BEGIN
    INSERT INTO public.pos_orders (store_id, receipt_number, status, policy, authorized_by, user_id,
                                   cashier_id, terminal_id, payment_method, subtotal, tax, total, payload,
                                   occurred_at, terminal_sequence, expires_at)
    VALUES (v_store_id, p_sale->>'receipt_number', coalesce(p_sale->>'status', 'completed'),
            coalesce(p_sale->>'policy', 'strict'),
            p_sale->>'authorized_by', (p_sale->>'user_id')::uuid, p_sale->>'cashier_id', p_sale->>'terminal_id',
            p_sale->>'payment_method', round((p_sale->>'subtotal')::numeric, 2), round((p_sale->>'tax')::numeric, 2),
            round((p_sale->>'total')::numeric, 2), p_sale,
            (p_sale->>'occurred_at')::timestamptz, (p_sale->>'terminal_sequence')::numeric::bigint,
            now() + make_interval(mins => CASE p_sale->>'status' WHEN 'reserved' THEN p_store.reservation_minutes
                                                                 WHEN 'parked' THEN p_store.parked_cart_minutes END))
    ON CONFLICT DO NOTHING
    RETURNING * INTO v_order;
    IF FOUND THEN
        RETURN v_order;
    END IF;
    SELECT * INTO v_order FROM public.pos_orders
    WHERE store_id = v_store_id AND receipt_number = p_sale->>'receipt_number';
    IF NOT FOUND THEN
        SELECT * INTO v_order FROM public.pos_orders
        WHERE store_id = v_store_id AND terminal_id = p_sale->>'terminal_id'
          AND terminal_sequence = (p_sale->>'terminal_sequence')::numeric::bigint;
    END IF;
    PERFORM posledger_private.refuse_other_payload(v_order.payload, p_sale, jsonb_strip_nulls(jsonb_build_object(
        'store_id', v_store_id, 'receipt_number', v_order.receipt_number, 'order_id', v_order.id,
        'terminal_id', v_order.terminal_id, 'terminal_sequence', v_order.terminal_sequence)));
    RETURN v_order;
END $$;

-- The law's refusals, after the receipt claim so that a replay is never judged again: a sku the
-- catalogue cannot weigh (IV404, unless the store counts it as zero), then a sale over the store's limits
-- (IV422, each line's part listed). The law wins over the stock policy: a lenient sale is judged the same.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_refuse_unlawful(p_store stores,
                                                                      p_lines posledger_private.pos_sale_line[],
                                                                      p_limits jsonb)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_store.uncatalogued_skus = 'refuse' THEN
        PERFORM posledger_private.refuse_missing((
            SELECT coalesce(jsonb_agg(jsonb_build_object('sku', u.sku, 'catalogue', CASE WHEN EXISTS (
                SELECT FROM public.products p WHERE p.sku = u.sku)
                THEN 'no dried-equivalent grams: no label figure, no factor' ELSE 'not in the catalogue' END)
                ORDER BY u.sku), '[]')
            FROM jsonb_array_elements_text(p_limits->'uncatalogued') u(sku)),
            'Load the product into the catalogue (posledger catalogue load), or let the store count it as zero '
            '(stores.uncatalogued_skus = ''count_zero'').');
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'IV422', MESSAGE = 'limit exceeded: the sale is over a legal purchase limit',
        DETAIL = (p_limits || jsonb_build_object('lines', (
            SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', l.sku, 'product_class', l.product_class,
                                                'quantity', l.quantity, 'dried_grams_per_unit', l.dried_grams_per_unit,
                                                'dried_grams', trim_scale(round(l.quantity * l.dried_grams_per_unit, 6)))
                             ORDER BY l.line_no)
            FROM unnest(p_lines) l)))::text,
        HINT = 'Sell less in one sale: the limit is the law, no policy overrides it.';
END $$;

-- The batches the sale may not take, among the locked rows p_stock, as [{sku, batch, status,
-- expiry_date}]: a named batch that is held (quarantined, recalled, awaiting destruction) or expired
-- (its expiry date before the store's today), and a scanned unit whose own barcode says it expired.
-- Lines without a batch need no check: FEFO takes nothing from a held or expired batch.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_blocked(p_stock ocs_inventory[], p_lines posledger_private.pos_sale_line[],
                                                              p_today date)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(DISTINCT jsonb_strip_nulls(jsonb_build_object(
                'sku', b.sku, 'batch', b.batch_lot, 'status', b.status, 'expiry_date', b.expiry_date))), '[]')
        FROM (SELECT i.sku, i.batch_lot, CASE WHEN i.status <> 'active' THEN i.status ELSE 'expired' END AS status,
                     least(i.expiry_date, l.scanned_expiry) AS expiry_date
              FROM unnest(p_stock) i JOIN unnest(p_lines) l ON l.sku = i.sku AND l.batch_lot = i.batch_lot
              WHERE i.status <> 'active' OR i.expiry_date < p_today OR l.scanned_expiry < p_today
              UNION ALL
              SELECT l.sku, l.batch_lot, 'expired', l.scanned_expiry
              FROM unnest(p_lines) l WHERE l.batch_lot IS NULL AND l.scanned_expiry < p_today) b
    );
END $$;

-- Which batch each unit comes from: a named batch serves its lines in line order; lines without a
-- batch take what is left FEFO (legacy unbatched stock, then the earliest expiry date, batches without
-- one after those with one, then oldest packaged_on_date, undated first, then oldest row), split across
-- batches, never from a batch expired by the store's today. Demand and supply are laid out as
-- consecutive intervals per sku and matched by overlap, so lines of the same sku+batch are summed
-- before the stock check without a loop. Rows with inventory_id NULL are the units no batch covers,
-- with what their sku+batch had available. p_stock is the rows the sale locked: every batch of a sku
-- with a line without batch, and the named batches.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_allocate(p_stock ocs_inventory[],
                                                               p_lines posledger_private.pos_sale_line[], p_today date)
RETURNS SETOF pos_sale_allocation
LANGUAGE sql IMMUTABLE AS $$
    WITH line AS (
        SELECT * FROM unnest(p_lines)
    ), stock AS (
        SELECT i.id, i.sku, i.batch_lot, i.expiry_date, i.packaged_on_date,
               CASE WHEN i.expiry_date < p_today THEN 0 ELSE i.quantity_available END AS quantity_available
        FROM unnest(p_stock) i
    ), named AS (
        -- A named batch the store never stocked (only an offline sale gets this far with one) has
        -- nothing available: its units are all short.
        SELECT l.line_no, l.sku, l.batch_lot, l.quantity, s.id, coalesce(s.quantity_available, 0) AS quantity_available,
               least(l.quantity, greatest(coalesce(s.quantity_available, 0) - (sum(l.quantity) OVER w - l.quantity), 0))
                   AS taken
        FROM line l LEFT JOIN stock s ON s.sku = l.sku AND s.batch_lot = l.batch_lot
        WHERE l.batch_lot IS NOT NULL
        WINDOW w AS (PARTITION BY l.sku, l.batch_lot ORDER BY l.line_no)
    ), supply AS (
        -- Joins and windows only, no subquery per row: a cart's cost stays n log n in its lines.
        SELECT f.*, sum(f.free) OVER w - f.free AS start_at, sum(f.free) OVER (PARTITION BY f.sku) AS sku_free
        FROM (SELECT s.*, s.quantity_available - coalesce(n.taken, 0) AS free
              FROM stock s LEFT JOIN (SELECT id, sum(taken) AS taken FROM named GROUP BY id) n ON n.id = s.id) f
        WINDOW w AS (PARTITION BY f.sku ORDER BY f.batch_lot IS NOT NULL, f.expiry_date NULLS LAST,
                                                 f.packaged_on_date NULLS FIRST, f.id)
    ), demand AS (
        SELECT l.line_no, l.sku, l.quantity, sum(l.quantity) OVER w - l.quantity AS start_at,
               coalesce(f.sku_free, 0) AS sku_free
        FROM line l
        LEFT JOIN (SELECT DISTINCT sku, sku_free FROM supply) f ON f.sku = l.sku
        WHERE l.batch_lot IS NULL
        WINDOW w AS (PARTITION BY l.sku ORDER BY l.line_no)
    )
    SELECT line_no, sku, batch_lot, id, taken::integer, quantity_available FROM named WHERE taken > 0
    UNION ALL
    SELECT d.line_no, d.sku, s.batch_lot, s.id,
           (least(d.start_at + d.quantity, s.start_at + s.free) - greatest(d.start_at, s.start_at))::integer,
           s.free::integer
    FROM demand d
    JOIN supply s ON s.sku = d.sku AND s.free > 0  -- an empty batch overlaps no demand, however placed
               AND s.start_at < d.start_at + d.quantity AND d.start_at < s.start_at + s.free
    UNION ALL
    SELECT line_no, sku, batch_lot, NULL, quantity - taken::integer, quantity_available FROM named
    WHERE taken < quantity
    UNION ALL
    SELECT line_no, sku, NULL, NULL, (quantity - greatest(least(quantity, sku_free - start_at), 0))::integer,
           sku_free::integer
    FROM demand
    WHERE sku_free - start_at < quantity
$$;

-- The short sku+batch groups, as [{sku, batch, requested, available}]: requested sums all lines of
-- the group, because lines of the same sku+batch are one demand.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_shortfalls(p_lines posledger_private.pos_sale_line[], p_alloc pos_sale_allocation[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('sku', g.sku, 'batch', g.batch_lot,
                                                     'requested', r.requested, 'available', g.available)
                                  ORDER BY g.sku, g.batch_lot), '[]')
        FROM (SELECT a.sku, a.batch_lot, max(a.available) AS available
              FROM unnest(p_alloc) a
              WHERE a.inventory_id IS NULL
              GROUP BY a.sku, a.batch_lot) g
        JOIN (SELECT l.sku, l.batch_lot, sum(l.quantity) AS requested FROM unnest(p_lines) l
              GROUP BY l.sku, l.batch_lot) r ON r.sku = g.sku AND r.batch_lot IS NOT DISTINCT FROM g.batch_lot
    );
END $$;

-- The writes of an accepted sale, under the locks its caller holds: deduct, record the lines and any
-- shortfall of a lenient or offline sale, award points, and store the result that a replay returns.
-- p_held: the units were held by a reservation being completed (complete_reservation.sql), so they
-- leave its hold, not what is available.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_complete(p_order pos_orders, p_lines posledger_private.pos_sale_line[],
                                             p_alloc pos_sale_allocation[], p_short jsonb, p_limits jsonb,
                                             p_held boolean)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    -- A plain variable, not p_order.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_order.store_id;
    v_successful jsonb;
    v_result     jsonb;
BEGIN
    -- A batch without a known expiry learns it from a scan of a unit of it (the earliest, if scans differ).
    WITH taken AS (
        SELECT a.inventory_id, sum(a.quantity)::integer AS quantity,
               min(l.scanned_expiry) FILTER (WHERE l.batch_lot IS NOT NULL) AS scanned_expiry
        FROM unnest(p_alloc) a JOIN unnest(p_lines) l ON l.line_no = a.line_no
        WHERE a.inventory_id IS NOT NULL GROUP BY a.inventory_id
    ), deducted AS (
        UPDATE public.ocs_inventory i
        SET quantity_available = i.quantity_available - CASE WHEN p_held THEN 0 ELSE t.quantity END,
            quantity_reserved = i.quantity_reserved - CASE WHEN p_held THEN t.quantity ELSE 0 END,
            quantity_on_hand = i.quantity_on_hand - t.quantity,
            expiry_date = coalesce(i.expiry_date, t.scanned_expiry),
            last_sold = now(), updated_at = now(),
            -- The ledger trigger labels its rows for this deduction with this (_triggers.sql).
            movement = jsonb_build_object('type', 'sale', 'reference_type', 'pos_order', 'reference_id', p_order.id,
                                          'notes', 'POS sale - ' || p_order.receipt_number,
                                          'actor', p_order.cashier_id, 'occurred_at', p_order.occurred_at)
        FROM taken t
        WHERE i.store_id = v_store_id AND i.id = t.inventory_id
        RETURNING i.id, i.sku, i.batch_lot, t.quantity, i.quantity_available
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sku, 'batch', batch_lot, 'quantity_deducted', quantity,
                                                 'remaining', quantity_available) ORDER BY id), '[]')
    INTO v_successful FROM deducted;

    -- Each part of a line split across batches carries its share of the line's discount and tax, to the
    -- cent, the rounding carried forward so the shares add up to the line's amounts exactly.
    INSERT INTO public.pos_order_lines (store_id, order_id, line_no, sku, product_name, batch_lot, inventory_id, quantity,
                                        product_class, dried_grams_per_unit, unit_price, discount, tax)
    SELECT v_store_id, p_order.id, a.line_no, a.sku, l.product_name, a.batch_lot, a.inventory_id, a.quantity,
           l.product_class, l.dried_grams_per_unit, l.unit_price,
           round(l.discount * a.upto / l.quantity, 2) - round(l.discount * (a.upto - a.quantity) / l.quantity, 2),
           round(l.tax * a.upto / l.quantity, 2) - round(l.tax * (a.upto - a.quantity) / l.quantity, 2)
    FROM (SELECT a.*, sum(a.quantity) OVER (PARTITION BY a.line_no ORDER BY a.inventory_id NULLS LAST) AS upto
          FROM unnest(p_alloc) a) a
    JOIN unnest(p_lines) l ON l.line_no = a.line_no
    ORDER BY a.line_no, a.inventory_id;

    IF p_short <> '[]' THEN   -- only a lenient or offline sale gets here short; most sales skip the statement
        INSERT INTO public.inventory_exceptions (store_id, order_id, line_no, sku, batch_lot, quantity_short,
                                                 authorized_by, kind, reason, detail)
        SELECT v_store_id, p_order.id, a.line_no, a.sku, a.batch_lot, a.quantity, p_order.authorized_by, 'shortfall',
               format('%s sale: %s %s no batch covered', p_order.policy, a.quantity,
                      CASE WHEN a.quantity = 1 THEN 'unit' ELSE 'units' END),
               jsonb_build_object('available', a.available)
        FROM unnest(p_alloc) a WHERE a.inventory_id IS NULL;
    END IF;
    IF p_short <> '[]' OR p_order.policy = 'offline' THEN   -- the only sales that raise exceptions
        PERFORM posledger_private.exceptions_announce_here(v_store_id, p_order.id);
    END IF;

    v_result := jsonb_build_object(
        'id', p_order.id, 'store_id', v_store_id, 'receipt_number', p_order.receipt_number,
        'status', p_order.status, 'timestamp', p_order.created_at, 'replayed', false,
        'inventory_updates', jsonb_build_object(
            'successful', v_successful, 'failed', p_short, 'total_items', cardinality(p_lines),
            'updated_count', jsonb_array_length(v_successful), 'failed_count', jsonb_array_length(p_short)),
        'purchase_limit', p_limits,
        'loyalty', posledger_private.pos_sale_award_points(p_order),
        'requires_manual_inventory_adjustment', p_short <> '[]')
        -- What only some sales carry, only on those: when it happened and which till sent it, and the
        -- exceptions of the law an offline sale raised (pos_sale_flag, just before).
        || jsonb_strip_nulls(jsonb_build_object(
            'occurred_at', p_order.occurred_at, 'terminal_sequence', p_order.terminal_sequence,
            'compliance_exceptions', CASE WHEN p_order.policy = 'offline' THEN (
                SELECT jsonb_agg(jsonb_build_object('id', e.id, 'kind', e.kind, 'reason', e.reason) ORDER BY e.id)
                FROM public.inventory_exceptions e
                WHERE e.store_id = v_store_id AND e.order_id = p_order.id AND e.kind <> 'shortfall') END));
    UPDATE public.pos_orders SET result = v_result WHERE store_id = v_store_id AND id = p_order.id;
    RETURN v_result;
END $$;

-- An offline sale that broke a rule it could not be refused for, since it already happened: one
-- compliance exception per breach, for a person to see (open_inventory_exceptions) - over a purchase
-- limit, a sku the catalogue cannot weigh where the store refuses those, each held or expired batch
-- it sold from. The units themselves are deducted as far as stock covers them, as for any sale.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_flag(p_order pos_orders, p_store stores, p_blocked jsonb,
                                                           p_limits jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid := p_order.store_id;   -- a plain variable: Citus prunes shards by a scalar only
BEGIN
    INSERT INTO public.inventory_exceptions (store_id, order_id, sku, batch_lot, kind, reason, detail)
    SELECT v_store_id, p_order.id, f.sku, f.batch_lot, f.kind, f.reason, f.detail
    FROM (SELECT NULL::text AS sku, NULL::text AS batch_lot, 'over_limit' AS kind,
                 format('offline sale over a purchase limit: %s g dried equivalent of %s g, %s plants of %s',
                        p_limits->>'dried_grams', p_limits->>'limit_grams', p_limits->>'plants', p_limits->>'plant_limit')
                     AS reason, p_limits AS detail
          WHERE (p_limits->>'dried_grams')::numeric > (p_limits->>'limit_grams')::numeric
             OR (p_limits->>'plants')::numeric > (p_limits->>'plant_limit')::numeric
          UNION ALL
          SELECT u.sku, NULL, 'uncatalogued', 'offline sale of a sku the catalogue cannot weigh', p_limits
          FROM jsonb_array_elements_text(p_limits->'uncatalogued') u(sku)
          WHERE p_store.uncatalogued_skus = 'refuse'
          UNION ALL
          SELECT b->>'sku', b->>'batch', 'blocked_batch', format('offline sale from a batch that is %s', b->>'status'), b
          FROM jsonb_array_elements(p_blocked) b) f;
END $$;

-- A reservation's writes, under the locks record_pos_sale holds: its units move from available to
-- held, by batch, and the order keeps the result a replay returns. Nothing leaves the shelf, so no
-- ledger row: the holds are the promise's record (reservation_holds).
CREATE OR REPLACE FUNCTION posledger_private.reservation_hold(p_order pos_orders, p_alloc pos_sale_allocation[],
                                                              p_limits jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid := p_order.store_id;   -- a plain variable: Citus prunes shards by a scalar only
    v_held     jsonb;
    v_result   jsonb;
BEGIN
    INSERT INTO public.reservation_holds (store_id, order_id, line_no, inventory_id, sku, batch_lot, quantity)
    SELECT v_store_id, p_order.id, a.line_no, a.inventory_id, a.sku, a.batch_lot, a.quantity
    FROM unnest(p_alloc) a ORDER BY a.line_no, a.inventory_id;

    WITH taken AS (
        SELECT a.inventory_id, sum(a.quantity)::integer AS quantity FROM unnest(p_alloc) a GROUP BY a.inventory_id
    ), held AS (
        UPDATE public.ocs_inventory i
        SET quantity_available = i.quantity_available - t.quantity,
            quantity_reserved = i.quantity_reserved + t.quantity, updated_at = now()
        FROM taken t
        WHERE i.store_id = v_store_id AND i.id = t.inventory_id
        RETURNING i.id, i.sku, i.batch_lot, t.quantity, i.quantity_available
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sku, 'batch', batch_lot, 'quantity_held', quantity,
                                                 'remaining', quantity_available) ORDER BY id), '[]')
    INTO v_held FROM held;

    v_result := jsonb_build_object(
        'id', p_order.id, 'store_id', v_store_id, 'receipt_number', p_order.receipt_number,
        'status', p_order.status, 'timestamp', p_order.created_at, 'expires_at', p_order.expires_at,
        'replayed', false, 'held', v_held, 'purchase_limit', p_limits, 'loyalty', NULL);
    UPDATE public.pos_orders SET result = v_result WHERE store_id = v_store_id AND id = p_order.id;
    RETURN v_result;
END $$;

-- Points for a completed sale with a customer, awarded only here, after the stock was deducted:
-- a sale that did not happen rolls back before it gets this far. They go to the customer's account at
-- this store (opened if missing), so the sale writes only its own store's rows: on Citus one worker,
-- no two-phase commit (docs/decisions.md, "Loyalty by store"). The balance returned is that account's.
CREATE OR REPLACE FUNCTION posledger_private.pos_sale_award_points(p_order pos_orders) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_points  bigint;
    v_balance bigint;
    v_store_id uuid := p_order.store_id;   -- a plain variable: Citus prunes shards by a scalar only
BEGIN
    IF p_order.user_id IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT floor(p_order.total * s.loyalty_points_per_unit)::bigint INTO v_points
    FROM public.stores s WHERE s.id = v_store_id;

    INSERT INTO public.loyalty_accounts AS a (store_id, user_id, points) VALUES (v_store_id, p_order.user_id, v_points)
    ON CONFLICT (store_id, user_id) DO UPDATE SET points = a.points + excluded.points, updated_at = excluded.updated_at
    RETURNING a.points INTO v_balance;

    -- VALUES, not a SELECT: Citus routes an INSERT ... SELECT through the coordinator's INSERT/SELECT path.
    IF v_points <> 0 THEN
        INSERT INTO public.loyalty_transactions (user_id, store_id, order_id, transaction_type, points, balance_after)
        VALUES (p_order.user_id, v_store_id, p_order.id, 'earn', v_points, v_balance);
    END IF;

    RETURN jsonb_build_object('user_id', p_order.user_id, 'points_earned', v_points, 'balance', v_balance);
END $$;
