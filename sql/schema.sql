-- The schema of a freshly migrated posledger database, written by ./scripts/schema (PostgreSQL 15's
-- pg_dump, normalised). Do not edit: change sql/migrations or sql/functions and run it again.

CREATE SCHEMA posledger_private;

COMMENT ON SCHEMA posledger_private IS 'The entry functions'' private helpers: no role but the owner may use them.';

CREATE TYPE posledger_private.pos_return_line AS (
	order_line_id bigint,
	inventory_id bigint,
	line_no integer,
	sku text,
	batch_lot text,
	quantity integer,
	defective boolean
);

CREATE TYPE posledger_private.pos_return_plan AS (
	lines posledger_private.pos_return_line[],
	excess jsonb,
	unknown jsonb
);

CREATE TYPE posledger_private.pos_sale_line AS (
	line_no integer,
	sku text,
	product_name text,
	batch_lot text,
	quantity integer,
	unit_price numeric,
	discount numeric,
	tax numeric,
	scanned_gtin text,
	scanned_sku text,
	scanned_lot text,
	scanned_expiry date,
	product_class text,
	counts_toward text,
	dried_grams_per_unit numeric
);

CREATE TYPE public.inventory_delta AS (
	inventory_id bigint,
	sellable integer,
	quarantined integer
);

CREATE TYPE public.pos_sale_allocation AS (
	line_no integer,
	sku text,
	batch_lot text,
	inventory_id bigint,
	quantity integer,
	available integer
);

CREATE TABLE public.inventory_adjustments (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    store_id uuid NOT NULL,
    reference text NOT NULL,
    kind text NOT NULL,
    reason_code text NOT NULL,
    note text NOT NULL,
    actor text NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT inventory_adjustments_kind_check CHECK ((kind = ANY (ARRAY['adjustment'::text, 'count'::text]))),
    CONSTRAINT inventory_adjustments_reference_check CHECK ((reference <> ''::text))
);

COMMENT ON TABLE public.inventory_adjustments IS 'The header of an adjustment or a count; its lines are the ledger rows that reference it.';

CREATE FUNCTION posledger_private.adjustment_claim(p_payload jsonb, p_kind text) RETURNS public.inventory_adjustments
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.adjustment_complete(p_header public.inventory_adjustments, p_deltas public.inventory_delta[]) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.adjustment_expiry_dates(p_header public.inventory_adjustments) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.adjustment_lines(p_header public.inventory_adjustments) RETURNS TABLE(sku text, batch_lot text, quantity integer, quarantined boolean)
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT l->>'sku', l->>'batch_lot',
           (l->>CASE p_header.kind WHEN 'count' THEN 'counted' ELSE 'quantity' END)::numeric::integer,
           coalesce((l->>'quarantined')::boolean, false)
    FROM jsonb_array_elements(p_header.payload->'lines') l
$$;

CREATE FUNCTION posledger_private.adjustment_problems(p_payload jsonb, p_quantity text) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $_$
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
$_$;

CREATE FUNCTION posledger_private.adjustment_record(p_adjustment jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.apply_lock_timeout() RETURNS text
    LANGUAGE sql
    AS $$
    SELECT set_config('lock_timeout', posledger_private.lock_timeout(), true)
$$;

CREATE TABLE public.batch_status_requests (
    reference text NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT batch_status_requests_reference_check CHECK ((reference <> ''::text))
);

COMMENT ON TABLE public.batch_status_requests IS 'Each hold, recall or release as asked, keyed by its reference (a recall spans stores).';

CREATE FUNCTION posledger_private.batch_status_claim(p_change jsonb) RETURNS public.batch_status_requests
    LANGUAGE plpgsql
    AS $$
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

CREATE TABLE public.ocs_inventory (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    sku text NOT NULL,
    batch_lot text,
    quantity_on_hand integer DEFAULT 0 NOT NULL,
    quantity_available integer DEFAULT 0 NOT NULL,
    case_gtin text,
    each_gtin text,
    packaged_on_date date,
    location_code text,
    last_sold timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    quantity_quarantined integer DEFAULT 0 NOT NULL,
    expiry_date date,
    movement jsonb,
    quantity_reserved integer DEFAULT 0 NOT NULL,
    unit_cost numeric(14,4),
    CONSTRAINT ocs_inventory_batch_lot_check CHECK ((batch_lot <> ''::text)),
    CONSTRAINT ocs_inventory_check CHECK (((quantity_available >= 0) AND (quantity_available <= quantity_on_hand))),
    CONSTRAINT ocs_inventory_held_batch_not_available CHECK (((status = 'active'::text) OR (quantity_available = 0))),
    CONSTRAINT ocs_inventory_quantity_on_hand_check CHECK ((quantity_on_hand >= 0)),
    CONSTRAINT ocs_inventory_quarantine_within_on_hand CHECK (((quantity_quarantined >= 0) AND ((quantity_available + quantity_quarantined) <= quantity_on_hand))),
    CONSTRAINT ocs_inventory_reserved_within_on_hand CHECK (((quantity_reserved >= 0) AND (((quantity_available + quantity_quarantined) + quantity_reserved) <= quantity_on_hand))),
    CONSTRAINT ocs_inventory_sku_check CHECK ((sku <> ''::text)),
    CONSTRAINT ocs_inventory_status_known CHECK ((status = ANY (ARRAY['active'::text, 'quarantined'::text, 'recalled'::text, 'awaiting_destruction'::text])))
);

COMMENT ON TABLE public.ocs_inventory IS 'Stock per store, sku and batch lot: one row each, at most one unbatched (legacy) row per store and sku. Written only by the entry functions; every change of quantity_on_hand is ledgered by a trigger.';

COMMENT ON COLUMN public.ocs_inventory.batch_lot IS 'The lot; NULL is legacy unbatched stock. Never changes (IV403), nor do id, store_id and sku.';

COMMENT ON COLUMN public.ocs_inventory.quantity_on_hand IS 'Units physically in the store, quarantined ones included. Equals the sum of the row''s ledger quantities.';

COMMENT ON COLUMN public.ocs_inventory.quantity_available IS 'Units a sale may take: 0 while the batch is held; on hand less quarantined units otherwise.';

COMMENT ON COLUMN public.ocs_inventory.status IS 'active (sellable), quarantined, recalled or awaiting_destruction (held: nothing available).';

COMMENT ON COLUMN public.ocs_inventory.quantity_quarantined IS 'Units on hand that may never be sold (defective returns) until destroyed or sent back.';

COMMENT ON COLUMN public.ocs_inventory.expiry_date IS 'The batch''s expiry date (GS1 AI 17): sold on it, not after it. NULL: unknown.';

COMMENT ON COLUMN public.ocs_inventory.movement IS 'The label (type, reason_code, reference, notes, actor) of the posledger movement that last changed this row, written by that movement''s own statement; the ledger trigger labels a change with it only when the changing statement wrote it anew (else opening or manual_adjustment).';

COMMENT ON COLUMN public.ocs_inventory.quantity_reserved IS 'Units on hand held by open reservations and parked carts (the sum of this row''s open reservation_holds): on hand, not available.';

COMMENT ON COLUMN public.ocs_inventory.unit_cost IS 'What one unit of this batch cost the store (its latest receipt''s unit_cost); NULL when no receipt said. The OCS feed''s book value.';

CREATE FUNCTION posledger_private.batch_status_complete(p_request public.batch_status_requests, p_rows public.ocs_inventory[]) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.batch_status_problems(p_change jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $_$
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
$_$;

CREATE FUNCTION posledger_private.batch_status_record(p_change jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.batch_status_targets(p_change jsonb) RETURNS SETOF public.ocs_inventory
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN QUERY
    SELECT * FROM public.ocs_inventory i
    WHERE i.batch_lot = p_change->>'batch_lot'
      AND (p_change->>'sku' IS NULL OR i.sku = p_change->>'sku')
      AND (p_change->>'store_id' IS NULL OR i.store_id = (p_change->>'store_id')::uuid);
END $$;

CREATE FUNCTION posledger_private.begun_elsewhere() RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_query text := 'SELECT t.transaction_number <> 0
                            AND t.initiator_node_identifier <> (SELECT groupid FROM pg_catalog.pg_dist_local_group)
                     FROM pg_catalog.get_current_transaction_id() t';
    v_elsewhere boolean := false;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        EXECUTE v_query INTO v_elsewhere;
    END IF;
    RETURN v_elsewhere;
END $$;

CREATE FUNCTION posledger_private.catalogue_amount(p_value jsonb) RETURNS numeric
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number' THEN p_value::numeric
                WHEN jsonb_typeof(p_value) = 'string'
                     AND btrim(p_value #>> '{}') ~ '^([0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9})$'
                THEN btrim(p_value #>> '{}')::numeric END
$_$;

CREATE FUNCTION posledger_private.catalogue_bad_rows(p_load jsonb, p_seen jsonb) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('n', r.n, 'line', r.line, 'sku', r.sku, 'problems', p.problems)
                              ORDER BY r.n), '[]')
    FROM posledger_private.catalogue_rows(p_load) r
    JOIN (SELECT x.n, jsonb_agg(jsonb_build_object('field', x.field, 'problem', x.problem) ORDER BY x.ord) AS problems
          FROM (SELECT * FROM posledger_private.catalogue_row_problems(p_load)
                UNION ALL SELECT * FROM posledger_private.catalogue_clashes(p_load, p_seen)) x
          GROUP BY x.n) p ON p.n = r.n
$$;

CREATE FUNCTION posledger_private.catalogue_clashes(p_load jsonb, p_seen jsonb) RETURNS TABLE(n integer, field text, problem text, ord integer)
    LANGUAGE sql STABLE
    AS $$
    WITH r AS (
        SELECT r.n, r.line, r.sku, r.gtins,
               first_value(r.line) OVER (PARTITION BY r.sku ORDER BY r.n) AS first_line,
               first_value(r.n) OVER (PARTITION BY r.sku ORDER BY r.n) AS first_n
        FROM posledger_private.catalogue_rows(p_load) r WHERE r.sku IS NOT NULL
    ), g AS (
        SELECT r.n, r.sku, g.gtin, first_value(r.n) OVER w AS first_n, first_value(r.line) OVER w AS first_line,
               first_value(r.sku) OVER w AS first_sku
        FROM r, unnest(r.gtins) AS g(gtin)
        WINDOW w AS (PARTITION BY g.gtin ORDER BY r.n)
    )
    SELECT r.n, 'sku', format('%s is also on line %s of this load', r.sku, coalesce(p_seen->>r.sku, r.first_line::text)),
           200
    FROM r WHERE r.first_n < r.n OR p_seen ? r.sku
    UNION ALL
    SELECT g.n, 'gtins', format('GTIN %s is also on line %s (sku %s) of this load', g.gtin, g.first_line, g.first_sku), 300
    FROM g WHERE g.first_n < g.n
    UNION ALL
    SELECT g.n, 'gtins', format('GTIN %s already belongs to sku %s', g.gtin, o.sku), 400
    FROM g JOIN public.product_gtins o ON o.gtin = g.gtin AND o.sku <> g.sku
$$;

CREATE FUNCTION posledger_private.catalogue_given(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT posledger_private.json_is_given(p_value)
           AND NOT (jsonb_typeof(p_value) = 'string' AND btrim(p_value #>> '{}') = '')
$$;

CREATE FUNCTION posledger_private.catalogue_grams(p_day date, p_skus text[]) RETURNS TABLE(sku text, product_class text, counts_toward text, dried_grams_per_unit numeric)
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.sku, p.product_class, c.counts_toward,
           CASE WHEN c.counts_toward <> 'dried_grams' THEN 0
                ELSE coalesce(p.stated_dried_grams, p.net_content / f.amount_per_dried_gram) END
    FROM public.products p
    JOIN public.product_classes c ON c.product_class = p.product_class
    LEFT JOIN LATERAL (SELECT f.amount_per_dried_gram FROM public.dried_equivalency_factors f
                       WHERE f.product_class = p.product_class AND f.net_unit = p.net_unit AND f.in_force_from <= p_day
                       ORDER BY f.in_force_from DESC LIMIT 1) f ON true
    WHERE p.sku = ANY (p_skus);
END $$;

CREATE FUNCTION posledger_private.catalogue_load_problems(p_load jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', p.field, 'problem', p.problem) ORDER BY p.ord), '[]')
    FROM (SELECT CASE jsonb_typeof(p_load) WHEN 'object' THEN p_load ELSE '{}' END AS l) load, LATERAL (VALUES
        (0, '$', 'the catalogue load must be a JSON object', jsonb_typeof(p_load) IS DISTINCT FROM 'object'),
        (1, 'rows', format('is required and must be an array of 1 to %s rows', posledger_private.max_lines()),
            NOT posledger_private.json_is_lines(l->'rows')),
        (2, 'skip_bad', 'must be true or false when given',
            posledger_private.json_is_given(l->'skip_bad') AND NOT posledger_private.json_is_boolean(l->'skip_bad')),
        (3, 'load_id', 'must be a non-empty string when given',
            posledger_private.json_is_given(l->'load_id') AND NOT posledger_private.json_is_text(l->'load_id'))
    ) AS p(ord, field, problem, failed)
    WHERE p.failed
$_$;

CREATE FUNCTION posledger_private.catalogue_record(p_load jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_seen jsonb;
    v_bad  jsonb;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.catalogue_load_problems(p_load), 'catalogue load');
    PERFORM pg_advisory_xact_lock(x'63617467'::integer, 0);   -- 'catg' in ASCII, apart from lock_lots' keys
    v_seen := posledger_private.catalogue_seen(p_load);
    v_bad := posledger_private.catalogue_bad_rows(p_load, v_seen);
    IF v_bad <> '[]' AND NOT coalesce((p_load->>'skip_bad')::boolean, false) THEN
        PERFORM posledger_private.refuse_catalogue_rows(v_bad);
    END IF;
    PERFORM posledger_private.catalogue_remember(p_load, v_seen);
    RETURN posledger_private.catalogue_write(p_load, ARRAY(SELECT (b->>'n')::integer FROM jsonb_array_elements(v_bad) b))
        || jsonb_build_object('skipped', jsonb_array_length(v_bad),
                              'skipped_rows', (SELECT coalesce(jsonb_agg(b - 'n' ORDER BY (b->>'n')::integer), '[]')
                                               FROM jsonb_array_elements(v_bad) b));
END $$;

CREATE FUNCTION posledger_private.catalogue_remember(p_load jsonb, p_seen jsonb) RETURNS void
    LANGUAGE sql
    AS $$
    SELECT set_config('posledger.catalogue_load', jsonb_build_object('load_id', p_load->>'load_id', 'skus',
               p_seen || coalesce((SELECT jsonb_object_agg(r.sku, r.line) FROM (
                   SELECT DISTINCT ON (r.sku) r.sku, r.line FROM posledger_private.catalogue_rows(p_load) r
                   WHERE r.sku IS NOT NULL AND NOT p_seen ? r.sku ORDER BY r.sku, r.n) r), '{}'))::text, true)
    WHERE p_load->>'load_id' IS NOT NULL
$$;

CREATE FUNCTION posledger_private.catalogue_row_problems(p_load jsonb) RETURNS TABLE(n integer, field text, problem text, ord integer)
    LANGUAGE sql STABLE
    AS $_$
    SELECT r.n, c.field, c.problem, c.ord
    FROM posledger_private.catalogue_rows(p_load) r, LATERAL (VALUES
        (0, '$', 'each row must be a JSON object', jsonb_typeof(r.item) IS DISTINCT FROM 'object'),
        (1, 'line', 'must be the row''s line number in its file, a whole number from 1, when given',
            posledger_private.json_is_given(r.item->'line')
            AND NOT posledger_private.json_is_number(r.item->'line', 1, 2147483647, true)),
        (2, 'sku', 'is required and must be a non-empty string', r.sku IS NULL),
        (20, 'sku', 'must be at most 200 characters', posledger_private.json_is_long(r.item->'sku')),
        (3, 'name', 'is required and must be a non-empty string', r.name IS NULL),
        (4, 'brand', 'must be a string when given',
            posledger_private.json_is_given(r.item->'brand') AND jsonb_typeof(r.item->'brand') <> 'string'),
        (5, 'category', 'is required and must be a non-empty string', r.category IS NULL),
        (6, 'category', format('%s is not a known category (see catalogue_categories)', r.category),
            r.category IS NOT NULL AND r.product_class IS NULL),
        (7, 'net_content', 'must be a number above 0 and at most 1000000',
            posledger_private.catalogue_given(r.item->'net_content') AND NOT coalesce(r.net_content > 0
                AND r.net_content <= 1000000, false)),
        (8, 'net_content', 'is required: the label''s net content, a number above 0',
            NOT posledger_private.catalogue_given(r.item->'net_content')
            AND (r.counts_toward IS DISTINCT FROM 'nothing' OR posledger_private.catalogue_given(r.item->'net_unit'))),
        (9, 'net_unit', format('%s is not a unit: g, mL or count (also read: ml, gram, each, units)', r.item->'net_unit'),
            posledger_private.catalogue_given(r.item->'net_unit') AND r.net_unit IS NULL),
        (10, 'net_unit', 'is required: g, mL or count',
            NOT posledger_private.catalogue_given(r.item->'net_unit')
            AND (r.counts_toward IS DISTINCT FROM 'nothing' OR posledger_private.catalogue_given(r.item->'net_content'))),
        (11, 'stated_dried_grams', 'must be a number from 0 to 1000 when given',
            posledger_private.catalogue_given(r.item->'stated_dried_grams')
            AND NOT coalesce(r.stated_dried_grams BETWEEN 0 AND 1000, false)),
        (12, 'stated_dried_grams', format('is required: no dried equivalency factor turns %s of %s into grams',
                                          r.net_unit, r.product_class),
            r.counts_toward = 'dried_grams' AND r.net_unit IS NOT NULL
            AND NOT posledger_private.catalogue_given(r.item->'stated_dried_grams')
            AND NOT EXISTS (SELECT FROM public.dried_equivalency_factors f
                            WHERE f.product_class = r.product_class AND f.net_unit = r.net_unit
                              AND f.in_force_from <= current_date)),
        (13, 'gtins', 'must be an array of GTINs when given',
            posledger_private.json_is_given(r.item->'gtins') AND jsonb_typeof(r.item->'gtins') <> 'array')
    ) AS c(ord, field, problem, failed)
    WHERE c.failed AND (c.ord = 0 OR jsonb_typeof(r.item) = 'object')
    UNION ALL
    SELECT r.n, format('gtins[%s]', g.i - 1),
           format('%s is not a GTIN-8, -12, -13 or -14 with a valid GS1 check digit', g.gtin), 100 + g.i::integer
    FROM posledger_private.catalogue_rows(p_load) r,
         jsonb_array_elements(CASE jsonb_typeof(r.item->'gtins') WHEN 'array' THEN r.item->'gtins' ELSE '[]' END)
             WITH ORDINALITY AS g(gtin, i)
    WHERE jsonb_typeof(g.gtin) IS DISTINCT FROM 'string' OR posledger_private.gtin14(btrim(g.gtin #>> '{}')) IS NULL
$_$;

CREATE FUNCTION posledger_private.catalogue_rows(p_load jsonb) RETURNS TABLE(n integer, line integer, sku text, name text, brand text, category text, product_class text, counts_toward text, net_content numeric, net_unit text, stated_dried_grams numeric, gtins text[], item jsonb)
    LANGUAGE sql STABLE
    AS $$
    SELECT r.n::integer,
           CASE WHEN posledger_private.json_is_number(r.item->'line', 1, 2147483647, true)
                THEN (r.item->>'line')::numeric::integer ELSE r.n::integer END,
           posledger_private.catalogue_text(r.item->'sku'), posledger_private.catalogue_text(r.item->'name'),
           posledger_private.catalogue_text(r.item->'brand'), posledger_private.catalogue_text(r.item->'category'),
           c.product_class, k.counts_toward,
           posledger_private.catalogue_amount(r.item->'net_content'), posledger_private.catalogue_unit(r.item->'net_unit'),
           posledger_private.catalogue_amount(r.item->'stated_dried_grams'),
           ARRAY(SELECT DISTINCT posledger_private.gtin14(btrim(g #>> '{}'))
                 FROM jsonb_array_elements(CASE jsonb_typeof(r.item->'gtins') WHEN 'array' THEN r.item->'gtins' ELSE '[]' END) g
                 WHERE jsonb_typeof(g) = 'string' AND posledger_private.gtin14(btrim(g #>> '{}')) IS NOT NULL ORDER BY 1),
           r.item
    FROM jsonb_array_elements(posledger_private.json_lines(p_load->'rows')) WITH ORDINALITY AS r(item, n)
    LEFT JOIN public.catalogue_categories c ON c.category = lower(posledger_private.catalogue_text(r.item->'category'))
    LEFT JOIN public.product_classes k ON k.product_class = c.product_class
$$;

CREATE FUNCTION posledger_private.catalogue_seen(p_load jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_load jsonb;
BEGIN
    v_load := nullif(current_setting('posledger.catalogue_load', true), '')::jsonb;
    RETURN CASE WHEN v_load->>'load_id' = p_load->>'load_id' THEN v_load->'skus' ELSE '{}' END;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN '{}'::jsonb;   -- the session set the setting to something else: no load of ours to continue
END $$;

CREATE FUNCTION posledger_private.catalogue_text(p_value jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN posledger_private.json_is_text(p_value) THEN btrim(p_value #>> '{}') END
$$;

CREATE FUNCTION posledger_private.catalogue_unit(p_value jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'string' THEN CASE lower(btrim(p_value #>> '{}'))
        WHEN 'g' THEN 'g' WHEN 'gram' THEN 'g' WHEN 'grams' THEN 'g'
        WHEN 'ml' THEN 'mL' WHEN 'millilitre' THEN 'mL' WHEN 'millilitres' THEN 'mL'
        WHEN 'milliliter' THEN 'mL' WHEN 'milliliters' THEN 'mL'
        WHEN 'count' THEN 'count' WHEN 'each' THEN 'count' WHEN 'ea' THEN 'count' WHEN 'unit' THEN 'count'
        WHEN 'units' THEN 'count' WHEN 'piece' THEN 'count' WHEN 'pieces' THEN 'count' END END
$$;

CREATE FUNCTION posledger_private.catalogue_write(p_load jsonb, p_bad integer[]) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_counts jsonb;
BEGIN
    WITH judged AS (
        SELECT r.*, CASE
                   WHEN p.sku IS NULL THEN 'inserted'
                   WHEN (p.name, p.brand, p.category, p.product_class, p.net_content, p.net_unit, p.stated_dried_grams,
                         ARRAY(SELECT x.gtin FROM public.product_gtins x WHERE x.sku = p.sku ORDER BY x.gtin))
                        IS NOT DISTINCT FROM (r.name, r.brand, r.category, r.product_class, r.net_content, r.net_unit,
                                              r.stated_dried_grams, r.gtins) THEN 'unchanged'
                   ELSE 'updated' END AS outcome
        FROM posledger_private.catalogue_rows(p_load) r
        LEFT JOIN public.products p ON p.sku = r.sku
        WHERE r.n <> ALL (p_bad)
    ), inserted AS (
        INSERT INTO public.products (sku, name, brand, category, product_class, net_content, net_unit, stated_dried_grams)
        SELECT j.sku, j.name, j.brand, j.category, j.product_class, j.net_content, j.net_unit, j.stated_dried_grams
        FROM judged j WHERE j.outcome = 'inserted' ORDER BY j.sku
    ), updated AS (
        UPDATE public.products p
        SET name = j.name, brand = j.brand, category = j.category, product_class = j.product_class,
            net_content = j.net_content, net_unit = j.net_unit, stated_dried_grams = j.stated_dried_grams,
            updated_at = now()
        FROM judged j WHERE p.sku = j.sku AND j.outcome = 'updated'
    ), dropped AS (
        DELETE FROM public.product_gtins x USING judged j
        WHERE x.sku = j.sku AND j.outcome = 'updated' AND x.gtin <> ALL (j.gtins)
    ), added AS (
        -- A GTIN the product already has stays; no other product has any of these (catalogue_clashes).
        INSERT INTO public.product_gtins (gtin, sku)
        SELECT g.gtin, j.sku FROM judged j, unnest(j.gtins) AS g(gtin)
        WHERE j.outcome <> 'unchanged' AND NOT EXISTS (SELECT FROM public.product_gtins x WHERE x.gtin = g.gtin)
    )
    SELECT jsonb_build_object('rows', count(*) + cardinality(p_bad),
                              'inserted', count(*) FILTER (WHERE j.outcome = 'inserted'),
                              'updated', count(*) FILTER (WHERE j.outcome = 'updated'),
                              'unchanged', count(*) FILTER (WHERE j.outcome = 'unchanged'))
    INTO v_counts FROM judged j;
    RETURN v_counts;
END $$;

CREATE FUNCTION posledger_private.count_record(p_count jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE TABLE public.inventory_exceptions (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    order_id uuid NOT NULL,
    line_no integer,
    sku text,
    batch_lot text,
    quantity_short integer,
    authorized_by text,
    status text DEFAULT 'open'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_by uuid,
    resolved_at timestamp with time zone,
    kind text DEFAULT 'shortfall'::text NOT NULL,
    reason text,
    detail jsonb,
    resolution jsonb,
    CONSTRAINT inventory_exceptions_kind_known CHECK ((kind = ANY (ARRAY['shortfall'::text, 'over_limit'::text, 'blocked_batch'::text, 'uncatalogued'::text]))),
    CONSTRAINT inventory_exceptions_quantity_short_check CHECK ((quantity_short > 0)),
    CONSTRAINT inventory_exceptions_resolution_recorded CHECK (((status = 'resolved'::text) = (resolved_at IS NOT NULL))),
    CONSTRAINT inventory_exceptions_shortfall_names_units CHECK (((kind <> 'shortfall'::text) OR ((line_no IS NOT NULL) AND (sku IS NOT NULL) AND (quantity_short IS NOT NULL)))),
    CONSTRAINT inventory_exceptions_status_check CHECK ((status = ANY (ARRAY['open'::text, 'resolved'::text])))
);

COMMENT ON TABLE public.inventory_exceptions IS 'The exception queue: units lenient and offline sales sold that the books did not have (shortfall), and the offline sales that broke a rule they could not be refused for (over_limit, blocked_batch, uncatalogued). Open until resolved by a count or resolve_inventory_exception; each new row is announced on the channel posledger_inventory_exceptions.';

COMMENT ON COLUMN public.inventory_exceptions.kind IS 'shortfall (quantity_short units no batch covered), over_limit (a purchase limit), blocked_batch (a held or expired batch), uncatalogued (a sku the catalogue cannot weigh).';

COMMENT ON COLUMN public.inventory_exceptions.reason IS 'Why, in words (NULL on rows before migration 0020: a lenient sale''s shortfall).';

COMMENT ON COLUMN public.inventory_exceptions.resolution IS 'How it was closed by resolve_inventory_exception: who, why, the payload, the adjustment or count that moved stock.';

CREATE FUNCTION posledger_private.exception_announcement(p_row public.inventory_exceptions) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT jsonb_build_object(
        'id', p_row.id, 'store_id', p_row.store_id, 'kind', p_row.kind, 'order_id', p_row.order_id, 'sku', p_row.sku,
        'batch', p_row.batch_lot, 'quantity_short', p_row.quantity_short, 'created_at', p_row.created_at)::text
$$;

CREATE FUNCTION posledger_private.exception_problems(p_payload jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $_$
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
END $_$;

CREATE FUNCTION posledger_private.exception_resolve(p_resolution jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.exceptions_announce_here(p_store_id uuid, p_order_id uuid) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_store_id uuid := p_store_id;   -- a plain variable: Citus prunes shards by a scalar only
    v_rows     public.inventory_exceptions[];
BEGIN
    IF NOT posledger_private.placed_elsewhere('public.inventory_exceptions', v_store_id) THEN
        RETURN;
    END IF;
    -- Read, then announce: pg_notify inside a statement on the table would run on the worker too.
    SELECT ARRAY(SELECT e FROM public.inventory_exceptions e
                 WHERE e.store_id = v_store_id AND e.order_id = p_order_id ORDER BY e.id) INTO v_rows;
    PERFORM pg_notify('posledger_inventory_exceptions', posledger_private.exception_announcement(e))
    FROM unnest(v_rows) e;
END $$;

CREATE TABLE public.stores (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    loyalty_points_per_unit numeric(10,4) DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    max_sale_lines integer DEFAULT 500 NOT NULL,
    purchase_limit_grams numeric DEFAULT 30 NOT NULL,
    plant_limit integer DEFAULT 4 NOT NULL,
    uncatalogued_skus text DEFAULT 'refuse'::text NOT NULL,
    time_zone text DEFAULT 'America/Toronto'::text NOT NULL,
    reservation_minutes integer DEFAULT 1440 NOT NULL,
    parked_cart_minutes integer DEFAULT 30 NOT NULL,
    crsa text,
    crol text,
    CONSTRAINT stores_loyalty_points_per_unit_check CHECK ((loyalty_points_per_unit >= (0)::numeric)),
    CONSTRAINT stores_max_sale_lines_bounded CHECK (((max_sale_lines >= 1) AND (max_sale_lines <= 10000))),
    CONSTRAINT stores_parked_cart_minutes_bounded CHECK (((parked_cart_minutes >= 1) AND (parked_cart_minutes <= 43200))),
    CONSTRAINT stores_plant_limit_not_negative CHECK ((plant_limit >= 0)),
    CONSTRAINT stores_purchase_limit_grams_not_negative CHECK ((purchase_limit_grams >= (0)::numeric)),
    CONSTRAINT stores_reservation_minutes_bounded CHECK (((reservation_minutes >= 1) AND (reservation_minutes <= 43200))),
    CONSTRAINT stores_time_zone_known CHECK ((('1970-01-01 00:00:00+00'::timestamp with time zone AT TIME ZONE time_zone) IS NOT NULL)),
    CONSTRAINT stores_uncatalogued_skus_known CHECK ((uncatalogued_skus = ANY (ARRAY['refuse'::text, 'count_zero'::text])))
);

COMMENT ON TABLE public.stores IS 'One row per store. Created by the back office; posledger reads it.';

COMMENT ON COLUMN public.stores.loyalty_points_per_unit IS 'Loyalty points per whole currency unit of a sale''s total (a store may run a promotion rate).';

COMMENT ON COLUMN public.stores.max_sale_lines IS 'The most lines one sale may have at this store (1 to 10000; IV400 beyond).';

COMMENT ON COLUMN public.stores.purchase_limit_grams IS 'The most dried-equivalent grams one sale may hold (Ontario: 30).';

COMMENT ON COLUMN public.stores.plant_limit IS 'The most cannabis plants one sale may hold (4).';

COMMENT ON COLUMN public.stores.uncatalogued_skus IS 'A sale of a sku the catalogue does not know: refuse (IV404) or count_zero (0 g, flagged in the result).';

COMMENT ON COLUMN public.stores.time_zone IS 'The store''s time zone: its calendar date decides expiry and which equivalency factors are in force.';

COMMENT ON COLUMN public.stores.reservation_minutes IS 'How long a reservation (status reserved) holds its units before release_expired_reservations releases them; 1 minute to 30 days.';

COMMENT ON COLUMN public.stores.parked_cart_minutes IS 'How long a parked cart (status parked) holds its units before release_expired_reservations releases them; 1 minute to 30 days.';

COMMENT ON COLUMN public.stores.crsa IS 'The store''s Cannabis Retail Store Authorization (CRSA): how the OCS data platform names the store; unique.';

COMMENT ON COLUMN public.stores.crol IS 'The retailer''s Cannabis Retail Operator Licence (CROL), shared by its stores: transfers stay within one.';

CREATE FUNCTION posledger_private.existing_store(p_store_id uuid) RETURNS public.stores
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_store public.stores;
BEGIN
    SELECT * INTO v_store FROM public.stores WHERE id = p_store_id;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_store.id IS NULL
        THEN jsonb_build_array(jsonb_build_object('store_id', p_store_id)) ELSE '[]' END,
        'Name a store that exists: stores come from the back office (INSERT INTO stores).');
    RETURN v_store;
END $$;

CREATE FUNCTION posledger_private.gs1_date(p_yymmdd text) RETURNS date
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
DECLARE
    v_year integer;
    v_month integer;
    v_last date;
BEGIN
    IF p_yymmdd IS NULL OR p_yymmdd !~ '^[0-9]{2}(0[1-9]|1[0-2])[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    v_year := 2000 + substr(p_yymmdd, 1, 2)::integer;
    v_month := substr(p_yymmdd, 3, 2)::integer;
    v_last := make_date(v_year + v_month / 12, v_month % 12 + 1, 1) - 1;
    RETURN CASE WHEN substr(p_yymmdd, 5, 2) = '00' THEN v_last
                WHEN substr(p_yymmdd, 5, 2)::integer <= extract(day FROM v_last)
                    THEN make_date(v_year, v_month, substr(p_yymmdd, 5, 2)::integer) END;
END $_$;

CREATE FUNCTION posledger_private.gs1_element(p_ai text, p_value text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
DECLARE
    v_key text := CASE p_ai WHEN '01' THEN 'gtin' WHEN '10' THEN 'batch_lot' WHEN '13' THEN 'packaged_on_date'
                            WHEN '17' THEN 'expiry_date' WHEN '21' THEN 'serial' END;
    v_fixed integer := CASE p_ai WHEN '01' THEN 14 WHEN '13' THEN 6 WHEN '17' THEN 6 END;
    v_date date := CASE WHEN p_ai IN ('13', '17') THEN posledger_private.gs1_date(p_value) END;
    v_problem text;
BEGIN
    v_problem := CASE
        WHEN v_key IS NULL THEN
            format('unsupported AI (%s): only (01), (10), (13), (17) and (21) are read', left(p_ai, 10))
        WHEN v_fixed IS NOT NULL AND (length(p_value) <> v_fixed OR p_value !~ '^[0-9]*$') THEN
            format('AI (%s) must be %s digits, not "%s"', p_ai, v_fixed, left(p_value, 30))
        WHEN p_ai = '01' AND posledger_private.gtin14(p_value) IS NULL THEN
            format('check digit wrong in GTIN %s', p_value)
        WHEN v_fixed = 6 AND v_date IS NULL THEN
            format('AI (%s) is not a date YYMMDD: "%s"', p_ai, p_value)
        WHEN v_fixed IS NOT NULL THEN NULL
        WHEN p_value = '' THEN format('AI (%s) is empty', p_ai)
        WHEN length(p_value) > 20 THEN format('AI (%s) is longer than 20 characters', p_ai)
        WHEN p_value !~ '^[-!"%&''()*+,./0-9:;<=>?A-Z_a-z]+$' THEN
            format('AI (%s) has characters outside GS1 set 82: "%s"', p_ai,
                   left(regexp_replace(p_value, '[-!"%&''()*+,./0-9:;<=>?A-Z_a-z]', '', 'g'), 20))
    END;
    IF v_problem IS NOT NULL THEN
        RETURN jsonb_build_object('problem', v_problem);
    END IF;
    RETURN jsonb_build_object(v_key, CASE WHEN v_date IS NOT NULL THEN to_char(v_date, 'YYYY-MM-DD') ELSE p_value END);
END $_$;

CREATE FUNCTION posledger_private.gs1_next(p_rest text, p_bracketed boolean, OUT ai text, OUT value text, OUT rest text, OUT problem text) RETURNS record
    LANGUAGE plpgsql IMMUTABLE
    AS $$
DECLARE
    v_match text[];
BEGIN
    IF p_bracketed THEN
        v_match := regexp_match(p_rest, '^\(([^()]*)\)([^()]*)');
        ai := v_match[1];
        value := v_match[2];
        rest := substr(p_rest, length(ai) + length(value) + 3);
    ELSIF left(p_rest, 2) IN ('01', '10', '13', '17', '21') THEN
        ai := left(p_rest, 2);
        -- A fixed-length field takes its length whatever follows, so only 10 and 21 need FNC1 to end.
        value := CASE ai WHEN '01' THEN substr(p_rest, 3, 14) WHEN '13' THEN substr(p_rest, 3, 6)
                         WHEN '17' THEN substr(p_rest, 3, 6) ELSE split_part(substr(p_rest, 3), chr(29), 1) END;
        -- FNC1 ends a variable-length field; some encoders put one after a fixed-length field too, where
        -- it ends nothing: both are passed over.
        rest := ltrim(substr(p_rest, length(value) + 3), chr(29));
    ELSIF p_rest ~ '^[0-9]{2}' THEN
        problem := format('unsupported AI at "%s": only (01), (10), (13), (17) and (21) are read', left(p_rest, 20));
    END IF;
    problem := coalesce(problem, CASE WHEN ai IS NULL THEN format('unparsed text "%s"', left(p_rest, 30)) END);
END $$;

CREATE FUNCTION posledger_private.gs1_parse(p_scan text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
DECLARE
    v_rest text := btrim(coalesce(p_scan, ''), E' \t\r\n');
    v_bracketed boolean;
    v_next record;
    v_seen text[] := '{}'::text[];
    v_element jsonb;
    v_result jsonb := '{}'::jsonb;
BEGIN
    IF left(v_rest, 1) = ']' THEN
        -- GS1-128, DataBar, DataMatrix, QR, DotCode; EAN/UPC's ]E0 and ]E4 carry a plain GTIN.
        IF left(v_rest, 3) NOT IN (']C1', ']e0', ']d2', ']Q3', ']J1', ']E0', ']E4') THEN
            RETURN jsonb_build_object('problem', format('unsupported symbology identifier "%s"', left(v_rest, 3)));
        END IF;
        v_rest := substr(v_rest, 4);
    END IF;
    IF left(v_rest, 1) = chr(29) THEN
        v_rest := substr(v_rest, 2);
    END IF;
    IF v_rest = '' THEN
        RETURN '{"problem": "empty scan"}'::jsonb;
    ELSIF v_rest ~ '^([0-9]{8}|[0-9]{12,14})$' THEN
        RETURN CASE WHEN posledger_private.gtin14(v_rest) IS NULL
                    THEN jsonb_build_object('problem', format('check digit wrong in GTIN %s', v_rest))
                    ELSE jsonb_build_object('gtin', posledger_private.gtin14(v_rest)) END;
    END IF;
    v_bracketed := left(v_rest, 1) = '(';
    WHILE v_rest <> '' LOOP
        v_next := posledger_private.gs1_next(v_rest, v_bracketed);
        v_element := CASE WHEN v_next.problem IS NOT NULL THEN jsonb_build_object('problem', v_next.problem)
                          WHEN v_next.ai = ANY (v_seen)
                              THEN jsonb_build_object('problem', format('repeated AI (%s)', v_next.ai))
                          ELSE posledger_private.gs1_element(v_next.ai, v_next.value) END;
        IF v_element ? 'problem' THEN
            RETURN v_element;
        END IF;
        v_seen := v_seen || v_next.ai;
        v_result := v_result || v_element;
        v_rest := v_next.rest;
    END LOOP;
    IF NOT v_result ? 'gtin' THEN
        RETURN '{"problem": "no GTIN: the scan has no AI (01)"}'::jsonb;
    END IF;
    RETURN v_result;
END $_$;

CREATE FUNCTION posledger_private.gtin14(p_gtin text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT CASE WHEN p_gtin ~ '^([0-9]{8}|[0-9]{12,14})$' THEN (
        SELECT g.digits
        FROM (SELECT lpad(p_gtin, 14, '0') AS digits) g
        WHERE (SELECT sum(substr(g.digits, n, 1)::integer * CASE n % 2 WHEN 1 THEN 3 ELSE 1 END)
               FROM generate_series(1, 14) AS n) % 10 = 0) END
$_$;

CREATE FUNCTION posledger_private.iso_in_zone(p_at timestamp with time zone, p_zone text) RETURNS text
    LANGUAGE sql STABLE
    AS $$
    SELECT to_char(p_at AT TIME ZONE p_zone, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
           || CASE WHEN o < interval '0' THEN '-' ELSE '+' END || to_char(abs(extract(epoch FROM o))::integer / 3600, 'FM00')
           || ':' || to_char(abs(extract(epoch FROM o))::integer % 3600 / 60, 'FM00')
    FROM (SELECT (p_at AT TIME ZONE p_zone) - (p_at AT TIME ZONE 'UTC') AS o) z
$$;

CREATE FUNCTION posledger_private.json_is_boolean(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'boolean', false)
$$;

CREATE FUNCTION posledger_private.json_is_date(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT CASE WHEN coalesce(jsonb_typeof(p_value) = 'string'
                              AND p_value #>> '{}' ~ '^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-[0-9]{2}$', false)
                THEN substr(p_value #>> '{}', 9, 2)::integer BETWEEN 1 AND extract(day FROM
                         make_date(substr(p_value #>> '{}', 1, 4)::integer, substr(p_value #>> '{}', 6, 2)::integer, 1)
                         + interval '1 month - 1 day')
                ELSE false END
$_$;

CREATE FUNCTION posledger_private.json_is_given(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(jsonb_typeof(p_value) <> 'null', false)
$$;

CREATE FUNCTION posledger_private.json_is_lines(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'array'
                    AND jsonb_array_length(p_value) BETWEEN 1 AND posledger_private.max_lines(), false)
$$;

CREATE FUNCTION posledger_private.json_is_long(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string' AND length(p_value #>> '{}') > 200, false)
$$;

CREATE FUNCTION posledger_private.json_is_number(p_value jsonb, p_min numeric, p_max numeric, p_whole boolean DEFAULT false) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number'
                THEN p_value::numeric BETWEEN p_min AND p_max
                     AND (NOT p_whole OR p_value::numeric = trunc(p_value::numeric))
                ELSE false END
$$;

CREATE FUNCTION posledger_private.json_is_text(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string' AND btrim(p_value #>> '{}') <> '', false)
$$;

CREATE FUNCTION posledger_private.json_is_timestamp(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT CASE WHEN coalesce(jsonb_typeof(p_value) = 'string' AND p_value #>> '{}'
                              ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)$',
                              false)
                THEN posledger_private.json_is_date(to_jsonb(left(p_value #>> '{}', 10)))
                ELSE false END
$_$;

CREATE FUNCTION posledger_private.json_is_uuid(p_value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $_$
    SELECT coalesce(jsonb_typeof(p_value) = 'string'
                    AND p_value #>> '{}' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
                    false)
$_$;

CREATE FUNCTION posledger_private.json_lines(p_value jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE WHEN posledger_private.json_is_lines(p_value) THEN p_value ELSE '[]' END
$$;

CREATE FUNCTION posledger_private.lock_lots(p_lots text[], p_exclusive boolean) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM CASE WHEN p_exclusive THEN pg_advisory_xact_lock(x'6c6f7473'::integer, k)::text
                 ELSE pg_advisory_xact_lock_shared(x'6c6f7473'::integer, k)::text END
    FROM (SELECT DISTINCT hashtext(l) AS k FROM unnest(p_lots) l ORDER BY 1) keys;
END $$;

CREATE FUNCTION posledger_private.lock_timeout() RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
DECLARE
    v_value text := coalesce(nullif(current_setting('posledger.lock_timeout', true), ''), '3s');
    v_parts text[] := regexp_match(v_value, '^\s*([0-9]{1,9}(\.[0-9]{1,6})?)\s*(ms|s|min)?\s*$');
BEGIN
    IF v_parts IS NULL OR (v_parts[1]::numeric * CASE v_parts[3] WHEN 's' THEN 1000 WHEN 'min' THEN 60000 ELSE 1 END
                           NOT BETWEEN 1 AND 60000) THEN
        RAISE EXCEPTION USING ERRCODE = 'IV500', MESSAGE = 'misconfigured: posledger.lock_timeout is not a usable wait',
            DETAIL = jsonb_build_object('setting', 'posledger.lock_timeout', 'value', v_value,
                                        'allowed', 'a duration from 1ms to 1min, e.g. 3s or 500ms')::text,
            HINT = 'Correct or reset the setting (ALTER DATABASE/ROLE ... SET or RESET posledger.lock_timeout).';
    END IF;
    RETURN v_parts[1] || coalesce(v_parts[3], 'ms');
END $_$;

CREATE FUNCTION posledger_private.max_lines() RETURNS integer
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT 10000
$$;

CREATE FUNCTION posledger_private.ocs_day(p_store public.stores, p_day date) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_store_id uuid := p_store.id;   -- a plain variable: Citus prunes shards by a scalar only
    v_events   jsonb;
    v_position jsonb;
    v_differ   jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(e.event ORDER BY e.outbox_id), '[]') INTO v_events
    FROM posledger_private.ocs_events(v_store_id, ARRAY(
        SELECT o.id FROM public.ocs_outbox o WHERE o.store_id = v_store_id AND o.day = p_day)) e;
    -- The day's position is read once (it sums the store's ledger up to the day) and serves both the list and
    -- the check.
    WITH today AS MATERIALIZED (
        SELECT * FROM posledger_private.ocs_day_position(p_store, p_day)
    )
    SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'ocsSku', p.sku, 'upcAndBarcode', p.barcode, 'inventoryQuantityOnHand', p.on_hand::text,
                       'inventoryBookValue', p.book_value::numeric(14, 2)::text) ORDER BY p.sku), '[]')
            FROM today p WHERE p.on_hand <> 0 OR p.moved),
           -- The platform's reconciliation, per SKU: yesterday's position + today's events = today's position.
           (SELECT coalesce(jsonb_agg(jsonb_build_object('ocsSku', d.sku, 'previous', d.previous, 'events', d.events,
                                                         'position', d.on_hand) ORDER BY d.sku), '[]')
            FROM (SELECT sku, coalesce(y.on_hand, 0) AS previous, coalesce(e.events, 0) AS events,
                         coalesce(t.on_hand, 0) AS on_hand
                  FROM today t
                  FULL JOIN posledger_private.ocs_day_position(p_store, p_day - 1) y USING (sku)
                  FULL JOIN (SELECT ev->>'ocsSku' AS sku, sum((ev->>'inventoryQuantityChange')::integer) AS events
                             FROM jsonb_array_elements(v_events) ev GROUP BY 1) e USING (sku)) d
            WHERE d.previous + d.events <> d.on_hand)
    INTO v_position, v_differ;
    RETURN jsonb_build_object('store_id', v_store_id, 'crsa', p_store.crsa, 'crol', p_store.crol, 'day', p_day,
                              'events', jsonb_build_object('inventoryEventList', v_events),
                              'position', jsonb_build_object(
                                  'positionTimeStamp', posledger_private.iso_in_zone(
                                      ((p_day + 1)::timestamp AT TIME ZONE p_store.time_zone) - interval '1 millisecond',
                                      p_store.time_zone),
                                  'inventoryPositionList', v_position),
                              'check', jsonb_build_object('balanced', v_differ = '[]', 'differences', v_differ));
END $$;

CREATE FUNCTION posledger_private.ocs_day_position(p_store public.stores, p_day date) RETURNS TABLE(sku text, barcode text, on_hand bigint, book_value numeric, moved boolean)
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_store_id uuid := p_store.id;
BEGIN
    RETURN QUERY
    SELECT t.sku, coalesce(max(i.each_gtin), (SELECT min(g.gtin) FROM public.product_gtins g WHERE g.sku = t.sku), ''),
           sum(t.quantity)::bigint, sum(t.quantity * coalesce(i.unit_cost, 0)),
           bool_or((coalesce(t.occurred_at, t.created_at) AT TIME ZONE p_store.time_zone)::date = p_day)
    FROM public.ocs_inventory_transactions t
    LEFT JOIN public.ocs_inventory i ON i.store_id = t.store_id AND i.id = t.inventory_id
    WHERE t.store_id = v_store_id
      AND (coalesce(t.occurred_at, t.created_at) AT TIME ZONE p_store.time_zone)::date <= p_day
    GROUP BY t.sku;
END $$;

CREATE FUNCTION posledger_private.ocs_delivery_problems(p_delivery jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
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

CREATE FUNCTION posledger_private.ocs_events(p_store_id uuid, p_ids bigint[]) RETURNS TABLE(outbox_id bigint, event jsonb)
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN QUERY
    SELECT o.id, jsonb_strip_nulls(jsonb_build_object(
        'ocsSku', t.sku,
        'upcAndBarcode', coalesce(i.each_gtin, g.gtin, ''),
        'posTransactionTimeStamp', posledger_private.iso_in_zone(coalesce(t.occurred_at, t.created_at), s.time_zone),
        'posTransactionLineId', t.id::text,
        'inventoryEventType', m.event_type,
        'inventoryQuantityChange', t.quantity::text,
        'inventoryValueChange', (t.quantity * coalesce(i.unit_cost, 0))::numeric(14, 2)::text,
        -- A transfer's events, at both stores, carry its reference: the platform can pair them.
        'posSalesTransactionId', coalesce(po.receipt_number, tr.reference, trr.reference, t.reference_id::text,
                                          'ledger-' || t.id),
        'soldAtPrice', CASE WHEN t.transaction_type = 'sale' THEN p.price::numeric(14, 2)::text END,
        'reasonCategory', coalesce(m.reason_category, t.reason_code),
        -- A transfer's ledger rows carry the other store's CRSA in notes (transfer_out.sql, transfer_in.sql).
        'counterPartyCRSA', CASE WHEN t.transaction_type IN ('transfer_out', 'transfer_in', 'transfer_cancel')
                                 THEN t.notes END))
    FROM public.ocs_outbox o
    JOIN public.ocs_inventory_transactions t ON t.store_id = o.store_id AND t.id = o.ledger_id
    JOIN public.stores s ON s.id = o.store_id
    LEFT JOIN public.ocs_inventory i ON i.store_id = t.store_id AND i.id = t.inventory_id
    LEFT JOIN LATERAL (SELECT pg.gtin FROM public.product_gtins pg WHERE pg.sku = t.sku ORDER BY pg.gtin LIMIT 1) g ON true
    LEFT JOIN public.pos_orders po ON t.reference_type = 'pos_order' AND po.store_id = t.store_id AND po.id = t.reference_id
    LEFT JOIN public.transfers tr ON t.reference_type = 'store_transfer' AND tr.store_id = t.store_id
                                 AND tr.id = t.reference_id
    LEFT JOIN public.transfer_receipts trr ON t.reference_type = 'store_transfer_receipt' AND trr.store_id = t.store_id
                                          AND trr.id = t.reference_id
    LEFT JOIN LATERAL (SELECT round(sum(l.quantity * l.unit_price) / nullif(sum(l.quantity), 0), 2) AS price
                       FROM public.pos_order_lines l
                       WHERE po.id IS NOT NULL AND l.store_id = t.store_id AND l.order_id = po.id
                         AND l.inventory_id = t.inventory_id) p ON true
    LEFT JOIN LATERAL (SELECT e.event_type, e.reason_category FROM public.ocs_event_types e
                       WHERE e.transaction_type = t.transaction_type
                         AND (e.reason_code = t.reason_code OR e.reason_code IS NULL)
                       ORDER BY e.reason_code NULLS LAST LIMIT 1) m ON true
    WHERE o.store_id = p_store_id AND o.id = ANY (p_ids)
    ORDER BY o.id;
END $$;

CREATE FUNCTION posledger_private.ocs_resend_problems(p_request jsonb) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $_$
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
$_$;

CREATE FUNCTION posledger_private.ocs_unbalanced_days(p_store public.stores, p_ids bigint[]) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $$
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

CREATE FUNCTION posledger_private.placed_elsewhere(p_table regclass, p_store_id uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $_$
DECLARE
    v_query text := 'SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)
                     THEN NOT EXISTS (SELECT FROM pg_catalog.pg_dist_placement p
                                      WHERE p.shardid = pg_catalog.get_shard_id_for_distribution_column($1, $2)
                                        AND p.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group))
                     ELSE false END';
    v_elsewhere boolean := false;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        EXECUTE v_query INTO v_elsewhere USING p_table, p_store_id;
    END IF;
    RETURN v_elsewhere;
END $_$;

CREATE TABLE public.pos_orders (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    store_id uuid NOT NULL,
    receipt_number text NOT NULL,
    status text NOT NULL,
    policy text NOT NULL,
    authorized_by text,
    user_id uuid,
    cashier_id text,
    terminal_id text,
    payment_method text,
    subtotal numeric,
    tax numeric,
    total numeric NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    occurred_at timestamp with time zone,
    terminal_sequence bigint,
    expires_at timestamp with time zone,
    closed_at timestamp with time zone,
    CONSTRAINT pos_orders_lenient_authorized CHECK (((policy <> 'lenient'::text) OR (authorized_by IS NOT NULL))),
    CONSTRAINT pos_orders_offline_from_a_till CHECK (((policy <> 'offline'::text) OR ((occurred_at IS NOT NULL) AND (terminal_id IS NOT NULL) AND (terminal_sequence IS NOT NULL)))),
    CONSTRAINT pos_orders_policy_check CHECK ((policy = ANY (ARRAY['strict'::text, 'lenient'::text, 'offline'::text]))),
    CONSTRAINT pos_orders_receipt_number_check CHECK ((receipt_number <> ''::text)),
    CONSTRAINT pos_orders_reservation_expires CHECK (((status <> ALL (ARRAY['reserved'::text, 'parked'::text])) OR (expires_at IS NOT NULL))),
    CONSTRAINT pos_orders_status_known CHECK ((status = ANY (ARRAY['completed'::text, 'voided'::text, 'reserved'::text, 'parked'::text, 'cancelled'::text, 'expired'::text]))),
    CONSTRAINT pos_orders_total_check CHECK ((total >= (0)::numeric))
);

COMMENT ON TABLE public.pos_orders IS 'One row per sale (receipt), with the payload as sent and the result a replay returns.';

COMMENT ON COLUMN public.pos_orders.receipt_number IS 'The idempotency key of the sale, per store.';

COMMENT ON COLUMN public.pos_orders.status IS 'completed (a sale), voided by return_pos_sale; reserved or parked (a reservation holding its units), then completed, cancelled or expired.';

COMMENT ON COLUMN public.pos_orders.policy IS 'strict (refuse short lines), lenient (record them as inventory_exceptions; authorized_by says who allowed it), or offline (a sale a till made while the database was out of reach: never refused for stock or the law, every shortfall and breach an exception).';

COMMENT ON COLUMN public.pos_orders.occurred_at IS 'When the sale happened by the till''s clock, when the payload said (an offline sale always does); NULL: when it was recorded (created_at).';

COMMENT ON COLUMN public.pos_orders.terminal_sequence IS 'The till''s own sequence number of this sale, unique per store and terminal_id: a missing number is a sale the till sent that never arrived (terminal_sequence_gaps).';

COMMENT ON COLUMN public.pos_orders.expires_at IS 'A reservation''s end: after it release_expired_reservations releases its units.';

COMMENT ON COLUMN public.pos_orders.closed_at IS 'When a reservation was completed, cancelled or expired.';

CREATE TABLE public.pos_returns (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    store_id uuid NOT NULL,
    order_id uuid NOT NULL,
    reference text NOT NULL,
    kind text NOT NULL,
    reason text,
    actor text,
    points_due bigint DEFAULT 0 NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT pos_returns_kind_check CHECK ((kind = ANY (ARRAY['return'::text, 'void'::text]))),
    CONSTRAINT pos_returns_points_due_check CHECK ((points_due >= 0)),
    CONSTRAINT pos_returns_reference_check CHECK ((reference <> ''::text))
);

COMMENT ON TABLE public.pos_returns IS 'Returns and voids of orders; reference is the idempotency key per store.';

CREATE FUNCTION posledger_private.pos_return_claim(p_order public.pos_orders, p_return jsonb) RETURNS public.pos_returns
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_return_complete(p_order public.pos_orders, p_return public.pos_returns, p_lines posledger_private.pos_return_line[]) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_return_plan(p_order public.pos_orders, p_return jsonb) RETURNS posledger_private.pos_return_plan
    LANGUAGE plpgsql STABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_return_problems(p_return jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $_$
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
$_$;

CREATE FUNCTION posledger_private.pos_return_record(p_return jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_return_reverse_points(p_order public.pos_orders, p_return public.pos_returns) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_allocate(p_stock public.ocs_inventory[], p_lines posledger_private.pos_sale_line[], p_today date) RETURNS SETOF public.pos_sale_allocation
    LANGUAGE sql IMMUTABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_award_points(p_order public.pos_orders) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_blocked(p_stock public.ocs_inventory[], p_lines posledger_private.pos_sale_line[], p_today date) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_claim(p_store public.stores, p_sale jsonb) RETURNS public.pos_orders
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_complete(p_order public.pos_orders, p_lines posledger_private.pos_sale_line[], p_alloc public.pos_sale_allocation[], p_short jsonb, p_limits jsonb, p_held boolean) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_flag(p_order public.pos_orders, p_store public.stores, p_blocked jsonb, p_limits jsonb) RETURNS void
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_items(p_sale jsonb, p_today date) RETURNS SETOF posledger_private.pos_sale_line
    LANGUAGE plpgsql STABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_line_problems(p_store public.stores, p_sale jsonb, p_lines posledger_private.pos_sale_line[]) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_missing(p_store_id uuid, p_lines posledger_private.pos_sale_line[]) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object('sku', l.sku, 'batch', l.batch_lot)
                                      ORDER BY l.sku, l.batch_lot), '[]')
            FROM (SELECT DISTINCT sku, batch_lot FROM unnest(p_lines)) l
            WHERE NOT EXISTS (SELECT FROM public.ocs_inventory i
                              WHERE i.store_id = p_store_id AND i.sku = l.sku
                                AND (l.batch_lot IS NULL OR i.batch_lot = l.batch_lot)));
END $$;

CREATE FUNCTION posledger_private.pos_sale_problems(p_sale jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
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
END $_$;

CREATE FUNCTION posledger_private.pos_sale_record(p_sale jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_refuse_unlawful(p_store public.stores, p_lines posledger_private.pos_sale_line[], p_limits jsonb) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_shortfalls(p_lines posledger_private.pos_sale_line[], p_alloc public.pos_sale_allocation[]) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
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

CREATE FUNCTION posledger_private.pos_sale_totals(p_sale jsonb, p_lines posledger_private.pos_sale_line[]) RETURNS TABLE(ord integer, field text, sent numeric, lines numeric)
    LANGUAGE sql IMMUTABLE
    AS $$
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

CREATE TABLE public.ocs_shipments (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    store_id uuid NOT NULL,
    ocs_shipment_id text NOT NULL,
    received_by text,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ocs_shipments_ocs_shipment_id_check CHECK ((ocs_shipment_id <> ''::text))
);

COMMENT ON TABLE public.ocs_shipments IS 'One row per OCS shipment received into a store, with the payload and the result a replay returns.';

CREATE FUNCTION posledger_private.receiving_claim(p_store_id uuid, p_shipment jsonb) RETURNS public.ocs_shipments
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.receiving_complete(p_shipment public.ocs_shipments) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.receiving_lines(p_payload jsonb) RETURNS TABLE(line_no integer, sku text, batch_lot text, case_gtin text, each_gtin text, packaged_on_date date, expiry_date date, unit_cost numeric, shipped integer, received integer)
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT l.n::integer, l.line->>'sku', l.line->>'batch_lot',
           posledger_private.gtin14(l.line->>'case_gtin'), posledger_private.gtin14(l.line->>'each_gtin'),
           (l.line->>'packaged_on_date')::date, (l.line->>'expiry_date')::date,
           round((l.line->>'unit_cost')::numeric, 4),
           (l.line->>'quantity_shipped')::numeric::integer, (l.line->>'quantity_received')::numeric::integer
    FROM jsonb_array_elements(p_payload->'lines') WITH ORDINALITY AS l(line, n)
$$;

CREATE FUNCTION posledger_private.receiving_problems(p_shipment jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $_$
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
$_$;

CREATE FUNCTION posledger_private.receiving_record(p_shipment jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.refuse_busy(p_reason text) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'IV503', MESSAGE = 'busy: the rows of this call are locked by other calls',
        DETAIL = jsonb_build_object('lock_timeout', posledger_private.lock_timeout(), 'reason', p_reason)::text,
        HINT = 'Retry the same call with the same key.';
END $$;

CREATE FUNCTION posledger_private.refuse_catalogue_rows(p_bad jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
DECLARE
    v_flat jsonb := (SELECT jsonb_agg(jsonb_build_object('field', format('rows[%s].%s', (b->>'n')::integer - 1, p->>'field'),
                                                         'problem', p->>'problem'))
                     FROM jsonb_array_elements(p_bad) b, jsonb_array_elements(b->'problems') p);
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'IV400',
        MESSAGE = format('invalid catalogue load: %s row(s) have problems; nothing was loaded', jsonb_array_length(p_bad)),
        DETAIL = jsonb_build_object(
            'rows', (SELECT jsonb_agg(b - 'n') FROM jsonb_array_elements(jsonb_path_query_array(p_bad, '$[0 to 99]')) b),
            'bad_rows', jsonb_array_length(p_bad),
            'problems', jsonb_path_query_array(v_flat, '$[0 to 99]'), 'total', jsonb_array_length(v_flat))::text,
        HINT = 'Correct each row named by its line and load the file again, or skip the bad rows (skip_bad).';
END $_$;

CREATE FUNCTION posledger_private.refuse_closed(p_order public.pos_orders) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'IV408', MESSAGE = 'reservation closed: it holds no stock any more',
        DETAIL = jsonb_build_object('store_id', p_order.store_id, 'receipt_number', p_order.receipt_number,
                                    'order_id', p_order.id, 'status', p_order.status,
                                    'reserved', p_order.payload->>'status' IN ('reserved', 'parked'),
                                    'expires_at', p_order.expires_at, 'closed_at', p_order.closed_at,
                                    'now', now())::text,
        HINT = 'A reservation past its end is released by release_expired_reservations; reserve again under a new receipt number, or sell it as a sale.';
END $$;

CREATE FUNCTION posledger_private.refuse_misrouted(p_problems jsonb, p_what text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    PERFORM posledger_private.refuse_problems(
        '[{"field": "store_id", "problem": "must be the store_id the call is routed by"}]'::jsonb || p_problems, p_what);
END $$;

CREATE FUNCTION posledger_private.refuse_missing(p_missing jsonb, p_hint text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    IF p_missing <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV404', MESSAGE = 'not found: the payload names what does not exist',
            DETAIL = jsonb_build_object('missing', p_missing)::text, HINT = p_hint;
    END IF;
END $$;

CREATE FUNCTION posledger_private.refuse_other_payload(p_stored jsonb, p_sent jsonb, p_key jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    IF p_stored IS DISTINCT FROM p_sent THEN
        RAISE EXCEPTION USING ERRCODE = 'IV412',
            MESSAGE = 'idempotency conflict: this key was already used for a different payload',
            DETAIL = p_key::text,
            HINT = 'A retry must send the identical payload; a new operation needs a new key.';
    END IF;
END $$;

CREATE FUNCTION posledger_private.refuse_overflow(p_reason text, p_what text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    PERFORM posledger_private.refuse_problems(jsonb_build_array(jsonb_build_object(
        'field', 'lines', 'problem', 'would take a stock row beyond the 2147483647 units it can hold (' || p_reason || ')')),
        p_what);
END $$;

CREATE FUNCTION posledger_private.refuse_problems(p_problems jsonb, p_what text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
BEGIN
    IF p_problems <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV400', MESSAGE = format('invalid %s: the payload has problems', p_what),
            DETAIL = jsonb_build_object('problems', jsonb_path_query_array(p_problems, '$[0 to 99]'),
                                        'total', jsonb_array_length(p_problems))::text,
            HINT = 'Correct every field named in problems (the first 100 of total) and send it again.';
    END IF;
END $_$;

CREATE FUNCTION posledger_private.reservation_cancel(p_cancellation jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_order    public.pos_orders;
    v_store_id uuid;   -- a plain variable: Citus prunes shards by a scalar only
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.reservation_problems(p_cancellation, true), 'cancellation');
    v_order := posledger_private.reservation_locked(p_cancellation);
    v_store_id := v_order.store_id;
    IF v_order.status = 'cancelled' THEN
        PERFORM posledger_private.refuse_other_payload(v_order.result->'cancellation', p_cancellation,
            jsonb_build_object('store_id', v_store_id, 'receipt_number', v_order.receipt_number, 'order_id', v_order.id));
    END IF;
    IF v_order.status IN ('cancelled', 'expired') THEN
        RETURN v_order.result || '{"replayed": true}';
    END IF;
    IF v_order.status NOT IN ('reserved', 'parked') THEN
        PERFORM posledger_private.refuse_closed(v_order);
    END IF;
    PERFORM posledger_private.reservation_release(v_store_id, ARRAY[v_order.id], 'cancelled',
                                                  jsonb_build_object('cancellation', p_cancellation));
    RETURN (SELECT o.result FROM public.pos_orders o WHERE o.store_id = v_store_id AND o.id = v_order.id);
END $$;

CREATE FUNCTION posledger_private.reservation_complete(p_completion jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_order    public.pos_orders;
    v_store    public.stores;
    v_store_id uuid;   -- a plain variable: Citus prunes shards by a scalar only
    v_blocked  jsonb;
    v_alloc    public.pos_sale_allocation[];
    v_lines    posledger_private.pos_sale_line[];
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.reservation_problems(p_completion, false), 'completion');
    v_order := posledger_private.reservation_locked(p_completion);
    v_store_id := v_order.store_id;
    IF v_order.status = 'completed' AND v_order.payload->>'status' IN ('reserved', 'parked') THEN
        RETURN v_order.result || '{"replayed": true}';
    END IF;
    IF v_order.status NOT IN ('reserved', 'parked') OR v_order.expires_at <= now() THEN
        PERFORM posledger_private.refuse_closed(v_order);
    END IF;
    SELECT * INTO v_store FROM public.stores WHERE id = v_store_id;

    SELECT coalesce(jsonb_agg(DISTINCT jsonb_strip_nulls(jsonb_build_object(
               'sku', i.sku, 'batch', i.batch_lot, 'expiry_date', i.expiry_date,
               'status', CASE WHEN i.status <> 'active' THEN i.status ELSE 'expired' END))), '[]')
    INTO v_blocked
    FROM (SELECT i.* FROM public.ocs_inventory i
          WHERE i.store_id = v_store_id
            AND i.id = ANY (ARRAY(SELECT h.inventory_id FROM public.reservation_holds h
                                  WHERE h.store_id = v_store_id AND h.order_id = v_order.id AND h.released_at IS NULL))
          ORDER BY i.id FOR NO KEY UPDATE) i
    WHERE i.status <> 'active' OR i.expiry_date < posledger_private.store_today(v_store);
    IF v_blocked <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV423', MESSAGE = 'batch blocked: a batch this reservation holds may not be sold',
            DETAIL = jsonb_build_object('blocked', v_blocked, 'receipt_number', v_order.receipt_number)::text,
            HINT = 'Cancel the reservation (cancel_reservation) and reserve from another batch.';
    END IF;

    WITH held AS (
        UPDATE public.reservation_holds h SET released_at = now(), released_as = 'completed'
        WHERE h.store_id = v_store_id AND h.order_id = v_order.id AND h.released_at IS NULL
        RETURNING h.line_no, h.sku, h.batch_lot, h.inventory_id, h.quantity
    )
    SELECT ARRAY(SELECT ROW(line_no, sku, batch_lot, inventory_id, quantity, NULL)::public.pos_sale_allocation
                 FROM held) INTO v_alloc;
    UPDATE public.pos_orders SET status = 'completed', closed_at = now()
    WHERE store_id = v_store_id AND id = v_order.id
    RETURNING * INTO v_order;
    SELECT ARRAY(SELECT l FROM posledger_private.pos_sale_items(
                     v_order.payload, posledger_private.store_date(v_store, v_order.created_at)) l) INTO v_lines;
    RETURN posledger_private.pos_sale_complete(v_order, v_lines, v_alloc, '[]', v_order.result->'purchase_limit', true);
END $$;

CREATE FUNCTION posledger_private.reservation_hold(p_order public.pos_orders, p_alloc public.pos_sale_allocation[], p_limits jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION posledger_private.reservation_locked(p_payload jsonb) RETURNS public.pos_orders
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_store_id uuid := (p_payload->>'store_id')::uuid;
    v_order public.pos_orders;
BEGIN
    SELECT * INTO v_order FROM public.pos_orders o
    WHERE o.store_id = v_store_id AND o.receipt_number = p_payload->>'receipt_number'
    FOR NO KEY UPDATE;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_order.id IS NULL THEN jsonb_build_array(jsonb_build_object(
        'store_id', v_store_id, 'receipt_number', p_payload->>'receipt_number')) ELSE '[]' END,
        'Name a reservation of this store by its receipt_number (record_pos_sale with status reserved or parked).');
    RETURN v_order;
END $$;

CREATE FUNCTION posledger_private.reservation_problems(p_payload jsonb, p_cancel boolean) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
BEGIN
    RETURN (WITH payload AS (
            SELECT CASE jsonb_typeof(p_payload) WHEN 'object' THEN p_payload ELSE '{}' END AS s
        )
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', c.field, 'problem', c.problem) ORDER BY c.ord), '[]')
        FROM payload, LATERAL (VALUES
            (0, '$', 'the payload must be a JSON object', jsonb_typeof(p_payload) IS DISTINCT FROM 'object'),
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(s->'store_id')),
            (2, 'receipt_number', 'is required and must be a non-empty string (the reservation''s)',
                NOT posledger_private.json_is_text(s->'receipt_number')),
            (3, 'receipt_number', 'must be at most 200 characters', posledger_private.json_is_long(s->'receipt_number')),
            (4, 'cancelled_by', 'is required: who cancels the reservation',
                p_cancel AND NOT posledger_private.json_is_text(s->'cancelled_by')),
            (5, 'reason', 'must be a non-empty string when given',
                p_cancel AND posledger_private.json_is_given(s->'reason') AND NOT posledger_private.json_is_text(s->'reason'))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed);
END $_$;

CREATE FUNCTION posledger_private.reservation_release(p_store_id uuid, p_orders uuid[], p_as text, p_note jsonb) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_store_id uuid := p_store_id;   -- a plain variable: Citus prunes shards by a scalar only
    -- The release's time, as a value: Citus refuses now() beside a column reference in an UPDATE.
    v_now    timestamptz := now();
    v_units bigint;
    v_closed bigint;
    v_nothing jsonb;
BEGIN
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = v_store_id
      AND i.id = ANY (ARRAY(SELECT h.inventory_id FROM public.reservation_holds h
                            WHERE h.store_id = v_store_id AND h.order_id = ANY (p_orders) AND h.released_at IS NULL))
    ORDER BY i.id FOR NO KEY UPDATE;

    WITH released AS (
        UPDATE public.reservation_holds h SET released_at = v_now, released_as = p_as
        WHERE h.store_id = v_store_id AND h.order_id = ANY (p_orders) AND h.released_at IS NULL
        RETURNING h.order_id, h.inventory_id, h.sku, h.batch_lot, h.quantity
    ), restocked AS (
        UPDATE public.ocs_inventory i
        SET quantity_reserved = i.quantity_reserved - r.quantity,
            quantity_available = CASE WHEN i.status = 'active' THEN i.quantity_available + r.quantity ELSE 0 END,
            updated_at = v_now
        FROM (SELECT inventory_id, sum(quantity)::integer AS quantity FROM released GROUP BY inventory_id) r
        WHERE i.store_id = v_store_id AND i.id = r.inventory_id
        RETURNING r.quantity
    ), by_order AS (
        -- Each order's addition to its result, built here: Citus refuses a STABLE function (jsonb_build_object)
        -- beside a column reference in the UPDATE itself.
        SELECT order_id, jsonb_build_object('status', p_as, 'closed_at', v_now, 'released', jsonb_agg(
                   jsonb_build_object('sku', sku, 'batch', batch_lot, 'quantity_released', quantity)
                   ORDER BY inventory_id)) || p_note AS released
        FROM released GROUP BY order_id
    ), closed AS (
        -- Driven by the released holds, one index probe per order. Joined to unnest(p_orders) instead,
        -- neither side indexed, it ran as a nested loop when the statistics said no hold was open:
        -- 5 * 10^7 comparisons and 11 s for 10,000 orders (docs/benchmarks.md, "Reservations").
        UPDATE public.pos_orders o
        SET status = p_as, closed_at = v_now,
            result = o.result || b.released
        FROM by_order b
        WHERE o.store_id = v_store_id AND o.id = b.order_id
        RETURNING o.id
    )
    -- Every data-modifying part runs whether or not this reads it.
    SELECT coalesce(sum(quantity), 0), (SELECT count(*) FROM closed) INTO v_units, v_closed FROM restocked;
    -- An open reservation holds something (the books' invariant), so each order was closed above; one
    -- that held nothing is closed here, nothing released, rather than left open for the next call.
    IF v_closed < cardinality(p_orders) THEN
        v_nothing := jsonb_build_object('status', p_as, 'closed_at', v_now, 'released', '[]'::jsonb) || p_note;
        UPDATE public.pos_orders o
        SET status = p_as, closed_at = v_now,
            result = o.result || v_nothing
        WHERE o.store_id = v_store_id AND o.id = ANY (p_orders) AND o.status IN ('reserved', 'parked');
    END IF;
    RETURN v_units;
END $$;

CREATE FUNCTION posledger_private.routed(p_store_id uuid, p_payload jsonb) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    RETURN coalesce(posledger_private.json_is_uuid(p_payload->'store_id') AND (p_payload->>'store_id')::uuid = p_store_id,
                    false);
END $$;

CREATE FUNCTION posledger_private.stock_batches(p_store_id uuid, p_batches jsonb, p_movement jsonb, p_why text) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_stocked jsonb;
BEGIN
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = p_store_id
      AND i.sku = ANY (ARRAY(SELECT b->>'sku' FROM jsonb_array_elements(p_batches) b))
      AND i.batch_lot = ANY (ARRAY(SELECT b->>'batch_lot' FROM jsonb_array_elements(p_batches) b))
    ORDER BY i.id FOR NO KEY UPDATE;
    WITH batch AS (
        SELECT b.*, h.status AS held, h.reference AS held_by
        FROM jsonb_to_recordset(p_batches) AS b(sku text, batch_lot text, units integer, case_gtin text,
                                                each_gtin text, packaged_on_date date, expiry_date date,
                                                unit_cost numeric)
        LEFT JOIN LATERAL (
            SELECT h.status, h.reference FROM public.batch_lot_holds h
            WHERE h.batch_lot = b.batch_lot AND (h.sku IS NULL OR h.sku = b.sku)
              AND (h.store_id IS NULL OR h.store_id = p_store_id)
            ORDER BY array_position(ARRAY['quarantined', 'recalled', 'awaiting_destruction'], h.status) DESC
            LIMIT 1) h ON true
    ), stocked AS (
        INSERT INTO public.ocs_inventory AS i (store_id, sku, batch_lot, case_gtin, each_gtin, packaged_on_date,
                                             expiry_date, unit_cost, quantity_on_hand, quantity_available, status,
                                             movement)
        SELECT p_store_id, b.sku, b.batch_lot, b.case_gtin, b.each_gtin, b.packaged_on_date, b.expiry_date,
               b.unit_cost, b.units, CASE WHEN b.held IS NULL THEN b.units ELSE 0 END, coalesce(b.held, 'active'),
               p_movement
        FROM batch b ORDER BY b.sku, b.batch_lot
        ON CONFLICT ON CONSTRAINT ocs_inventory_one_row_per_batch DO UPDATE
        SET quantity_on_hand = i.quantity_on_hand + excluded.quantity_on_hand,
            quantity_available = i.quantity_available
                                 -- A searched CASE: Citus mis-plans a simple CASE x WHEN ... in DML (its issue 2862).
                                 + CASE WHEN i.status = 'active' THEN excluded.quantity_on_hand ELSE 0 END,
            case_gtin = coalesce(i.case_gtin, excluded.case_gtin),
            each_gtin = coalesce(i.each_gtin, excluded.each_gtin),
            packaged_on_date = coalesce(i.packaged_on_date, excluded.packaged_on_date),
            expiry_date = coalesce(i.expiry_date, excluded.expiry_date),
            unit_cost = coalesce(excluded.unit_cost, i.unit_cost),   -- the latest arrival's cost, when it gave one
            updated_at = excluded.updated_at,   -- the column's default, now(): Citus refuses now() here
            movement = excluded.movement
        -- xmax is 0 on a row this statement inserted, and set on one it updated (the upsert idiom).
        RETURNING i.id, i.store_id, i.sku, i.batch_lot, i.quantity_on_hand, i.quantity_available, i.status,
                  i.xmax = 0 AS created
    ), arrived_held AS (
        INSERT INTO public.batch_status_changes (store_id, inventory_id, sku, batch_lot, from_status, to_status,
                                                 quantity_on_hand, reference, reason, actor)
        SELECT s.store_id, s.id, s.sku, s.batch_lot, 'active', s.status, s.quantity_on_hand, b.held_by,
               'received while the lot is held: ' || p_why, coalesce(p_movement->>'actor', session_user)
        FROM stocked s JOIN batch b ON b.sku = s.sku AND b.batch_lot = s.batch_lot
        WHERE s.created AND b.held IS NOT NULL
    )
    SELECT jsonb_agg(jsonb_build_object('id', s.id, 'sku', s.sku, 'batch_lot', s.batch_lot,
                                        'quantity_on_hand', s.quantity_on_hand,
                                        'quantity_available', s.quantity_available, 'status', s.status,
                                        'held_by', CASE WHEN s.status <> 'active' THEN b.held_by END)
                     ORDER BY s.sku, s.batch_lot)
    INTO v_stocked
    FROM stocked s JOIN batch b ON b.sku = s.sku AND b.batch_lot = s.batch_lot;
    RETURN coalesce(v_stocked, '[]');
END $$;

CREATE FUNCTION posledger_private.store_date(p_store public.stores, p_at timestamp with time zone) RETURNS date
    LANGUAGE sql STABLE
    AS $$
    SELECT (p_at AT TIME ZONE p_store.time_zone)::date
$$;

CREATE FUNCTION posledger_private.store_today(p_store public.stores) RETURNS date
    LANGUAGE sql STABLE
    AS $$
    SELECT (now() AT TIME ZONE p_store.time_zone)::date
$$;

CREATE TABLE public.transfers (
    store_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    reference text NOT NULL,
    to_store_id uuid NOT NULL,
    to_crsa text NOT NULL,
    status text DEFAULT 'in_transit'::text NOT NULL,
    actor text NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    cancel_payload jsonb,
    cancel_result jsonb,
    cancelled_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    received_at timestamp with time zone,
    CONSTRAINT transfers_cancel_recorded CHECK (((status = 'cancelled'::text) = (cancelled_at IS NOT NULL))),
    CONSTRAINT transfers_not_to_itself CHECK ((to_store_id <> store_id)),
    CONSTRAINT transfers_reference_check CHECK ((reference <> ''::text)),
    CONSTRAINT transfers_status_check CHECK ((status = ANY (ARRAY['in_transit'::text, 'cancelled'::text])))
);

COMMENT ON TABLE public.transfers IS 'Transfers out of a store (the sender''s record, by its store_id): the lines sent by batch (payload), in transit until received at to_store_id or cancelled (docs/transfers.md).';

COMMENT ON COLUMN public.transfers.received_at IS 'When the receiving store recorded this transfer (transfer_in); a received transfer cannot be cancelled.';

CREATE FUNCTION posledger_private.transfer_cancel_complete(p_header public.transfers, p_cancel jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_movement jsonb;
    v_skus     text[];
    v_lots     text[];
    v_units    integer[];
    v_lines    jsonb;
    v_result   jsonb;
    v_at       timestamptz := now();
BEGIN
    SELECT array_agg(l.sku), array_agg(l.batch_lot), array_agg(l.quantity) INTO v_skus, v_lots, v_units
    FROM posledger_private.transfer_lines(p_header.payload) l;
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = v_store_id AND i.sku = ANY (v_skus) AND i.batch_lot = ANY (v_lots)
    ORDER BY i.id FOR NO KEY UPDATE;
    -- The ledger trigger labels its rows with this; notes is the CRSA the units were bound for.
    v_movement := jsonb_build_object('type', 'transfer_cancel', 'reference_type', 'store_transfer',
                                     'reference_id', p_header.id, 'notes', p_header.to_crsa,
                                     'actor', p_cancel->>'actor');
    WITH moved AS (
        UPDATE public.ocs_inventory i
        SET quantity_on_hand = i.quantity_on_hand + l.quantity,
            quantity_available = i.quantity_available + CASE WHEN i.status = 'active' THEN l.quantity ELSE 0 END,
            updated_at = now(),
            movement = v_movement
        FROM unnest(v_skus, v_lots, v_units) AS l(sku, batch_lot, quantity)
        WHERE i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot
        RETURNING i.id, i.sku, i.batch_lot, l.quantity
    )
    SELECT jsonb_agg(jsonb_build_object('sku', sku, 'batch_lot', batch_lot, 'quantity', quantity) ORDER BY id)
    INTO v_lines FROM moved;
    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'reference', p_header.reference, 'to_store_id', p_header.to_store_id,
        'to_crsa', p_header.to_crsa, 'status', 'cancelled', 'timestamp', v_at, 'replayed', false, 'lines', v_lines);
    UPDATE public.transfers
    SET status = 'cancelled', cancelled_at = v_at, cancel_payload = p_cancel, cancel_result = v_result
    WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;

CREATE FUNCTION posledger_private.transfer_cancel_record(p_cancel jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_store_id uuid;
    v_header   public.transfers;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.transfer_problems(p_cancel, 'cancel'), 'transfer');
    v_store_id := (p_cancel->>'store_id')::uuid;
    SELECT * INTO v_header FROM public.transfers
    WHERE store_id = v_store_id AND reference = p_cancel->>'reference' FOR NO KEY UPDATE;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_header.id IS NULL
        THEN jsonb_build_array(jsonb_build_object('store_id', v_store_id, 'transfer', p_cancel->>'reference'))
        ELSE '[]' END, 'Cancel a transfer this store sent, by its reference.');
    IF v_header.status = 'cancelled' THEN
        PERFORM posledger_private.refuse_other_payload(v_header.cancel_payload, p_cancel, jsonb_build_object(
            'store_id', v_store_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header.cancel_result || '{"replayed": true}';
    END IF;
    PERFORM posledger_private.refuse_problems(CASE WHEN v_header.received_at IS NOT NULL
        THEN jsonb_build_array(jsonb_build_object('field', 'reference', 'problem', format(
            'names a transfer %s has received: its units are there; send them back by a transfer', v_header.to_crsa)))
        ELSE '[]' END, 'transfer');
    RETURN posledger_private.transfer_cancel_complete(v_header, p_cancel);
END $$;

CREATE TABLE public.transfer_receipts (
    store_id uuid NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    reference text NOT NULL,
    from_store_id uuid NOT NULL,
    from_crsa text NOT NULL,
    actor text NOT NULL,
    payload jsonb NOT NULL,
    result jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT transfer_receipts_not_from_itself CHECK ((from_store_id <> store_id)),
    CONSTRAINT transfer_receipts_reference_check CHECK ((reference <> ''::text))
);

COMMENT ON TABLE public.transfer_receipts IS 'Transfers received by a store (the receiver''s record, by its store_id): per line the units sent and received, the variance between them (docs/transfers.md).';

CREATE FUNCTION posledger_private.transfer_in_complete(p_header public.transfer_receipts, p_own_crsa text, p_sent jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_batches  jsonb;
    v_stocked  jsonb;
    v_lines    jsonb;
    v_result   jsonb;
BEGIN
    SELECT jsonb_agg(coalesce(s.line, '{}') - 'quantity' || jsonb_build_object(
               'sku', l.sku, 'batch_lot', l.batch_lot, 'units', l.quantity,
               'expiry_date', coalesce((s.line->>'expiry_date')::date, l.expiry_date)))
    INTO v_batches
    FROM posledger_private.transfer_lines(p_header.payload) l
    LEFT JOIN jsonb_array_elements(p_sent) s(line) ON s.line->>'sku' = l.sku AND s.line->>'batch_lot' = l.batch_lot
    WHERE l.quantity > 0;
    -- The ledger trigger labels its rows with this; notes is the sender's CRSA (counterPartyCRSA).
    v_stocked := posledger_private.stock_batches(v_store_id, coalesce(v_batches, '[]'),
        jsonb_build_object('type', 'transfer_in', 'reference_type', 'store_transfer_receipt',
                           'reference_id', p_header.id, 'notes', p_header.from_crsa, 'actor', p_header.actor),
        format('transfer %s from %s', p_header.reference, p_header.from_crsa));

    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'sku', l.sku, 'batch_lot', l.batch_lot, 'sent', l.sent, 'received', l.quantity,
               'variance', l.quantity - l.sent, 'status', s->'status', 'held_by', s->'held_by'))
           ORDER BY l.sku, l.batch_lot)
    INTO v_lines
    FROM posledger_private.transfer_lines(p_header.payload) l
    LEFT JOIN jsonb_array_elements(v_stocked) s ON s->>'sku' = l.sku AND s->>'batch_lot' = l.batch_lot;
    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'crsa', p_own_crsa, 'reference', p_header.reference,
        'from_store_id', p_header.from_store_id, 'from_crsa', p_header.from_crsa, 'timestamp', p_header.created_at,
        'replayed', false, 'balanced', NOT EXISTS (SELECT FROM jsonb_array_elements(v_lines) e
                                                  WHERE (e->>'variance')::integer <> 0),
        'lines', v_lines);
    UPDATE public.transfer_receipts SET result = v_result WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;

CREATE FUNCTION posledger_private.transfer_in_record(p_receipt jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_store_id uuid;
    v_from_id  uuid;
    v_parties  record;
    v_header   public.transfer_receipts;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.transfer_problems(p_receipt, 'in'), 'transfer');
    v_store_id := (p_receipt->>'store_id')::uuid;
    v_from_id := (p_receipt->>'from_store_id')::uuid;
    v_parties := posledger_private.transfer_parties(v_store_id, v_from_id, 'from_store_id');

    INSERT INTO public.transfer_receipts (store_id, reference, from_store_id, from_crsa, actor, payload)
    VALUES (v_store_id, p_receipt->>'reference', v_from_id, v_parties.other_crsa, p_receipt->>'actor', p_receipt)
    ON CONFLICT ON CONSTRAINT transfer_receipts_once DO NOTHING
    RETURNING * INTO v_header;
    IF NOT FOUND THEN
        SELECT * INTO v_header FROM public.transfer_receipts
        WHERE store_id = v_store_id AND from_store_id = v_from_id AND reference = p_receipt->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_header.payload, p_receipt, jsonb_build_object(
            'store_id', v_store_id, 'from_store_id', v_from_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header.result || '{"replayed": true}';
    END IF;
    -- The lots first (a status change of one takes turns with its arrivals: lock_lots), then the sender's
    -- transfer, then existing rows in id order (stock_batches).
    PERFORM posledger_private.lock_lots(ARRAY(SELECT l.batch_lot FROM posledger_private.transfer_lines(p_receipt) l), false);
    RETURN posledger_private.transfer_in_complete(v_header, v_parties.own_crsa, posledger_private.transfer_in_sent(v_header));
END $$;

CREATE FUNCTION posledger_private.transfer_in_sent(p_header public.transfer_receipts) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_from_id uuid := p_header.from_store_id;   -- a plain variable: Citus prunes shards by a scalar only
    v_at      timestamptz := p_header.created_at;   -- a value: Citus refuses now() beside a column in an UPDATE
    v_sent    public.transfers;
BEGIN
    SELECT * INTO v_sent FROM public.transfers t
    WHERE t.store_id = v_from_id AND t.reference = p_header.reference AND t.to_store_id = p_header.store_id
    FOR NO KEY UPDATE;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_sent.id IS NULL
        THEN jsonb_build_array(jsonb_build_object('transfer', p_header.reference, 'from_store_id', v_from_id))
        ELSE '[]' END, 'Receive a transfer the sending store sent to this store, by its reference.');
    PERFORM posledger_private.refuse_problems(CASE WHEN v_sent.status = 'cancelled'
        THEN '[{"field": "reference", "problem": "names a transfer the sending store cancelled: its units are back there"}]'::jsonb
        ELSE '[]' END, 'transfer');
    UPDATE public.transfers SET received_at = v_at WHERE store_id = v_from_id AND id = v_sent.id;
    RETURN v_sent.result->'lines';
END $$;

CREATE FUNCTION posledger_private.transfer_lines(p_payload jsonb) RETURNS TABLE(sku text, batch_lot text, quantity integer, sent integer, expiry_date date)
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT l->>'sku', l->>'batch_lot', coalesce(l->>'quantity', l->>'received')::numeric::integer,
           coalesce(l->>'quantity', l->>'sent')::numeric::integer,
           CASE WHEN posledger_private.json_is_given(l->'expiry_date') THEN (l->>'expiry_date')::date END
    FROM jsonb_array_elements(p_payload->'lines') l
$$;

CREATE FUNCTION posledger_private.transfer_out_complete(p_header public.transfers, p_own_crsa text) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    -- A plain variable, not p_header.store_id: Citus prunes shards by a scalar parameter only.
    v_store_id uuid := p_header.store_id;
    v_movement jsonb;
    v_short    jsonb;
    v_lines    jsonb;
    v_result   jsonb;
    v_skus     text[];
    v_lots     text[];
    v_units    integer[];
BEGIN
    -- Arrays, unnested in the statements on stock: Citus routes a statement by its store, and plans
    -- unnest of a variable where it might not a function of a jsonb.
    SELECT array_agg(l.sku), array_agg(l.batch_lot), array_agg(l.quantity) INTO v_skus, v_lots, v_units
    FROM posledger_private.transfer_lines(p_header.payload) l;
    PERFORM FROM public.ocs_inventory i
    WHERE i.store_id = v_store_id AND i.sku = ANY (v_skus) AND i.batch_lot = ANY (v_lots)
    ORDER BY i.id FOR NO KEY UPDATE;
    SELECT coalesce(jsonb_agg(jsonb_build_object('sku', i.sku, 'batch', i.batch_lot, 'requested', l.quantity,
                                                 'available', i.quantity_available) ORDER BY i.id), '[]')
    INTO v_short
    FROM unnest(v_skus, v_lots, v_units) AS l(sku, batch_lot, quantity)
    JOIN public.ocs_inventory i ON i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot
    WHERE i.quantity_available < l.quantity;
    IF v_short <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV409', MESSAGE = 'insufficient stock: the transfer takes more than is available',
            DETAIL = jsonb_build_object('short_lines', v_short)::text,
            HINT = 'Send at most the available units of each batch: quarantined, reserved and held units stay.';
    END IF;

    -- The ledger trigger labels its rows with this (_triggers.sql); notes is the counterpart's CRSA, which
    -- the OCS feed reports as counterPartyCRSA (ocs_report.sql). Built here: Citus refuses a STABLE
    -- function beside a column reference in an UPDATE.
    v_movement := jsonb_build_object('type', 'transfer_out', 'reference_type', 'store_transfer',
                                     'reference_id', p_header.id, 'notes', p_header.to_crsa, 'actor', p_header.actor);
    WITH moved AS (
        UPDATE public.ocs_inventory i
        SET quantity_on_hand = i.quantity_on_hand - l.quantity,
            quantity_available = i.quantity_available - l.quantity,
            updated_at = now(),
            movement = v_movement
        FROM unnest(v_skus, v_lots, v_units) AS l(sku, batch_lot, quantity)
        WHERE i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot
        RETURNING i.id, i.sku, i.batch_lot, l.quantity, i.expiry_date, i.packaged_on_date, i.each_gtin, i.case_gtin,
                  i.unit_cost
    )
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'sku', sku, 'batch_lot', batch_lot, 'quantity', quantity, 'expiry_date', expiry_date,
               'packaged_on_date', packaged_on_date, 'each_gtin', each_gtin, 'case_gtin', case_gtin,
               'unit_cost', unit_cost)) ORDER BY id)
    INTO v_lines FROM moved;

    v_result := jsonb_build_object(
        'id', p_header.id, 'store_id', v_store_id, 'crsa', p_own_crsa, 'reference', p_header.reference,
        'to_store_id', p_header.to_store_id, 'to_crsa', p_header.to_crsa, 'status', 'in_transit',
        'timestamp', p_header.created_at, 'replayed', false, 'lines', v_lines);
    UPDATE public.transfers SET result = v_result WHERE store_id = v_store_id AND id = p_header.id;
    RETURN v_result;
END $$;

CREATE FUNCTION posledger_private.transfer_out_record(p_transfer jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_store_id uuid;
    v_parties  record;
    v_header   public.transfers;
    v_missing  jsonb;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.transfer_problems(p_transfer, 'out'), 'transfer');
    v_store_id := (p_transfer->>'store_id')::uuid;
    v_parties := posledger_private.transfer_parties(v_store_id, (p_transfer->>'to_store_id')::uuid, 'to_store_id');
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('sku', l.sku, 'batch', l.batch_lot)), '[]') INTO v_missing
    FROM posledger_private.transfer_lines(p_transfer) l
    WHERE NOT EXISTS (SELECT FROM public.ocs_inventory i
                      WHERE i.store_id = v_store_id AND i.sku = l.sku AND i.batch_lot = l.batch_lot);
    PERFORM posledger_private.refuse_missing(v_missing, 'Transfer only batches this store has stocked.');

    INSERT INTO public.transfers (store_id, reference, to_store_id, to_crsa, actor, payload)
    VALUES (v_store_id, p_transfer->>'reference', (p_transfer->>'to_store_id')::uuid, v_parties.other_crsa,
            p_transfer->>'actor', p_transfer)
    ON CONFLICT ON CONSTRAINT transfers_reference_once DO NOTHING
    RETURNING * INTO v_header;
    IF NOT FOUND THEN
        SELECT * INTO v_header FROM public.transfers WHERE store_id = v_store_id AND reference = p_transfer->>'reference';
        PERFORM posledger_private.refuse_other_payload(v_header.payload, p_transfer, jsonb_build_object(
            'store_id', v_store_id, 'reference', v_header.reference, 'id', v_header.id));
        RETURN v_header.result || '{"replayed": true}';
    END IF;
    RETURN posledger_private.transfer_out_complete(v_header, v_parties.own_crsa);
END $$;

CREATE FUNCTION posledger_private.transfer_parties(p_store_id uuid, p_other_id uuid, p_field text, OUT own_crsa text, OUT other_crsa text) RETURNS record
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_own   public.stores;
    v_other public.stores;
BEGIN
    SELECT * INTO v_own FROM public.stores WHERE id = p_store_id;
    SELECT * INTO v_other FROM public.stores WHERE id = p_other_id;
    PERFORM posledger_private.refuse_missing((
        SELECT coalesce(jsonb_agg(jsonb_build_object(m.field, m.id)), '[]')
        FROM (VALUES ('store_id', p_store_id, v_own.id), (p_field, p_other_id, v_other.id)) AS m(field, id, found)
        WHERE m.found IS NULL), 'Transfer between stores that exist.');
    PERFORM posledger_private.refuse_problems((
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', c.field, 'problem', c.problem) ORDER BY c.ord), '[]')
        FROM (VALUES
            (1, p_field, 'is this store: a transfer moves stock between two stores', v_own.id = v_other.id),
            (2, p_field, 'is a store of another retailer: a transfer stays within one CROL',
                v_own.id <> v_other.id AND NOT coalesce(v_own.crol = v_other.crol, false)),
            (3, 'store_id', 'has no CRSA: the platform names a transfer''s stores by their CRSA', v_own.crsa IS NULL),
            (4, p_field, 'has no CRSA: the platform names a transfer''s stores by their CRSA', v_other.crsa IS NULL)
        ) AS c(ord, field, problem, failed)
        WHERE c.failed), 'transfer');
    own_crsa := v_own.crsa;
    other_crsa := v_other.crsa;
END $$;

CREATE FUNCTION posledger_private.transfer_problems(p_payload jsonb, p_kind text) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $_$
    WITH doc AS (
        SELECT CASE jsonb_typeof(p_payload) WHEN 'object' THEN p_payload ELSE '{}' END AS d
    ), problem AS (
        SELECT c.field, c.problem, c.ord
        FROM doc, LATERAL (VALUES
            (0, '$', 'the payload must be a JSON object', jsonb_typeof(p_payload) IS DISTINCT FROM 'object'),
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(d->'store_id')),
            (2, 'reference', 'is required and must be a non-empty string: the transfer''s idempotency key',
                NOT posledger_private.json_is_text(d->'reference')),
            (3, 'reference', 'must be at most 200 characters', posledger_private.json_is_long(d->'reference')),
            (4, 'to_store_id', 'is required and must be a uuid: the receiving store',
                p_kind = 'out' AND NOT posledger_private.json_is_uuid(d->'to_store_id')),
            (5, 'from_store_id', 'is required and must be a uuid: the sending store',
                p_kind = 'in' AND NOT posledger_private.json_is_uuid(d->'from_store_id')),
            (6, 'actor', 'is required and must be a non-empty string: who did it', NOT posledger_private.json_is_text(d->'actor')),
            (7, 'note', 'must be a non-empty string when given',
                posledger_private.json_is_given(d->'note') AND NOT posledger_private.json_is_text(d->'note')),
            (8, 'lines', format('is required and must be an array of 1 to %s lines', posledger_private.max_lines()),
                p_kind <> 'cancel' AND NOT posledger_private.json_is_lines(d->'lines'))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed
        UNION ALL
        SELECT format('lines[%s].%s', i.n - 1, c.field), c.problem, 100 * i.n + c.ord
        FROM doc, LATERAL (
                SELECT l.line, l.n, count(*) OVER (PARTITION BY l.line->'sku', l.line->'batch_lot') AS naming
                FROM jsonb_array_elements(CASE WHEN p_kind = 'cancel' THEN '[]'
                                               ELSE posledger_private.json_lines(d->'lines') END)
                     WITH ORDINALITY AS l(line, n)) i,
             LATERAL (VALUES
                (1, 'sku', 'is required and must be a non-empty string', NOT posledger_private.json_is_text(i.line->'sku')),
                (2, 'batch_lot', 'is required and must be a non-empty string: a transfer moves named batches',
                    NOT posledger_private.json_is_text(i.line->'batch_lot')),
                (3, 'quantity', 'must be a whole number from 1 to 1000000',
                    p_kind = 'out' AND NOT posledger_private.json_is_number(i.line->'quantity', 1, 1e6, true)),
                (4, 'sent', 'must be a whole number from 1 to 1000000: the units the sender sent',
                    p_kind = 'in' AND NOT posledger_private.json_is_number(i.line->'sent', 1, 1e6, true)),
                (5, 'received', 'must be a whole number from 0 to 1000000: the units that arrived',
                    p_kind = 'in' AND NOT posledger_private.json_is_number(i.line->'received', 0, 1e6, true)),
                (6, 'expiry_date', 'must be a date (YYYY-MM-DD) when given',
                    p_kind = 'in' AND posledger_private.json_is_given(i.line->'expiry_date')
                    AND NOT posledger_private.json_is_date(i.line->'expiry_date')),
                (7, 'batch_lot', 'is named twice in this transfer',
                    i.naming > 1 AND posledger_private.json_is_text(i.line->'sku'))
             ) AS c(ord, field, problem, failed)
        WHERE c.failed
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', field, 'problem', problem) ORDER BY ord), '[]')
    FROM problem
$_$;

CREATE FUNCTION public.adjust_inventory(p_adjustment jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
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

COMMENT ON FUNCTION public.adjust_inventory(p_adjustment jsonb) IS 'Signed corrections of batch rows with a reason code, a note and who did it; never below zero. Idempotent by store and reference.';

CREATE FUNCTION public.adjust_inventory(p_store_id uuid, p_adjustment jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_adjustment) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.adjustment_problems(p_adjustment, 'quantity'), 'adjustment');
    END IF;
    RETURN public.adjust_inventory(p_adjustment);
END $$;

COMMENT ON FUNCTION public.adjust_inventory(p_store_id uuid, p_adjustment jsonb) IS 'adjust_inventory routed by its store (the form Citus distributes).';

CREATE FUNCTION public.cancel_reservation(p_cancellation jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.reservation_cancel(p_cancellation);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.cancel_reservation(p_cancellation jsonb) IS 'Cancels an open reservation or parked cart: its held units become available again. Idempotent by store and receipt_number.';

CREATE FUNCTION public.cancel_reservation(p_store_id uuid, p_cancellation jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_cancellation) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.reservation_problems(p_cancellation, true), 'cancellation');
    END IF;
    RETURN public.cancel_reservation(p_cancellation);
END $$;

COMMENT ON FUNCTION public.cancel_reservation(p_store_id uuid, p_cancellation jsonb) IS 'cancel_reservation routed by its store (the form Citus distributes).';

CREATE FUNCTION public.cancel_transfer(p_cancel jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.transfer_cancel_record(p_cancel);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.cancel_transfer(p_cancel jsonb) IS 'A transfer in transit is called off at the sending store: its units come back to their batches. Refused once received. Idempotent.';

CREATE FUNCTION public.cancel_transfer(p_store_id uuid, p_cancel jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_cancel) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.transfer_problems(p_cancel, 'cancel'), 'transfer');
    END IF;
    RETURN public.cancel_transfer(p_cancel);
END $$;

COMMENT ON FUNCTION public.cancel_transfer(p_store_id uuid, p_cancel jsonb) IS 'cancel_transfer routed by its (sending) store (the form Citus distributes).';

CREATE FUNCTION public.catalogue_product(p_key text) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_product public.products;
BEGIN
    PERFORM posledger_private.refuse_problems(CASE WHEN coalesce(btrim(p_key), '') = ''
        THEN '[{"field": "key", "problem": "is required: a sku or a GTIN"}]'::jsonb ELSE '[]' END, 'product key');
    SELECT p.* INTO v_product FROM public.products p
    WHERE p.sku = coalesce((SELECT s.sku FROM public.products s WHERE s.sku = btrim(p_key)),
                           (SELECT g.sku FROM public.product_gtins g WHERE g.gtin = posledger_private.gtin14(btrim(p_key))));
    PERFORM posledger_private.refuse_missing(CASE WHEN v_product.sku IS NULL
        THEN jsonb_build_array(jsonb_build_object('product', p_key)) ELSE '[]' END,
        'Name a sku or GTIN of the catalogue (posledger catalogue load adds products).');
    RETURN jsonb_build_object(
        'sku', v_product.sku, 'name', v_product.name, 'brand', v_product.brand, 'category', v_product.category,
        'product_class', v_product.product_class,
        'counts_toward', (SELECT c.counts_toward FROM public.product_classes c WHERE c.product_class = v_product.product_class),
        'net_content', v_product.net_content, 'net_unit', v_product.net_unit,
        'stated_dried_grams', v_product.stated_dried_grams,
        'dried_grams_per_unit', (SELECT g.dried_grams_per_unit
                                 FROM posledger_private.catalogue_grams(current_date, ARRAY[v_product.sku]) g), 'as_of', current_date,
        'gtins', ARRAY(SELECT g.gtin FROM public.product_gtins g WHERE g.sku = v_product.sku ORDER BY g.gtin),
        'created_at', v_product.created_at, 'updated_at', v_product.updated_at);
END $$;

COMMENT ON FUNCTION public.catalogue_product(p_key text) IS 'One product of the catalogue by sku or GTIN (8/12/13/14 digits): its class, what it counts toward, its GTINs and its dried-equivalent grams per unit today; IV404 when unknown.';

CREATE FUNCTION public.complete_reservation(p_completion jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.reservation_complete(p_completion);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.complete_reservation(p_completion jsonb) IS 'Completes a reservation or parked cart as the sale it promised, from the batches it held; returns the sale''s result. Idempotent by store and receipt_number.';

CREATE FUNCTION public.complete_reservation(p_store_id uuid, p_completion jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_completion) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.reservation_problems(p_completion, false), 'completion');
    END IF;
    RETURN public.complete_reservation(p_completion);
END $$;

COMMENT ON FUNCTION public.complete_reservation(p_store_id uuid, p_completion jsonb) IS 'complete_reservation routed by its store (the form Citus distributes).';

CREATE FUNCTION public.count_inventory(p_count jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.count_record(p_count);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.count_inventory(p_count jsonb) IS 'Counted quantities per batch, posted as adjustments (the differences) under a count reason; settles open shortfalls of what was counted.';

CREATE FUNCTION public.count_inventory(p_store_id uuid, p_count jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_count) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.adjustment_problems(p_count, 'counted'), 'count');
    END IF;
    RETURN public.count_inventory(p_count);
END $$;

COMMENT ON FUNCTION public.count_inventory(p_store_id uuid, p_count jsonb) IS 'count_inventory routed by its store (the form Citus distributes).';

CREATE FUNCTION public.inventory_exception_announce() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.begun_elsewhere() THEN
        -- On a Citus shard NEW is the shard's row type: the same row, as the table's type.
        PERFORM pg_notify('posledger_inventory_exceptions',
                          posledger_private.exception_announcement(ROW(NEW.*)::public.inventory_exceptions));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION public.ledger_digest(p_as_of timestamp with time zone DEFAULT now(), p_store_id uuid DEFAULT NULL::uuid) RETURNS TABLE(store_id uuid, as_of timestamp with time zone, chains bigint, ledger_rows bigint, digest text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    RETURN QUERY
    SELECT h.store_id, p_as_of, count(*), sum(h.rows_before)::bigint,
           encode(sha256(convert_to(string_agg(h.inventory_id || ':' || encode(h.row_hash, 'hex'), ','
                                               ORDER BY h.inventory_id), 'UTF8')), 'hex')
    FROM (SELECT DISTINCT ON (t.store_id, t.inventory_id) t.store_id, t.inventory_id, t.row_hash,
                 count(*) OVER (PARTITION BY t.store_id, t.inventory_id) AS rows_before
          FROM public.ocs_inventory_transactions t
          WHERE t.created_at < p_as_of AND (p_store_id IS NULL OR t.store_id = p_store_id)
          ORDER BY t.store_id, t.inventory_id, t.id DESC) h
    GROUP BY h.store_id
    ORDER BY h.store_id;
END $$;

COMMENT ON FUNCTION public.ledger_digest(p_as_of timestamp with time zone, p_store_id uuid) IS 'Per store, sha256 over its ledger chains'' heads as of a moment: keep it outside the database to make a later rewrite evident.';

CREATE FUNCTION public.load_catalogue(p_load jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.catalogue_record(p_load);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.load_catalogue(p_load jsonb) IS 'Load catalogue rows into products and product_gtins: every row checked, bad rows named by line (IV400) or skipped with skip_bad; idempotent, a product''s GTINs replaced by its row''s.';

CREATE FUNCTION public.ocs_claim_events(p_request jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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

COMMENT ON FUNCTION public.ocs_claim_events(p_request jsonb) IS 'Claims up to limit (default 100) unsent OCS outbox rows of a store, oldest first, FOR UPDATE SKIP LOCKED in the caller''s transaction: {store_id, crsa, crol, outbox_ids, events, held: [{day, differences}] (days failing the platform''s check, not claimed)}.';

CREATE FUNCTION public.ocs_inventory_write_ledger() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_movement jsonb := CASE WHEN TG_OP = 'INSERT' OR NEW.movement IS DISTINCT FROM OLD.movement
                             THEN NEW.movement END;
BEGIN
    INSERT INTO public.ocs_inventory_transactions
        (store_id, inventory_id, sku, batch_lot, transaction_type, reason_code, quantity, quantity_after,
         reference_type, reference_id, notes, actor, occurred_at)
    VALUES (NEW.store_id, NEW.id, NEW.sku, NEW.batch_lot,
            coalesce(v_movement->>'type', CASE WHEN TG_OP = 'INSERT' THEN 'opening' ELSE 'manual_adjustment' END),
            v_movement->>'reason_code',
            NEW.quantity_on_hand - coalesce(OLD.quantity_on_hand, 0), NEW.quantity_on_hand,
            v_movement->>'reference_type', (v_movement->>'reference_id')::uuid, v_movement->>'notes',
            coalesce(v_movement->>'actor', session_user), (v_movement->>'occurred_at')::timestamptz);
    RETURN NULL;
END $$;

CREATE TABLE public.ocs_inventory_transactions (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    inventory_id bigint NOT NULL,
    sku text NOT NULL,
    batch_lot text,
    transaction_type text NOT NULL,
    quantity integer NOT NULL,
    quantity_after integer NOT NULL,
    reference_type text,
    reference_id uuid,
    notes text,
    actor text,
    db_user text DEFAULT SESSION_USER NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    reason_code text,
    origin text NOT NULL,
    prev_hash bytea,
    row_hash bytea NOT NULL,
    occurred_at timestamp with time zone,
    CONSTRAINT ocs_inventory_transactions_adjustment_has_reason CHECK (((transaction_type = 'adjustment'::text) = (reason_code IS NOT NULL))),
    CONSTRAINT ocs_inventory_transactions_origin_known CHECK ((origin = ANY (ARRAY['posledger'::text, 'direct'::text, 'migrated'::text]))),
    CONSTRAINT ocs_inventory_transactions_quantity_after_check CHECK ((quantity_after >= 0)),
    CONSTRAINT ocs_inventory_transactions_quantity_check CHECK ((quantity <> 0)),
    CONSTRAINT ocs_inventory_transactions_type_known CHECK ((transaction_type = ANY (ARRAY['opening'::text, 'manual_adjustment'::text, 'sale'::text, 'receipt'::text, 'return'::text, 'void'::text, 'adjustment'::text, 'transfer_out'::text, 'transfer_in'::text, 'transfer_cancel'::text])))
);

COMMENT ON TABLE public.ocs_inventory_transactions IS 'The stock ledger: one row per change of a stock row''s quantity_on_hand, written by the stock trigger. Append-only (IV403), and each row sealed into its stock row''s hash chain: verify_ledger() checks it.';

COMMENT ON COLUMN public.ocs_inventory_transactions.transaction_type IS 'sale, receipt, return, void, adjustment (with reason_code), opening (a bare INSERT) or manual_adjustment (a bare UPDATE).';

COMMENT ON COLUMN public.ocs_inventory_transactions.quantity IS 'Signed: negative takes stock out.';

COMMENT ON COLUMN public.ocs_inventory_transactions.quantity_after IS 'The stock row''s quantity_on_hand after this movement: a running balance.';

COMMENT ON COLUMN public.ocs_inventory_transactions.reference_id IS 'The order, shipment or adjustment the movement belongs to (reference_type says which).';

COMMENT ON COLUMN public.ocs_inventory_transactions.actor IS 'The person, as the caller names them; db_user is the database role.';

COMMENT ON COLUMN public.ocs_inventory_transactions.origin IS 'posledger (the stock trigger wrote it), direct (an INSERT into the ledger itself: review it) or migrated (sealed by migration 0011).';

COMMENT ON COLUMN public.ocs_inventory_transactions.prev_hash IS 'row_hash of the row before it in its stock row''s chain; NULL for the first.';

COMMENT ON COLUMN public.ocs_inventory_transactions.row_hash IS 'sha256 over the row and prev_hash (ocs_ledger_hash()), computed as the row is written.';

COMMENT ON COLUMN public.ocs_inventory_transactions.occurred_at IS 'When the movement happened, when it differs from when it was recorded (an offline sale: the till''s clock); NULL: at created_at. Covered by row_hash when set.';

CREATE FUNCTION public.ocs_ledger_hash(p_row public.ocs_inventory_transactions) RETURNS bytea
    LANGUAGE sql STABLE
    AS $$
    SELECT sha256(convert_to(rtrim(ROW(
        encode(p_row.prev_hash, 'hex'), p_row.store_id, p_row.inventory_id, p_row.sku, p_row.batch_lot,
        p_row.transaction_type, p_row.reason_code, p_row.quantity, p_row.quantity_after, p_row.reference_type,
        p_row.reference_id, p_row.notes, p_row.actor, p_row.db_user,
        (EXTRACT(epoch FROM p_row.created_at) * 1000000)::bigint, p_row.origin)::text, ')')
        || coalesce(',' || (EXTRACT(epoch FROM p_row.occurred_at) * 1000000)::bigint, '') || ')', 'UTF8'))
$$;

CREATE FUNCTION public.ocs_ledger_seal() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    NEW.origin := CASE WHEN pg_trigger_depth() > 1 THEN 'posledger' ELSE 'direct' END;
    IF NEW.origin = 'direct' THEN
        PERFORM FROM public.ocs_inventory i WHERE i.store_id = NEW.store_id AND i.id = NEW.inventory_id
        FOR NO KEY UPDATE;
        -- The chain orders a stock row's movements by id. A direct row with an id below its chain's last
        -- (on Citus, drawn by the coordinator, whose range lies below the workers': docs/scaling.md) would
        -- be chained last yet sorted first: the chain would read as broken. Refused instead.
        IF EXISTS (SELECT FROM public.ocs_inventory_transactions t
                   WHERE t.store_id = NEW.store_id AND t.inventory_id = NEW.inventory_id AND t.id > NEW.id) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'IV403',
                MESSAGE = 'ocs_inventory_transactions: a ledger row must come after its chain''s last row',
                DETAIL = jsonb_build_object('table', 'ocs_inventory_transactions', 'operation', TG_OP, 'id', NEW.id,
                                            'store_id', NEW.store_id, 'inventory_id', NEW.inventory_id)::text,
                HINT = 'Record the correction with adjust_inventory; on Citus, a direct ledger row draws its id on the coordinator.';
        END IF;
    END IF;
    NEW.prev_hash := (SELECT t.row_hash FROM public.ocs_inventory_transactions t
                      WHERE t.store_id = NEW.store_id AND t.inventory_id = NEW.inventory_id
                      ORDER BY t.id DESC LIMIT 1);
    -- On a Citus shard NEW is the shard's row type (ocs_inventory_transactions_102008), which
    -- ocs_ledger_hash does not take: the same row, as the table's type.
    NEW.row_hash := public.ocs_ledger_hash(ROW(NEW.*)::public.ocs_inventory_transactions);
    RETURN NEW;
END $$;

CREATE FUNCTION public.ocs_outbox_write() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_zone text := (SELECT s.time_zone FROM public.stores s WHERE s.id = NEW.store_id);
BEGIN
    -- VALUES, not a SELECT: Citus routes an INSERT ... SELECT through the coordinator.
    INSERT INTO public.ocs_outbox (store_id, ledger_id, day)
    VALUES (NEW.store_id, NEW.id, (coalesce(NEW.occurred_at, NEW.created_at) AT TIME ZONE v_zone)::date);
    RETURN NULL;
END $$;

CREATE FUNCTION public.ocs_record_delivery(p_delivery jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET lock_timeout TO '3s'
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

COMMENT ON FUNCTION public.ocs_record_delivery(p_delivery jsonb) IS 'Records one delivery attempt of the OCS feed and its answer ({store_id, kind events|position, outbox_ids | day, attempt, status, body, error, sender}) in ocs_deliveries; an accepted (2xx) events delivery marks its outbox rows sent.';

CREATE FUNCTION public.ocs_report(p_request jsonb) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
DECLARE
    v_store public.stores;
    v_day   date;
BEGIN
    PERFORM posledger_private.refuse_problems((
        SELECT coalesce(jsonb_agg(jsonb_build_object('field', c.field, 'problem', c.problem) ORDER BY c.ord), '[]')
        FROM (VALUES
            (1, 'store_id', 'is required and must be a uuid', NOT posledger_private.json_is_uuid(p_request->'store_id')),
            (2, 'day', 'is required and must be a date (YYYY-MM-DD)', NOT posledger_private.json_is_date(p_request->'day'))
        ) AS c(ord, field, problem, failed)
        WHERE c.failed), 'report');
    v_store := posledger_private.existing_store((p_request->>'store_id')::uuid);
    v_day := (p_request->>'day')::date;
    RETURN posledger_private.ocs_day(v_store, v_day);
END $$;

COMMENT ON FUNCTION public.ocs_report(p_request jsonb) IS 'A store''s day for the OCS data platform: {store_id, crsa, crol, day, events: {inventoryEventList}, position: {inventoryPositionList}, check: {balanced, differences}}.';

CREATE FUNCTION public.ocs_resend_events(p_request jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET lock_timeout TO '3s'
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

COMMENT ON FUNCTION public.ocs_resend_events(p_request jsonb) IS 'Marks a store''s accepted OCS events of the days from_day..to_day (of the ledger types named, else all) unsent again, so the sender delivers them once more under their own ids: a correction ({store_id, from_day, to_day, transaction_types, reason, actor}). Kept in ocs_resends.';

CREATE FUNCTION public.receive_inventory(p_shipment jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
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

COMMENT ON FUNCTION public.receive_inventory(p_shipment jsonb) IS 'One OCS shipment into one store: creates or tops up batch rows, records variances; a held lot arrives held. Idempotent by store and shipment_id.';

CREATE FUNCTION public.receive_inventory(p_store_id uuid, p_shipment jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_shipment) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.receiving_problems(p_shipment), 'shipment');
    END IF;
    RETURN public.receive_inventory(p_shipment);
END $$;

COMMENT ON FUNCTION public.receive_inventory(p_store_id uuid, p_shipment jsonb) IS 'receive_inventory routed by its store (the form Citus distributes).';

CREATE FUNCTION public.record_pos_sale(p_sale jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.pos_sale_record(p_sale);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.record_pos_sale(p_sale jsonb) IS 'One sale at the till, all or nothing: validates, locks its batches, deducts, ledgers, awards points; returns the result (DESIGN.md sections 3-4). Idempotent by store and receipt_number.';

CREATE FUNCTION public.record_pos_sale(p_store_id uuid, p_sale jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_sale) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.pos_sale_problems(p_sale), 'sale');
    END IF;
    RETURN public.record_pos_sale(p_sale);
END $$;

COMMENT ON FUNCTION public.record_pos_sale(p_store_id uuid, p_sale jsonb) IS 'record_pos_sale routed by its store (the form Citus distributes); the store must be the payload''s.';

CREATE FUNCTION public.refuse_identity_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'IV403',
        MESSAGE = format('%s: a stock row''s id, store, sku and batch_lot never change', TG_TABLE_NAME),
        DETAIL = jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP, 'id', OLD.id,
                                    'store_id', OLD.store_id, 'sku', OLD.sku, 'batch_lot', OLD.batch_lot)::text,
        HINT = 'Move the units with adjustments (out of this row, into the right one) instead.';
END $$;

CREATE FUNCTION public.refuse_ledger_rewrite() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'IV403',
        MESSAGE = format('%s is append-only: %s is refused', TG_TABLE_NAME, TG_OP),
        DETAIL = jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP)::text,
        HINT = 'Record a correcting movement instead of editing the ledger.';
END $$;

CREATE FUNCTION public.release_expired_reservations(p_store_id uuid, p_max_orders integer DEFAULT 10000) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_custom_plan'
    SET lock_timeout TO '3s'
    AS $$
DECLARE
    v_store_id uuid := p_store_id;
    v_orders uuid[];
    v_units  bigint;
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    PERFORM posledger_private.refuse_problems(CASE WHEN p_max_orders BETWEEN 1 AND 100000 THEN '[]'
        ELSE '[{"field": "max_orders", "problem": "must be a whole number from 1 to 100000"}]' END::jsonb, 'release');
    PERFORM posledger_private.existing_store(v_store_id);
    SELECT ARRAY(SELECT o.id FROM public.pos_orders o
                 WHERE o.store_id = v_store_id AND o.status IN ('reserved', 'parked') AND o.expires_at <= now()
                 ORDER BY o.expires_at, o.id LIMIT p_max_orders
                 FOR NO KEY UPDATE SKIP LOCKED) INTO v_orders;
    v_units := posledger_private.reservation_release(v_store_id, v_orders, 'expired', '{}');
    RETURN jsonb_build_object('store_id', v_store_id, 'released', cardinality(v_orders), 'units', v_units,
                              'more', cardinality(v_orders) = p_max_orders);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.release_expired_reservations(p_store_id uuid, p_max_orders integer) IS 'Releases a store''s reservations and parked carts past their end (at most max_orders per call; "more" says to call again). Safe from two schedulers at once.';

CREATE FUNCTION public.resolve_inventory_exception(p_resolution jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.exception_resolve(p_resolution);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.resolve_inventory_exception(p_resolution jsonb) IS 'Closes one open inventory exception with who and why, by an adjustment or a count where stock must move (a shortfall). Idempotent by store and exception id.';

CREATE FUNCTION public.resolve_inventory_exception(p_store_id uuid, p_resolution jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_resolution) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.exception_problems(p_resolution), 'resolution');
    END IF;
    RETURN public.resolve_inventory_exception(p_resolution);
END $$;

COMMENT ON FUNCTION public.resolve_inventory_exception(p_store_id uuid, p_resolution jsonb) IS 'resolve_inventory_exception routed by its store (the form Citus distributes).';

CREATE FUNCTION public.return_pos_sale(p_return jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
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

COMMENT ON FUNCTION public.return_pos_sale(p_return jsonb) IS 'A partial return or a whole-order void: units back to the batches they came from, points back in proportion. Idempotent by store and reference.';

CREATE FUNCTION public.return_pos_sale(p_store_id uuid, p_return jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_return) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.pos_return_problems(p_return), 'return');
    END IF;
    RETURN public.return_pos_sale(p_return);
END $$;

COMMENT ON FUNCTION public.return_pos_sale(p_store_id uuid, p_return jsonb) IS 'return_pos_sale routed by its store (the form Citus distributes).';

CREATE FUNCTION public.set_batch_status(p_change jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.batch_status_record(p_change);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.set_batch_status(p_change jsonb) IS 'Hold, recall or release a lot, in one store or every store; the hold stays in force for stock of the lot received later. Idempotent by reference.';

CREATE FUNCTION public.transfer_in(p_receipt jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.transfer_in_record(p_receipt);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.transfer_in(p_receipt jsonb) IS 'A transfer from another store of the retailer arrives: per line the units sent and received, the variance recorded. Idempotent by store, sending store and reference.';

CREATE FUNCTION public.transfer_in(p_store_id uuid, p_receipt jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_receipt) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.transfer_problems(p_receipt, 'in'), 'transfer');
    END IF;
    RETURN public.transfer_in(p_receipt);
END $$;

COMMENT ON FUNCTION public.transfer_in(p_store_id uuid, p_receipt jsonb) IS 'transfer_in routed by its (receiving) store; on Citus it runs on the coordinator, not delegated.';

CREATE FUNCTION public.transfer_out(p_transfer jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET lock_timeout TO '3s'
    AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.transfer_out_record(p_transfer);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

COMMENT ON FUNCTION public.transfer_out(p_transfer jsonb) IS 'Units leave a store by named batch for another store of its retailer (same CROL), in transit until received or cancelled. Idempotent by store and reference.';

CREATE FUNCTION public.transfer_out(p_store_id uuid, p_transfer jsonb) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    IF NOT posledger_private.routed(p_store_id, p_transfer) THEN
        PERFORM posledger_private.refuse_misrouted(posledger_private.transfer_problems(p_transfer, 'out'), 'transfer');
    END IF;
    RETURN public.transfer_out(p_transfer);
END $$;

COMMENT ON FUNCTION public.transfer_out(p_store_id uuid, p_transfer jsonb) IS 'transfer_out routed by its (sending) store (the form Citus distributes).';

CREATE FUNCTION public.verify_ledger(p_store_id uuid DEFAULT NULL::uuid) RETURNS TABLE(kind text, store_id uuid, inventory_id bigint, transaction_id bigint, problem text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
BEGIN
    RETURN QUERY
    WITH link AS (
        SELECT t.store_id, t.inventory_id, t.id, t.origin,
               CASE WHEN t.row_hash IS DISTINCT FROM public.ocs_ledger_hash(ROW(t.*)::public.ocs_inventory_transactions)
                        THEN 'altered: the row no longer matches its hash'
                    WHEN t.prev_hash IS DISTINCT FROM lag(t.row_hash) OVER w
                        THEN 'unlinked: the row before it in the chain was removed, added or changed'
                    WHEN t.quantity_after <> coalesce(lag(t.quantity_after) OVER w, 0) + t.quantity
                        THEN 'unbalanced: quantity_after does not follow from the row before it'
               END AS broken
        FROM public.ocs_inventory_transactions t
        WHERE p_store_id IS NULL OR t.store_id = p_store_id
        WINDOW w AS (PARTITION BY t.store_id, t.inventory_id ORDER BY t.id)
    ), guard(table_name, trigger_name) AS (
        VALUES ('ocs_inventory', 'ocs_inventory_ledger_opening'), ('ocs_inventory', 'ocs_inventory_ledger_change'),
               ('ocs_inventory', 'ocs_inventory_identity_fixed'),
               ('ocs_inventory_transactions', 'ocs_inventory_transactions_seal'),
               ('ocs_inventory_transactions', 'ocs_inventory_transactions_append_only')
    )
    SELECT * FROM (SELECT DISTINCT ON (l.store_id, l.inventory_id) 'broken'::text, l.store_id, l.inventory_id, l.id, l.broken
                   FROM link l WHERE l.broken IS NOT NULL
                   ORDER BY l.store_id, l.inventory_id, l.id) first_break
    UNION ALL
    SELECT 'review', l.store_id, l.inventory_id, l.id, 'written into the ledger directly, not by a change of stock'
    FROM link l WHERE l.origin = 'direct'
    UNION ALL
    SELECT 'broken', NULL, NULL, NULL, format('trigger %s on %s is %s', g.trigger_name, g.table_name,
                                             CASE WHEN tg.oid IS NULL THEN 'missing' ELSE 'disabled' END)
    FROM guard g
    LEFT JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = ('public.' || g.table_name)::regclass
                                      AND tg.tgname = g.trigger_name
    WHERE tg.oid IS NULL OR tg.tgenabled NOT IN ('O', 'A');
END $$;

COMMENT ON FUNCTION public.verify_ledger(p_store_id uuid) IS 'What is wrong with the stock ledger (empty when nothing): each chain''s first broken link and any guard missing or disabled (broken), rows written directly (review).';

CREATE TABLE public.adjustment_reasons (
    code text NOT NULL,
    description text NOT NULL
);

COMMENT ON TABLE public.adjustment_reasons IS 'The reason codes Ontario retailers report adjustments under.';

CREATE TABLE public.batch_lot_holds (
    batch_lot text NOT NULL,
    sku text,
    store_id uuid,
    status text NOT NULL,
    reference text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT batch_lot_holds_batch_lot_check CHECK ((batch_lot <> ''::text)),
    CONSTRAINT batch_lot_holds_status_check CHECK ((status = ANY (ARRAY['quarantined'::text, 'recalled'::text, 'awaiting_destruction'::text])))
);

ALTER TABLE ONLY public.batch_lot_holds REPLICA IDENTITY FULL;

COMMENT ON TABLE public.batch_lot_holds IS 'The holds in force, per lot (and optionally sku and store): stock of a held lot received later arrives held.';

CREATE TABLE public.batch_status_changes (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    inventory_id bigint NOT NULL,
    sku text NOT NULL,
    batch_lot text,
    from_status text NOT NULL,
    to_status text NOT NULL,
    quantity_on_hand integer NOT NULL,
    reference text NOT NULL,
    reason text NOT NULL,
    actor text NOT NULL,
    db_user text DEFAULT SESSION_USER NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE public.batch_status_changes IS 'Each status change of a stock row, with who and why. Append-only (IV403).';

ALTER TABLE public.batch_status_changes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.batch_status_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW public.batches_expiring AS
 SELECT i.store_id,
    s.name AS store_name,
    i.sku,
    i.batch_lot,
    i.expiry_date,
    (i.expiry_date - ((now() AT TIME ZONE s.time_zone))::date) AS days_left,
    i.status,
    i.quantity_on_hand,
    i.quantity_available
   FROM (public.ocs_inventory i
     JOIN public.stores s ON ((s.id = i.store_id)))
  WHERE ((i.expiry_date IS NOT NULL) AND (i.quantity_on_hand > 0));

COMMENT ON VIEW public.batches_expiring IS 'Batches with an expiry date and units on hand, with the days left in their store''s calendar; filter WHERE days_left <= N.';

CREATE TABLE public.catalogue_categories (
    category text NOT NULL,
    product_class text NOT NULL,
    CONSTRAINT catalogue_categories_category_check CHECK ((category = lower(category)))
);

COMMENT ON TABLE public.catalogue_categories IS 'The provincial catalogue''s categories (lower case) and the class each means; posledger catalogue load reads it.';

CREATE TABLE public.dried_equivalency_factors (
    product_class text NOT NULL,
    net_unit text NOT NULL,
    in_force_from date NOT NULL,
    amount_per_dried_gram numeric NOT NULL,
    source text NOT NULL,
    CONSTRAINT dried_equivalency_factors_amount_per_dried_gram_check CHECK ((amount_per_dried_gram > (0)::numeric)),
    CONSTRAINT dried_equivalency_factors_net_unit_check CHECK ((net_unit = ANY (ARRAY['g'::text, 'mL'::text, 'count'::text])))
);

COMMENT ON TABLE public.dried_equivalency_factors IS 'Cannabis Act Schedule 3 as data: how much of a class, in its unit, equals 1 g dried, from the day it came into force.';

CREATE VIEW public.inventory_discrepancies AS
 SELECT i.store_id,
    i.id AS inventory_id,
    i.sku,
    i.batch_lot,
    i.quantity_on_hand,
    COALESCE(l.total, (0)::bigint) AS ledger_total,
    l.last_balance,
    (i.quantity_on_hand - COALESCE(l.total, (0)::bigint)) AS difference
   FROM (public.ocs_inventory i
     LEFT JOIN LATERAL ( SELECT sum(t.quantity) AS total,
            (array_agg(t.quantity_after ORDER BY t.id DESC))[1] AS last_balance
           FROM public.ocs_inventory_transactions t
          WHERE ((t.store_id = i.store_id) AND (t.inventory_id = i.id))) l ON (true))
  WHERE ((i.quantity_on_hand <> COALESCE(l.total, (0)::bigint)) OR (i.quantity_on_hand <> COALESCE(l.last_balance, 0)));

COMMENT ON VIEW public.inventory_discrepancies IS 'Stock rows whose on hand differs from their ledger (its sum or its last running balance). Empty on a healthy database; docs/runbook.md says what to do.';

ALTER TABLE public.inventory_exceptions ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.inventory_exceptions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW public.inventory_movements_monthly AS
 WITH by_reason AS (
         SELECT t.store_id,
            t.sku,
            (date_trunc('month'::text, (COALESCE(t.occurred_at, t.created_at) AT TIME ZONE s.time_zone)))::date AS month,
            t.transaction_type,
            t.reason_code,
            sum(t.quantity) AS quantity
           FROM (public.ocs_inventory_transactions t
             JOIN public.stores s ON ((s.id = t.store_id)))
          GROUP BY t.store_id, t.sku, ((date_trunc('month'::text, (COALESCE(t.occurred_at, t.created_at) AT TIME ZONE s.time_zone)))::date), t.transaction_type, t.reason_code
        ), monthly AS (
         SELECT by_reason.store_id,
            by_reason.sku,
            by_reason.month,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE (by_reason.transaction_type = 'receipt'::text)), (0)::numeric) AS received,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE (by_reason.transaction_type = 'sale'::text)), (0)::numeric) AS sold,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE (by_reason.transaction_type = ANY (ARRAY['return'::text, 'void'::text]))), (0)::numeric) AS returned,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE ((by_reason.transaction_type = 'adjustment'::text) AND (by_reason.reason_code <> ALL (ARRAY['destruction'::text, 'loss_theft'::text])))), (0)::numeric) AS adjusted,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE (by_reason.reason_code = 'destruction'::text)), (0)::numeric) AS destroyed,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE (by_reason.reason_code = 'loss_theft'::text)), (0)::numeric) AS lost,
            COALESCE(sum(by_reason.quantity) FILTER (WHERE (by_reason.transaction_type = ANY (ARRAY['opening'::text, 'manual_adjustment'::text]))), (0)::numeric) AS manual,
            COALESCE(jsonb_object_agg(by_reason.reason_code, by_reason.quantity) FILTER (WHERE (by_reason.reason_code IS NOT NULL)), '{}'::jsonb) AS adjusted_by_reason,
            sum(by_reason.quantity) AS net
           FROM by_reason
          GROUP BY by_reason.store_id, by_reason.sku, by_reason.month
        )
 SELECT m.store_id,
    m.sku,
    m.month,
    (sum(m.net) OVER w - m.net) AS opening,
    m.received,
    m.sold,
    m.returned,
    m.adjusted,
    m.destroyed,
    m.lost,
    m.manual,
    sum(m.net) OVER w AS closing,
    m.adjusted_by_reason,
        CASE
            WHEN (m.month = max(m.month) OVER (PARTITION BY m.store_id, m.sku)) THEN ( SELECT sum(i.quantity_on_hand) AS sum
               FROM public.ocs_inventory i
              WHERE ((i.store_id = m.store_id) AND (i.sku = m.sku)))
            ELSE NULL::bigint
        END AS on_hand_now
   FROM monthly m
  WINDOW w AS (PARTITION BY m.store_id, m.sku ORDER BY m.month);

COMMENT ON VIEW public.inventory_movements_monthly IS 'Per store, sku and month (the month a movement happened, occurred_at else when recorded, in the store''s calendar): opening, every kind of movement signed, and closing; on the latest month, on_hand_now beside the closing shows stock changed behind the ledger''s back.';

CREATE TABLE public.loyalty_accounts (
    store_id uuid NOT NULL,
    user_id uuid NOT NULL,
    points bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT loyalty_accounts_points_check CHECK ((points >= 0))
);

COMMENT ON TABLE public.loyalty_accounts IS 'A customer''s loyalty points at one store; equals the sum of that store''s loyalty_transactions for the customer. The customer''s balance is the sum over stores (the view profiles).';

CREATE TABLE public.loyalty_transactions (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    store_id uuid NOT NULL,
    order_id uuid NOT NULL,
    transaction_type text NOT NULL,
    points bigint NOT NULL,
    balance_after bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    return_id uuid,
    CONSTRAINT loyalty_transactions_balance_after_check CHECK ((balance_after >= 0)),
    CONSTRAINT loyalty_transactions_points_check CHECK ((points <> 0)),
    CONSTRAINT loyalty_transactions_type_known CHECK ((((transaction_type = 'earn'::text) AND (return_id IS NULL) AND (points > 0)) OR ((transaction_type = 'reversal'::text) AND (return_id IS NOT NULL) AND (points < 0)) OR ((transaction_type = 'redemption'::text) AND (return_id IS NULL) AND (points < 0))))
);

COMMENT ON TABLE public.loyalty_transactions IS 'The loyalty ledger: earn, reversal (by a return) and redemption. Append-only (IV403).';

COMMENT ON COLUMN public.loyalty_transactions.balance_after IS 'The customer''s points at this store after this row (before migration 0018: their balance over all stores).';

ALTER TABLE public.loyalty_transactions ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.loyalty_transactions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.product_classes (
    product_class text NOT NULL,
    counts_toward text NOT NULL,
    description text NOT NULL,
    CONSTRAINT product_classes_counts_toward_check CHECK ((counts_toward = ANY (ARRAY['dried_grams'::text, 'plants'::text, 'nothing'::text])))
);

COMMENT ON TABLE public.product_classes IS 'The regulated classes of products and what each counts toward in one sale: dried-equivalent grams, plants, or nothing.';

CREATE TABLE public.products (
    sku text NOT NULL,
    name text NOT NULL,
    brand text,
    category text,
    product_class text NOT NULL,
    net_content numeric,
    net_unit text,
    stated_dried_grams numeric,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT products_name_check CHECK ((name <> ''::text)),
    CONSTRAINT products_net_content_check CHECK ((net_content > (0)::numeric)),
    CONSTRAINT products_net_content_has_unit CHECK (((net_content IS NULL) = (net_unit IS NULL))),
    CONSTRAINT products_net_unit_check CHECK ((net_unit = ANY (ARRAY['g'::text, 'mL'::text, 'count'::text]))),
    CONSTRAINT products_sku_check CHECK ((sku <> ''::text)),
    CONSTRAINT products_stated_dried_grams_check CHECK ((stated_dried_grams >= (0)::numeric))
);

COMMENT ON TABLE public.products IS 'The product catalogue, the same for every store: sku, class, net content, stated dried-equivalent grams. Loaded by load_catalogue().';

CREATE VIEW public.monthly_report AS
 WITH by_batch AS (
         SELECT t.store_id,
            t.inventory_id,
            t.sku,
            (date_trunc('month'::text, (COALESCE(t.occurred_at, t.created_at) AT TIME ZONE s.time_zone)))::date AS month,
            t.transaction_type,
            t.reason_code,
            sum(t.quantity) AS units,
            ((now() AT TIME ZONE s.time_zone))::date AS today
           FROM (public.ocs_inventory_transactions t
             JOIN public.stores s ON ((s.id = t.store_id)))
          GROUP BY t.store_id, t.inventory_id, t.sku, ((date_trunc('month'::text, (COALESCE(t.occurred_at, t.created_at) AT TIME ZONE s.time_zone)))::date), t.transaction_type, t.reason_code, s.time_zone
        ), by_sku AS (
         SELECT b.store_id,
            b.sku,
            b.month,
            b.transaction_type,
            b.reason_code,
            b.today,
            sum(b.units) AS units,
            sum(((b.units)::numeric * COALESCE(i.unit_cost, (0)::numeric))) AS value
           FROM (by_batch b
             LEFT JOIN public.ocs_inventory i ON (((i.store_id = b.store_id) AND (i.id = b.inventory_id))))
          GROUP BY b.store_id, b.sku, b.month, b.transaction_type, b.reason_code, b.today
        ), by_reason AS (
         SELECT b.store_id,
            COALESCE(p.product_class, 'uncatalogued'::text) AS product_class,
            b.month,
            b.transaction_type,
            b.reason_code,
            sum(b.units) AS units,
            sum((b.units *
                CASE
                    WHEN (c.counts_toward = 'dried_grams'::text) THEN COALESCE(p.stated_dried_grams, (p.net_content / f.amount_per_dried_gram), (0)::numeric)
                    ELSE (0)::numeric
                END)) AS grams,
            sum(b.value) AS value
           FROM (((by_sku b
             LEFT JOIN public.products p ON ((p.sku = b.sku)))
             LEFT JOIN public.product_classes c ON ((c.product_class = p.product_class)))
             LEFT JOIN LATERAL ( SELECT f_1.amount_per_dried_gram
                   FROM public.dried_equivalency_factors f_1
                  WHERE ((f_1.product_class = p.product_class) AND (f_1.net_unit = p.net_unit) AND (f_1.in_force_from <= b.today))
                  ORDER BY f_1.in_force_from DESC
                 LIMIT 1) f ON (true))
          GROUP BY b.store_id, COALESCE(p.product_class, 'uncatalogued'::text), b.month, b.transaction_type, b.reason_code
        ), moved AS NOT MATERIALIZED (
         SELECT by_reason.store_id,
            by_reason.product_class,
            by_reason.month,
            m_1.measure,
            sum(m_1.amount) FILTER (WHERE (by_reason.transaction_type = 'receipt'::text)) AS receipts,
            sum(m_1.amount) FILTER (WHERE (by_reason.transaction_type = 'sale'::text)) AS sales,
            sum(m_1.amount) FILTER (WHERE (by_reason.transaction_type = ANY (ARRAY['return'::text, 'void'::text]))) AS returns,
            sum(m_1.amount) FILTER (WHERE (by_reason.transaction_type = 'transfer_in'::text)) AS transfers_in,
            sum(m_1.amount) FILTER (WHERE (by_reason.transaction_type = 'transfer_out'::text)) AS transfers_out,
            sum(m_1.amount) FILTER (WHERE ((by_reason.transaction_type = 'adjustment'::text) AND (by_reason.reason_code <> 'destruction'::text))) AS adjusted,
            jsonb_object_agg(by_reason.reason_code, m_1.amount) FILTER (WHERE ((by_reason.transaction_type = 'adjustment'::text) AND (by_reason.reason_code <> 'destruction'::text))) AS adjustments,
            sum(m_1.amount) FILTER (WHERE ((by_reason.transaction_type = 'adjustment'::text) AND (by_reason.reason_code = 'destruction'::text))) AS destructions,
            sum(m_1.amount) FILTER (WHERE (by_reason.transaction_type <> ALL (ARRAY['receipt'::text, 'sale'::text, 'return'::text, 'void'::text, 'transfer_in'::text, 'transfer_out'::text, 'adjustment'::text]))) AS other,
            sum(m_1.amount) AS net
           FROM (by_reason
             CROSS JOIN LATERAL ( VALUES ('units'::text,by_reason.units), ('grams'::text,by_reason.grams), ('value'::text,by_reason.value)) m_1(measure, amount))
          GROUP BY by_reason.store_id, by_reason.product_class, by_reason.month, m_1.measure
        ), months AS (
         SELECT f.store_id,
            f.product_class,
            f.measure,
            (g.month)::date AS month
           FROM ((( SELECT moved.store_id,
                    moved.product_class,
                    moved.measure,
                    min(moved.month) AS first_month,
                    max(moved.month) AS last_month
                   FROM moved
                  GROUP BY moved.store_id, moved.product_class, moved.measure) f
             JOIN public.stores s ON ((s.id = f.store_id)))
             CROSS JOIN LATERAL generate_series((f.first_month)::timestamp without time zone, GREATEST((f.last_month)::timestamp without time zone, date_trunc('month'::text, (now() AT TIME ZONE s.time_zone))), '1 mon'::interval) g(month))
        )
 SELECT n.store_id,
    n.month,
    n.product_class,
    n.measure,
    (COALESCE(sum(m.net) OVER w, (0)::numeric) - COALESCE(m.net, (0)::numeric)) AS opening,
    COALESCE(m.receipts, (0)::numeric) AS receipts,
    COALESCE(m.sales, (0)::numeric) AS sales,
    COALESCE(m.returns, (0)::numeric) AS returns,
    COALESCE(m.transfers_in, (0)::numeric) AS transfers_in,
    COALESCE(m.transfers_out, (0)::numeric) AS transfers_out,
    COALESCE(m.adjusted, (0)::numeric) AS adjusted,
    COALESCE(m.adjustments, '{}'::jsonb) AS adjustments,
    COALESCE(m.destructions, (0)::numeric) AS destructions,
    COALESCE(m.other, (0)::numeric) AS other,
    COALESCE(sum(m.net) OVER w, (0)::numeric) AS closing
   FROM (months n
     LEFT JOIN moved m USING (store_id, product_class, measure, month))
  WINDOW w AS (PARTITION BY n.store_id, n.product_class, n.measure ORDER BY n.month);

COMMENT ON VIEW public.monthly_report IS 'The monthly report a store files: per store, month (the store''s calendar month a movement happened), product class (''uncatalogued'': not in the catalogue) and measure (units; grams: dried-equivalent, by today''s catalogue and factors; value: at cost, each batch''s units times its unit_cost, 0 where no receipt priced it): opening, receipts, sales, returns (and voids), transfers in and out, adjusted (adjustments by reason in adjustments, destruction apart), destructions, other (ledger rows of type opening or manual_adjustment), closing; signed as the ledger (out < 0), opening + movements = closing. Filter by store_id (docs/monthly-report.md).';

CREATE VIEW public.negative_inventory AS
 SELECT ocs_inventory.store_id,
    ocs_inventory.id AS inventory_id,
    ocs_inventory.sku,
    ocs_inventory.batch_lot,
    ocs_inventory.quantity_on_hand,
    ocs_inventory.quantity_available,
    ocs_inventory.quantity_quarantined,
    ocs_inventory.quantity_reserved
   FROM public.ocs_inventory
  WHERE ((ocs_inventory.quantity_on_hand < 0) OR (ocs_inventory.quantity_available < 0) OR (ocs_inventory.quantity_quarantined < 0) OR (ocs_inventory.quantity_reserved < 0) OR (((ocs_inventory.quantity_available + ocs_inventory.quantity_quarantined) + ocs_inventory.quantity_reserved) > ocs_inventory.quantity_on_hand));

COMMENT ON VIEW public.negative_inventory IS 'Stock rows breaking what the CHECK constraints guarantee (after a restore or an import that disabled them). Empty on a healthy database.';

CREATE TABLE public.ocs_deliveries (
    store_id uuid NOT NULL,
    id bigint NOT NULL,
    kind text NOT NULL,
    outbox_ids bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    day date,
    attempt integer NOT NULL,
    status_code integer,
    body text,
    error text,
    accepted boolean NOT NULL,
    sender text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ocs_deliveries_attempt_check CHECK ((attempt >= 1)),
    CONSTRAINT ocs_deliveries_has_an_answer CHECK (((status_code IS NOT NULL) OR (error IS NOT NULL))),
    CONSTRAINT ocs_deliveries_kind_check CHECK ((kind = ANY (ARRAY['events'::text, 'position'::text]))),
    CONSTRAINT ocs_deliveries_names_what_was_sent CHECK ((((kind = 'events'::text) AND (cardinality(outbox_ids) > 0)) OR ((kind = 'position'::text) AND (day IS NOT NULL))))
);

COMMENT ON TABLE public.ocs_deliveries IS 'Every attempt to deliver the OCS feed and the platform''s answer: the outbox rows (kind events) or the day (kind position) sent, the attempt number, the HTTP status and body, or the error (timeout, refused connection) in its stead; accepted when the platform took it (2xx). Written by ocs_record_delivery only.';

COMMENT ON COLUMN public.ocs_deliveries.outbox_ids IS 'The ocs_outbox ids the POST carried (kind events), in order.';

COMMENT ON COLUMN public.ocs_deliveries.sender IS 'Who sent it (host:pid of the sender, or what the caller named).';

ALTER TABLE public.ocs_deliveries ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ocs_deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.ocs_event_types (
    transaction_type text NOT NULL,
    reason_code text,
    event_type text NOT NULL,
    reason_category text,
    confirmed boolean DEFAULT false NOT NULL,
    CONSTRAINT ocs_event_types_event_type_check CHECK ((event_type <> ''::text))
);

ALTER TABLE ONLY public.ocs_event_types REPLICA IDENTITY FULL;

COMMENT ON TABLE public.ocs_event_types IS 'How each ledger movement is reported to the OCS data platform: its inventoryEventType and reasonCategory, by transaction_type and (for adjustments) reason_code. confirmed: checked against the platform''s published enumeration; false: posledger''s reading of it (docs/decisions.md).';

ALTER TABLE public.ocs_inventory ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ocs_inventory_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE public.ocs_inventory_transactions ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ocs_inventory_transactions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.ocs_outbox (
    store_id uuid NOT NULL,
    id bigint NOT NULL,
    ledger_id bigint NOT NULL,
    day date NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    sent_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL
);

COMMENT ON TABLE public.ocs_outbox IS 'The OCS feed''s transactional outbox: one row per ledger row, written in the same transaction; day is the store''s calendar day it happened (occurred_at, else created_at); sent_at once the platform accepted it.';

ALTER TABLE public.ocs_outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ocs_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.ocs_resends (
    store_id uuid NOT NULL,
    id bigint NOT NULL,
    from_day date NOT NULL,
    to_day date NOT NULL,
    transaction_types text[],
    reason text NOT NULL,
    actor text NOT NULL,
    outbox_ids bigint[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ocs_resends_actor_check CHECK ((actor <> ''::text)),
    CONSTRAINT ocs_resends_days_in_order CHECK ((from_day <= to_day)),
    CONSTRAINT ocs_resends_reason_check CHECK ((reason <> ''::text))
);

COMMENT ON TABLE public.ocs_resends IS 'Requests to send accepted OCS events again (a correction, under the same ids): the store''s days and ledger types named (NULL: every type), who asked and why, and the outbox rows marked unsent. Written by ocs_resend_events only.';

ALTER TABLE public.ocs_resends ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ocs_resends_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.ocs_shipment_lines (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    shipment_id uuid NOT NULL,
    line_no integer NOT NULL,
    inventory_id bigint NOT NULL,
    sku text NOT NULL,
    batch_lot text,
    quantity_shipped integer NOT NULL,
    quantity_received integer NOT NULL,
    unit_cost numeric(14,4),
    CONSTRAINT ocs_shipment_lines_line_no_check CHECK ((line_no > 0)),
    CONSTRAINT ocs_shipment_lines_quantity_received_check CHECK ((quantity_received >= 0)),
    CONSTRAINT ocs_shipment_lines_quantity_shipped_check CHECK ((quantity_shipped >= 0))
);

COMMENT ON TABLE public.ocs_shipment_lines IS 'Each shipment line as shipped and as received.';

COMMENT ON COLUMN public.ocs_shipment_lines.unit_cost IS 'The unit cost the shipment line gave (the ASN''s UnitPrice per unit), if any.';

ALTER TABLE public.ocs_shipment_lines ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.ocs_shipment_lines_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW public.open_inventory_exceptions AS
 SELECT e.id,
    e.store_id,
    e.kind,
    e.sku,
    e.batch_lot,
    e.quantity_short,
    o.terminal_id,
    o.receipt_number,
    e.order_id,
    COALESCE(e.authorized_by, o.cashier_id) AS who,
    COALESCE(e.reason, 'lenient sale: units no batch covered'::text) AS why,
    e.detail,
    COALESCE(o.occurred_at, o.created_at) AS sold_at,
    e.created_at,
    (now() - e.created_at) AS age,
    e.status
   FROM (public.inventory_exceptions e
     JOIN public.pos_orders o ON (((o.store_id = e.store_id) AND (o.id = e.order_id))))
  WHERE (e.status = 'open'::text)
  ORDER BY e.created_at, e.id;

COMMENT ON VIEW public.open_inventory_exceptions IS 'The exception queue''s open items, oldest first: what (kind, sku, batch, units), where (store, till, receipt), who (authorised by, else the cashier), why, when.';

CREATE VIEW public.open_reservations AS
SELECT
    NULL::uuid AS store_id,
    NULL::uuid AS order_id,
    NULL::text AS receipt_number,
    NULL::text AS status,
    NULL::uuid AS user_id,
    NULL::text AS cashier_id,
    NULL::text AS terminal_id,
    NULL::timestamp with time zone AS reserved_at,
    NULL::timestamp with time zone AS expires_at,
    NULL::interval AS age,
    NULL::boolean AS overdue,
    NULL::bigint AS units,
    NULL::bigint AS batches;

COMMENT ON VIEW public.open_reservations IS 'Reservations and parked carts still holding units, per store, with their age and whether they are past expires_at (release_expired_reservations releases those).';

CREATE TABLE public.pos_order_lines (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    order_id uuid NOT NULL,
    line_no integer NOT NULL,
    sku text NOT NULL,
    product_name text,
    batch_lot text,
    inventory_id bigint,
    quantity integer NOT NULL,
    product_class text,
    dried_grams_per_unit numeric,
    unit_price numeric,
    discount numeric,
    tax numeric,
    CONSTRAINT pos_order_lines_line_no_check CHECK ((line_no > 0)),
    CONSTRAINT pos_order_lines_quantity_check CHECK ((quantity > 0))
);

COMMENT ON TABLE public.pos_order_lines IS 'One row per sale line and batch its units came from; inventory_id NULL marks units a lenient sale sold without stock.';

COMMENT ON COLUMN public.pos_order_lines.dried_grams_per_unit IS 'The dried-equivalent grams of one unit the sale was judged by, as of the sale.';

ALTER TABLE public.pos_order_lines ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.pos_order_lines_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.pos_return_lines (
    id bigint NOT NULL,
    store_id uuid NOT NULL,
    return_id uuid NOT NULL,
    order_line_id bigint NOT NULL,
    inventory_id bigint NOT NULL,
    quantity integer NOT NULL,
    defective boolean NOT NULL,
    CONSTRAINT pos_return_lines_quantity_check CHECK ((quantity > 0))
);

COMMENT ON TABLE public.pos_return_lines IS 'What each return gave back, per order line row (line and batch).';

ALTER TABLE public.pos_return_lines ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.pos_return_lines_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE public.product_gtins (
    gtin text NOT NULL,
    sku text NOT NULL,
    CONSTRAINT product_gtins_check_digit CHECK (((gtin ~ '^[0-9]{14}$'::text) AND ((((((((((3 * (((((((substr(gtin, 1, 1))::integer + (substr(gtin, 3, 1))::integer) + (substr(gtin, 5, 1))::integer) + (substr(gtin, 7, 1))::integer) + (substr(gtin, 9, 1))::integer) + (substr(gtin, 11, 1))::integer) + (substr(gtin, 13, 1))::integer)) + (substr(gtin, 2, 1))::integer) + (substr(gtin, 4, 1))::integer) + (substr(gtin, 6, 1))::integer) + (substr(gtin, 8, 1))::integer) + (substr(gtin, 10, 1))::integer) + (substr(gtin, 12, 1))::integer) + (substr(gtin, 14, 1))::integer) % 10) = 0)))
);

COMMENT ON TABLE public.product_gtins IS 'The barcodes of each product as GTIN-14, GS1 check digit verified; a scan finds its sku here.';

CREATE VIEW public.profiles AS
 SELECT loyalty_accounts.user_id,
    (sum(loyalty_accounts.points))::bigint AS loyalty_points,
    min(loyalty_accounts.created_at) AS created_at,
    max(loyalty_accounts.updated_at) AS updated_at
   FROM public.loyalty_accounts
  GROUP BY loyalty_accounts.user_id;

COMMENT ON VIEW public.profiles IS 'Loyalty customers and their balance: the sum of their accounts at every store (loyalty_accounts), which equals the sum of their loyalty_transactions.';

CREATE VIEW public.recall_report AS
 SELECT i.store_id,
    s.name AS store_name,
    i.sku,
    i.batch_lot,
    i.status,
    h.created_at AS status_changed_at,
    i.quantity_on_hand,
    i.quantity_quarantined,
    COALESCE(l.received, (0)::bigint) AS received,
    COALESCE(l.sold, (0)::bigint) AS sold,
    COALESCE(l.returned, (0)::bigint) AS returned,
    l.first_sold,
    i.last_sold,
    h.reference,
    h.reason
   FROM (((public.ocs_inventory i
     JOIN public.stores s ON ((s.id = i.store_id)))
     LEFT JOIN LATERAL ( SELECT sum(t.quantity) FILTER (WHERE (t.transaction_type = ANY (ARRAY['receipt'::text, 'opening'::text]))) AS received,
            (- sum(t.quantity) FILTER (WHERE (t.transaction_type = 'sale'::text))) AS sold,
            sum(t.quantity) FILTER (WHERE (t.transaction_type = ANY (ARRAY['return'::text, 'void'::text]))) AS returned,
            min(t.created_at) FILTER (WHERE (t.transaction_type = 'sale'::text)) AS first_sold
           FROM public.ocs_inventory_transactions t
          WHERE ((t.store_id = i.store_id) AND (t.inventory_id = i.id))) l ON (true))
     LEFT JOIN LATERAL ( SELECT c.created_at,
            c.reference,
            c.reason
           FROM public.batch_status_changes c
          WHERE ((c.store_id = i.store_id) AND (c.inventory_id = i.id))
          ORDER BY c.id DESC
         LIMIT 1) h ON (true))
  WHERE ((i.status <> 'active'::text) OR (h.created_at IS NOT NULL));

COMMENT ON VIEW public.recall_report IS 'The lots that are held or ever were, per store: where the lot is, how much was received, sold and came back, and the latest status change''s reference and reason.';

CREATE VIEW public.receiving_variances AS
 SELECT sh.store_id,
    sh.ocs_shipment_id,
    sh.created_at AS received_at,
    sl.line_no,
    sl.sku,
    sl.batch_lot,
    sl.quantity_shipped,
    sl.quantity_received,
    (sl.quantity_received - sl.quantity_shipped) AS variance
   FROM (public.ocs_shipment_lines sl
     JOIN public.ocs_shipments sh ON (((sh.store_id = sl.store_id) AND (sh.id = sl.shipment_id))))
  WHERE (sl.quantity_received <> sl.quantity_shipped);

COMMENT ON VIEW public.receiving_variances IS 'Shipment lines whose received quantity differs from what OCS shipped.';

CREATE TABLE public.reservation_holds (
    store_id uuid NOT NULL,
    id bigint NOT NULL,
    order_id uuid NOT NULL,
    line_no integer NOT NULL,
    inventory_id bigint NOT NULL,
    sku text NOT NULL,
    batch_lot text,
    quantity integer NOT NULL,
    held_at timestamp with time zone DEFAULT now() NOT NULL,
    released_at timestamp with time zone,
    released_as text,
    CONSTRAINT reservation_holds_quantity_check CHECK ((quantity > 0)),
    CONSTRAINT reservation_holds_release_recorded CHECK (((released_at IS NULL) = (released_as IS NULL))),
    CONSTRAINT reservation_holds_released_as_check CHECK ((released_as = ANY (ARRAY['completed'::text, 'cancelled'::text, 'expired'::text])))
);

COMMENT ON TABLE public.reservation_holds IS 'The units each reservation or parked cart holds, by batch; released once (released_as: completed, cancelled, expired), never deleted.';

ALTER TABLE public.reservation_holds ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.reservation_holds_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW public.sales_per_hour AS
 SELECT o.store_id,
    date_trunc('hour'::text, o.created_at) AS hour,
    count(*) AS orders,
    count(*) FILTER (WHERE (o.status = 'voided'::text)) AS voided,
    sum(l.units) AS units,
    sum(o.total) AS total
   FROM (public.pos_orders o
     LEFT JOIN LATERAL ( SELECT sum(ol.quantity) AS units
           FROM public.pos_order_lines ol
          WHERE ((ol.store_id = o.store_id) AND (ol.order_id = o.id))) l ON (true))
  WHERE (o.status = ANY (ARRAY['completed'::text, 'voided'::text]))
  GROUP BY o.store_id, (date_trunc('hour'::text, o.created_at));

COMMENT ON VIEW public.sales_per_hour IS 'Orders (and how many were voided), units and totals per store and hour (the session''s TimeZone).';

CREATE VIEW public.stock_by_batch AS
 SELECT ocs_inventory.store_id,
    ocs_inventory.sku,
    ocs_inventory.batch_lot,
    ocs_inventory.status,
    row_number() OVER (PARTITION BY ocs_inventory.store_id, ocs_inventory.sku ORDER BY (ocs_inventory.batch_lot IS NOT NULL), ocs_inventory.packaged_on_date NULLS FIRST, ocs_inventory.id) AS fefo_rank,
    (ocs_inventory.status = 'active'::text) AS sellable,
    ocs_inventory.packaged_on_date,
    (CURRENT_DATE - ocs_inventory.packaged_on_date) AS age_days,
    ocs_inventory.quantity_on_hand,
    ocs_inventory.quantity_available,
    ocs_inventory.quantity_quarantined,
    ocs_inventory.last_sold,
    ocs_inventory.id AS inventory_id
   FROM public.ocs_inventory;

COMMENT ON VIEW public.stock_by_batch IS 'Each store''s batches in the order a sale line without a batch takes them (fefo_rank).';

CREATE VIEW public.terminal_sequence_gaps AS
 SELECT s.store_id,
    s.terminal_id,
    (s.previous_sequence + 1) AS first_missing,
    (s.terminal_sequence - 1) AS last_missing,
    ((s.terminal_sequence - s.previous_sequence) - 1) AS missing,
    s.previous_received_at,
    s.next_received_at
   FROM ( SELECT pos_orders.store_id,
            pos_orders.terminal_id,
            pos_orders.terminal_sequence,
            pos_orders.created_at AS next_received_at,
            lag(pos_orders.terminal_sequence) OVER w AS previous_sequence,
            lag(pos_orders.created_at) OVER w AS previous_received_at
           FROM public.pos_orders
          WHERE (pos_orders.terminal_sequence IS NOT NULL)
          WINDOW w AS (PARTITION BY pos_orders.store_id, pos_orders.terminal_id ORDER BY pos_orders.terminal_sequence)) s
  WHERE (s.terminal_sequence > (s.previous_sequence + 1));

COMMENT ON VIEW public.terminal_sequence_gaps IS 'Per store and till, each run of sequence numbers missing between two that arrived: sales the till sent that never reached the database.';

CREATE VIEW public.transfers_to_watch AS
 WITH t AS MATERIALIZED (
         SELECT transfers.store_id,
            transfers.id,
            transfers.reference,
            transfers.to_store_id,
            transfers.to_crsa,
            transfers.status,
            transfers.payload,
            transfers.created_at
           FROM public.transfers
        ), r AS MATERIALIZED (
         SELECT transfer_receipts.store_id,
            transfer_receipts.id,
            transfer_receipts.reference,
            transfer_receipts.from_store_id,
            transfer_receipts.from_crsa,
            transfer_receipts.payload,
            transfer_receipts.created_at
           FROM public.transfer_receipts
        )
 SELECT COALESCE(t.store_id, r.from_store_id) AS from_store_id,
    COALESCE(r.from_crsa, fs.crsa) AS from_crsa,
    COALESCE(t.to_store_id, r.store_id) AS to_store_id,
    COALESCE(t.to_crsa, ts.crsa) AS to_crsa,
    COALESCE(t.reference, r.reference) AS reference,
    t.id AS transfer_id,
    r.id AS receipt_id,
        CASE
            WHEN (t.id IS NULL) THEN 'received_unknown'::text
            WHEN ((t.status = 'cancelled'::text) AND (r.id IS NOT NULL)) THEN 'received_after_cancel'::text
            WHEN (r.id IS NULL) THEN 'in_transit'::text
            ELSE 'unbalanced'::text
        END AS state,
    t.created_at AS sent_at,
    r.created_at AS received_at,
    d.units_sent,
    d.units_received,
    d.differences
   FROM ((((t
     FULL JOIN r ON (((r.store_id = t.to_store_id) AND (r.from_store_id = t.store_id) AND (r.reference = t.reference))))
     LEFT JOIN public.stores fs ON ((fs.id = r.from_store_id)))
     LEFT JOIN public.stores ts ON ((ts.id = r.store_id)))
     LEFT JOIN LATERAL ( SELECT sum(COALESCE(s.sent, (0)::bigint)) AS units_sent,
            sum(COALESCE(g.received, (0)::bigint)) AS units_received,
            COALESCE(jsonb_agg(jsonb_build_object('sku', COALESCE(s.sku, g.sku), 'batch', COALESCE(s.batch_lot, g.batch_lot), 'sent', COALESCE(s.sent, (0)::bigint), 'received', COALESCE(g.received, (0)::bigint)) ORDER BY COALESCE(s.sku, g.sku), COALESCE(s.batch_lot, g.batch_lot)) FILTER (WHERE ((r.id IS NOT NULL) AND (COALESCE(s.sent, (0)::bigint) <> COALESCE(g.received, (0)::bigint)))), '[]'::jsonb) AS differences
           FROM (( SELECT (l.value ->> 'sku'::text) AS sku,
                    (l.value ->> 'batch_lot'::text) AS batch_lot,
                    sum(((l.value ->> 'quantity'::text))::integer) AS sent
                   FROM jsonb_array_elements((t.payload -> 'lines'::text)) l(value)
                  GROUP BY (l.value ->> 'sku'::text), (l.value ->> 'batch_lot'::text)) s
             FULL JOIN ( SELECT (l.value ->> 'sku'::text) AS sku,
                    (l.value ->> 'batch_lot'::text) AS batch_lot,
                    sum(((l.value ->> 'received'::text))::integer) AS received
                   FROM jsonb_array_elements((r.payload -> 'lines'::text)) l(value)
                  GROUP BY (l.value ->> 'sku'::text), (l.value ->> 'batch_lot'::text)) g USING (sku, batch_lot))) d ON (true))
  WHERE ((t.id IS NULL) OR ((t.status = 'in_transit'::text) AND (r.id IS NULL)) OR ((t.status = 'cancelled'::text) AND (r.id IS NOT NULL)) OR ((r.id IS NOT NULL) AND (d.differences <> '[]'::jsonb)));

COMMENT ON VIEW public.transfers_to_watch IS 'Transfers that need a look (docs/transfers.md): state in_transit (sent, neither received nor cancelled), unbalanced (received quantities differ from sent: differences), received_after_cancel, received_unknown (no transfer sent by that reference).';

ALTER TABLE ONLY public.adjustment_reasons
    ADD CONSTRAINT adjustment_reasons_pkey PRIMARY KEY (code);

ALTER TABLE ONLY public.batch_lot_holds
    ADD CONSTRAINT batch_lot_holds_one_per_scope UNIQUE NULLS NOT DISTINCT (batch_lot, sku, store_id);

ALTER TABLE ONLY public.batch_status_changes
    ADD CONSTRAINT batch_status_changes_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.batch_status_requests
    ADD CONSTRAINT batch_status_requests_pkey PRIMARY KEY (reference);

ALTER TABLE ONLY public.catalogue_categories
    ADD CONSTRAINT catalogue_categories_pkey PRIMARY KEY (category);

ALTER TABLE ONLY public.dried_equivalency_factors
    ADD CONSTRAINT dried_equivalency_factors_pkey PRIMARY KEY (product_class, net_unit, in_force_from);

ALTER TABLE ONLY public.inventory_adjustments
    ADD CONSTRAINT inventory_adjustments_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.inventory_adjustments
    ADD CONSTRAINT inventory_adjustments_reference_once UNIQUE (store_id, reference);

ALTER TABLE ONLY public.inventory_exceptions
    ADD CONSTRAINT inventory_exceptions_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.loyalty_accounts
    ADD CONSTRAINT loyalty_accounts_pkey PRIMARY KEY (store_id, user_id);

ALTER TABLE ONLY public.loyalty_transactions
    ADD CONSTRAINT loyalty_transactions_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_deliveries
    ADD CONSTRAINT ocs_deliveries_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_event_types
    ADD CONSTRAINT ocs_event_types_transaction_type_reason_code_key UNIQUE NULLS NOT DISTINCT (transaction_type, reason_code);

ALTER TABLE ONLY public.ocs_inventory
    ADD CONSTRAINT ocs_inventory_one_row_per_batch UNIQUE NULLS NOT DISTINCT (store_id, sku, batch_lot);

ALTER TABLE ONLY public.ocs_inventory
    ADD CONSTRAINT ocs_inventory_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_inventory_transactions
    ADD CONSTRAINT ocs_inventory_transactions_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_outbox
    ADD CONSTRAINT ocs_outbox_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_outbox
    ADD CONSTRAINT ocs_outbox_store_id_ledger_id_key UNIQUE (store_id, ledger_id);

ALTER TABLE ONLY public.ocs_resends
    ADD CONSTRAINT ocs_resends_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_shipment_lines
    ADD CONSTRAINT ocs_shipment_lines_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_shipments
    ADD CONSTRAINT ocs_shipments_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.ocs_shipments
    ADD CONSTRAINT ocs_shipments_received_once UNIQUE (store_id, ocs_shipment_id);

ALTER TABLE ONLY public.pos_order_lines
    ADD CONSTRAINT pos_order_lines_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.pos_orders
    ADD CONSTRAINT pos_orders_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.pos_orders
    ADD CONSTRAINT pos_orders_receipt_once UNIQUE (store_id, receipt_number);

ALTER TABLE ONLY public.pos_return_lines
    ADD CONSTRAINT pos_return_lines_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.pos_returns
    ADD CONSTRAINT pos_returns_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.pos_returns
    ADD CONSTRAINT pos_returns_reference_once UNIQUE (store_id, reference);

ALTER TABLE ONLY public.product_classes
    ADD CONSTRAINT product_classes_pkey PRIMARY KEY (product_class);

ALTER TABLE ONLY public.product_gtins
    ADD CONSTRAINT product_gtins_pkey PRIMARY KEY (gtin);

ALTER TABLE ONLY public.products
    ADD CONSTRAINT products_pkey PRIMARY KEY (sku);

ALTER TABLE ONLY public.reservation_holds
    ADD CONSTRAINT reservation_holds_pkey PRIMARY KEY (store_id, id);

ALTER TABLE public.stores
    ADD CONSTRAINT stores_crol_not_empty CHECK ((crol <> ''::text)) NOT VALID;

ALTER TABLE public.stores
    ADD CONSTRAINT stores_crsa_not_empty CHECK ((crsa <> ''::text)) NOT VALID;

ALTER TABLE ONLY public.stores
    ADD CONSTRAINT stores_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.transfer_receipts
    ADD CONSTRAINT transfer_receipts_once UNIQUE (store_id, from_store_id, reference);

ALTER TABLE ONLY public.transfer_receipts
    ADD CONSTRAINT transfer_receipts_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.transfers
    ADD CONSTRAINT transfers_pkey PRIMARY KEY (store_id, id);

ALTER TABLE ONLY public.transfers
    ADD CONSTRAINT transfers_reference_once UNIQUE (store_id, reference);

CREATE INDEX batch_status_changes_by_row ON public.batch_status_changes USING btree (store_id, inventory_id, id);

CREATE INDEX inventory_exceptions_open ON public.inventory_exceptions USING btree (store_id, sku) WHERE (status = 'open'::text);

CREATE INDEX inventory_exceptions_open_by_age ON public.inventory_exceptions USING btree (store_id, created_at) WHERE (status = 'open'::text);

CREATE INDEX loyalty_accounts_by_user ON public.loyalty_accounts USING btree (user_id);

CREATE INDEX loyalty_transactions_by_order ON public.loyalty_transactions USING btree (store_id, order_id);

CREATE INDEX loyalty_transactions_by_user ON public.loyalty_transactions USING btree (user_id, id);

CREATE INDEX ocs_deliveries_by_time ON public.ocs_deliveries USING btree (store_id, created_at);

CREATE INDEX ocs_inventory_by_batch_lot ON public.ocs_inventory USING btree (batch_lot);

CREATE INDEX ocs_inventory_transactions_by_reference ON public.ocs_inventory_transactions USING btree (store_id, reference_id);

CREATE INDEX ocs_inventory_transactions_by_row ON public.ocs_inventory_transactions USING btree (store_id, inventory_id, id);

CREATE INDEX ocs_outbox_by_day ON public.ocs_outbox USING btree (store_id, day);

CREATE INDEX ocs_outbox_unsent ON public.ocs_outbox USING btree (store_id, id) WHERE (sent_at IS NULL);

CREATE INDEX ocs_shipment_lines_by_shipment ON public.ocs_shipment_lines USING btree (store_id, shipment_id);

CREATE INDEX pos_order_lines_by_order ON public.pos_order_lines USING btree (store_id, order_id);

CREATE INDEX pos_orders_open_reservations ON public.pos_orders USING btree (store_id, expires_at) WHERE (status = ANY (ARRAY['reserved'::text, 'parked'::text]));

CREATE UNIQUE INDEX pos_orders_terminal_sequence_once ON public.pos_orders USING btree (store_id, terminal_id, terminal_sequence) WHERE (terminal_sequence IS NOT NULL);

CREATE INDEX pos_return_lines_by_order_line ON public.pos_return_lines USING btree (store_id, order_line_id);

CREATE INDEX pos_return_lines_by_return ON public.pos_return_lines USING btree (store_id, return_id);

CREATE INDEX pos_returns_by_order ON public.pos_returns USING btree (store_id, order_id);

CREATE INDEX product_gtins_by_sku ON public.product_gtins USING btree (sku);

CREATE INDEX reservation_holds_by_order ON public.reservation_holds USING btree (store_id, order_id);

CREATE INDEX reservation_holds_open_by_stock ON public.reservation_holds USING btree (store_id, inventory_id) WHERE (released_at IS NULL);

CREATE OR REPLACE VIEW public.open_reservations AS
 SELECT o.store_id,
    o.id AS order_id,
    o.receipt_number,
    o.status,
    o.user_id,
    o.cashier_id,
    o.terminal_id,
    o.created_at AS reserved_at,
    o.expires_at,
    (now() - o.created_at) AS age,
    (o.expires_at <= now()) AS overdue,
    COALESCE(sum(h.quantity), (0)::bigint) AS units,
    count(h.id) AS batches
   FROM (public.pos_orders o
     LEFT JOIN public.reservation_holds h ON (((h.store_id = o.store_id) AND (h.order_id = o.id) AND (h.released_at IS NULL))))
  WHERE (o.status = ANY (ARRAY['reserved'::text, 'parked'::text]))
  GROUP BY o.store_id, o.id;

CREATE TRIGGER batch_status_changes_append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON public.batch_status_changes FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_ledger_rewrite();

CREATE TRIGGER inventory_exceptions_announce AFTER INSERT ON public.inventory_exceptions FOR EACH ROW EXECUTE FUNCTION public.inventory_exception_announce();

CREATE TRIGGER loyalty_transactions_append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON public.loyalty_transactions FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_ledger_rewrite();

CREATE TRIGGER ocs_inventory_identity_fixed BEFORE UPDATE OF id, store_id, sku, batch_lot ON public.ocs_inventory FOR EACH ROW WHEN (((old.id IS DISTINCT FROM new.id) OR (old.store_id IS DISTINCT FROM new.store_id) OR (old.sku IS DISTINCT FROM new.sku) OR (old.batch_lot IS DISTINCT FROM new.batch_lot))) EXECUTE FUNCTION public.refuse_identity_change();

CREATE TRIGGER ocs_inventory_ledger_change AFTER UPDATE OF quantity_on_hand ON public.ocs_inventory FOR EACH ROW WHEN ((old.quantity_on_hand IS DISTINCT FROM new.quantity_on_hand)) EXECUTE FUNCTION public.ocs_inventory_write_ledger();

CREATE TRIGGER ocs_inventory_ledger_opening AFTER INSERT ON public.ocs_inventory FOR EACH ROW WHEN ((new.quantity_on_hand <> 0)) EXECUTE FUNCTION public.ocs_inventory_write_ledger();

CREATE TRIGGER ocs_inventory_transactions_append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON public.ocs_inventory_transactions FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_ledger_rewrite();

CREATE TRIGGER ocs_inventory_transactions_outbox AFTER INSERT ON public.ocs_inventory_transactions FOR EACH ROW EXECUTE FUNCTION public.ocs_outbox_write();

CREATE TRIGGER ocs_inventory_transactions_seal BEFORE INSERT ON public.ocs_inventory_transactions FOR EACH ROW EXECUTE FUNCTION public.ocs_ledger_seal();

ALTER TABLE ONLY public.batch_lot_holds
    ADD CONSTRAINT batch_lot_holds_reference_fkey FOREIGN KEY (reference) REFERENCES public.batch_status_requests(reference);

ALTER TABLE ONLY public.batch_status_changes
    ADD CONSTRAINT batch_status_changes_reference_fkey FOREIGN KEY (reference) REFERENCES public.batch_status_requests(reference);

ALTER TABLE ONLY public.batch_status_changes
    ADD CONSTRAINT batch_status_changes_store_id_inventory_id_fkey FOREIGN KEY (store_id, inventory_id) REFERENCES public.ocs_inventory(store_id, id);

ALTER TABLE ONLY public.catalogue_categories
    ADD CONSTRAINT catalogue_categories_product_class_fkey FOREIGN KEY (product_class) REFERENCES public.product_classes(product_class);

ALTER TABLE ONLY public.dried_equivalency_factors
    ADD CONSTRAINT dried_equivalency_factors_product_class_fkey FOREIGN KEY (product_class) REFERENCES public.product_classes(product_class);

ALTER TABLE ONLY public.inventory_adjustments
    ADD CONSTRAINT inventory_adjustments_reason_code_fkey FOREIGN KEY (reason_code) REFERENCES public.adjustment_reasons(code);

ALTER TABLE ONLY public.inventory_adjustments
    ADD CONSTRAINT inventory_adjustments_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.inventory_exceptions
    ADD CONSTRAINT inventory_exceptions_resolved_by_fk FOREIGN KEY (store_id, resolved_by) REFERENCES public.inventory_adjustments(store_id, id);

ALTER TABLE ONLY public.inventory_exceptions
    ADD CONSTRAINT inventory_exceptions_store_id_order_id_fkey FOREIGN KEY (store_id, order_id) REFERENCES public.pos_orders(store_id, id);

ALTER TABLE ONLY public.loyalty_accounts
    ADD CONSTRAINT loyalty_accounts_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.loyalty_transactions
    ADD CONSTRAINT loyalty_transactions_return_fk FOREIGN KEY (store_id, return_id) REFERENCES public.pos_returns(store_id, id);

ALTER TABLE ONLY public.loyalty_transactions
    ADD CONSTRAINT loyalty_transactions_store_id_order_id_fkey FOREIGN KEY (store_id, order_id) REFERENCES public.pos_orders(store_id, id);

ALTER TABLE ONLY public.ocs_deliveries
    ADD CONSTRAINT ocs_deliveries_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.ocs_inventory
    ADD CONSTRAINT ocs_inventory_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.ocs_inventory_transactions
    ADD CONSTRAINT ocs_inventory_transactions_reason_fk FOREIGN KEY (reason_code) REFERENCES public.adjustment_reasons(code);

ALTER TABLE ONLY public.ocs_inventory_transactions
    ADD CONSTRAINT ocs_inventory_transactions_store_id_inventory_id_fkey FOREIGN KEY (store_id, inventory_id) REFERENCES public.ocs_inventory(store_id, id);

ALTER TABLE ONLY public.ocs_outbox
    ADD CONSTRAINT ocs_outbox_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.ocs_resends
    ADD CONSTRAINT ocs_resends_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.ocs_shipment_lines
    ADD CONSTRAINT ocs_shipment_lines_store_id_inventory_id_fkey FOREIGN KEY (store_id, inventory_id) REFERENCES public.ocs_inventory(store_id, id);

ALTER TABLE ONLY public.ocs_shipment_lines
    ADD CONSTRAINT ocs_shipment_lines_store_id_shipment_id_fkey FOREIGN KEY (store_id, shipment_id) REFERENCES public.ocs_shipments(store_id, id);

ALTER TABLE ONLY public.ocs_shipments
    ADD CONSTRAINT ocs_shipments_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.pos_order_lines
    ADD CONSTRAINT pos_order_lines_store_id_inventory_id_fkey FOREIGN KEY (store_id, inventory_id) REFERENCES public.ocs_inventory(store_id, id);

ALTER TABLE ONLY public.pos_order_lines
    ADD CONSTRAINT pos_order_lines_store_id_order_id_fkey FOREIGN KEY (store_id, order_id) REFERENCES public.pos_orders(store_id, id);

ALTER TABLE ONLY public.pos_orders
    ADD CONSTRAINT pos_orders_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.pos_return_lines
    ADD CONSTRAINT pos_return_lines_store_id_inventory_id_fkey FOREIGN KEY (store_id, inventory_id) REFERENCES public.ocs_inventory(store_id, id);

ALTER TABLE ONLY public.pos_return_lines
    ADD CONSTRAINT pos_return_lines_store_id_order_line_id_fkey FOREIGN KEY (store_id, order_line_id) REFERENCES public.pos_order_lines(store_id, id);

ALTER TABLE ONLY public.pos_return_lines
    ADD CONSTRAINT pos_return_lines_store_id_return_id_fkey FOREIGN KEY (store_id, return_id) REFERENCES public.pos_returns(store_id, id);

ALTER TABLE ONLY public.pos_returns
    ADD CONSTRAINT pos_returns_store_id_order_id_fkey FOREIGN KEY (store_id, order_id) REFERENCES public.pos_orders(store_id, id);

ALTER TABLE ONLY public.product_gtins
    ADD CONSTRAINT product_gtins_sku_fkey FOREIGN KEY (sku) REFERENCES public.products(sku);

ALTER TABLE ONLY public.products
    ADD CONSTRAINT products_product_class_fkey FOREIGN KEY (product_class) REFERENCES public.product_classes(product_class);

ALTER TABLE ONLY public.reservation_holds
    ADD CONSTRAINT reservation_holds_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.reservation_holds
    ADD CONSTRAINT reservation_holds_store_id_inventory_id_fkey FOREIGN KEY (store_id, inventory_id) REFERENCES public.ocs_inventory(store_id, id);

ALTER TABLE ONLY public.reservation_holds
    ADD CONSTRAINT reservation_holds_store_id_order_id_fkey FOREIGN KEY (store_id, order_id) REFERENCES public.pos_orders(store_id, id);

ALTER TABLE ONLY public.transfer_receipts
    ADD CONSTRAINT transfer_receipts_from_store_id_fkey FOREIGN KEY (from_store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.transfer_receipts
    ADD CONSTRAINT transfer_receipts_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.transfers
    ADD CONSTRAINT transfers_store_id_fkey FOREIGN KEY (store_id) REFERENCES public.stores(id);

ALTER TABLE ONLY public.transfers
    ADD CONSTRAINT transfers_to_store_id_fkey FOREIGN KEY (to_store_id) REFERENCES public.stores(id);

GRANT USAGE ON SCHEMA public TO posledger_app;
GRANT USAGE ON SCHEMA public TO posledger_readonly;

REVOKE ALL ON TYPE posledger_private.pos_return_line FROM PUBLIC;

REVOKE ALL ON TYPE posledger_private.pos_return_plan FROM PUBLIC;

REVOKE ALL ON TYPE posledger_private.pos_sale_line FROM PUBLIC;

REVOKE ALL ON TYPE public.inventory_delta FROM PUBLIC;

REVOKE ALL ON TYPE public.pos_sale_allocation FROM PUBLIC;

GRANT SELECT ON TABLE public.inventory_adjustments TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.adjustment_claim(p_payload jsonb, p_kind text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.adjustment_complete(p_header public.inventory_adjustments, p_deltas public.inventory_delta[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.adjustment_expiry_dates(p_header public.inventory_adjustments) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.adjustment_lines(p_header public.inventory_adjustments) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.adjustment_problems(p_payload jsonb, p_quantity text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.adjustment_record(p_adjustment jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.apply_lock_timeout() FROM PUBLIC;

GRANT SELECT ON TABLE public.batch_status_requests TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.batch_status_claim(p_change jsonb) FROM PUBLIC;

GRANT SELECT ON TABLE public.ocs_inventory TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.batch_status_complete(p_request public.batch_status_requests, p_rows public.ocs_inventory[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.batch_status_problems(p_change jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.batch_status_record(p_change jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.batch_status_targets(p_change jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.begun_elsewhere() FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_amount(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_bad_rows(p_load jsonb, p_seen jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_clashes(p_load jsonb, p_seen jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_given(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_grams(p_day date, p_skus text[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_load_problems(p_load jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_record(p_load jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_remember(p_load jsonb, p_seen jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_row_problems(p_load jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_rows(p_load jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_seen(p_load jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_text(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_unit(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.catalogue_write(p_load jsonb, p_bad integer[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.count_record(p_count jsonb) FROM PUBLIC;

GRANT SELECT ON TABLE public.inventory_exceptions TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.exception_announcement(p_row public.inventory_exceptions) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.exception_problems(p_payload jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.exception_resolve(p_resolution jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.exceptions_announce_here(p_store_id uuid, p_order_id uuid) FROM PUBLIC;

GRANT SELECT ON TABLE public.stores TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.existing_store(p_store_id uuid) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.gs1_date(p_yymmdd text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.gs1_element(p_ai text, p_value text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.gs1_next(p_rest text, p_bracketed boolean, OUT ai text, OUT value text, OUT rest text, OUT problem text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.gs1_parse(p_scan text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.gtin14(p_gtin text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.iso_in_zone(p_at timestamp with time zone, p_zone text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_boolean(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_date(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_given(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_lines(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_long(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_number(p_value jsonb, p_min numeric, p_max numeric, p_whole boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_text(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_timestamp(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_is_uuid(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.json_lines(p_value jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.lock_lots(p_lots text[], p_exclusive boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.lock_timeout() FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.max_lines() FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.ocs_day(p_store public.stores, p_day date) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.ocs_day_position(p_store public.stores, p_day date) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.ocs_delivery_problems(p_delivery jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.ocs_events(p_store_id uuid, p_ids bigint[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.ocs_resend_problems(p_request jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.ocs_unbalanced_days(p_store public.stores, p_ids bigint[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.placed_elsewhere(p_table regclass, p_store_id uuid) FROM PUBLIC;

GRANT SELECT ON TABLE public.pos_orders TO posledger_readonly;

GRANT SELECT ON TABLE public.pos_returns TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.pos_return_claim(p_order public.pos_orders, p_return jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_return_complete(p_order public.pos_orders, p_return public.pos_returns, p_lines posledger_private.pos_return_line[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_return_plan(p_order public.pos_orders, p_return jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_return_problems(p_return jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_return_record(p_return jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_return_reverse_points(p_order public.pos_orders, p_return public.pos_returns) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_allocate(p_stock public.ocs_inventory[], p_lines posledger_private.pos_sale_line[], p_today date) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_award_points(p_order public.pos_orders) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_blocked(p_stock public.ocs_inventory[], p_lines posledger_private.pos_sale_line[], p_today date) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_claim(p_store public.stores, p_sale jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_complete(p_order public.pos_orders, p_lines posledger_private.pos_sale_line[], p_alloc public.pos_sale_allocation[], p_short jsonb, p_limits jsonb, p_held boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_flag(p_order public.pos_orders, p_store public.stores, p_blocked jsonb, p_limits jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_items(p_sale jsonb, p_today date) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_line_problems(p_store public.stores, p_sale jsonb, p_lines posledger_private.pos_sale_line[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_missing(p_store_id uuid, p_lines posledger_private.pos_sale_line[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_problems(p_sale jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_record(p_sale jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_refuse_unlawful(p_store public.stores, p_lines posledger_private.pos_sale_line[], p_limits jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_shortfalls(p_lines posledger_private.pos_sale_line[], p_alloc public.pos_sale_allocation[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.pos_sale_totals(p_sale jsonb, p_lines posledger_private.pos_sale_line[]) FROM PUBLIC;

GRANT SELECT ON TABLE public.ocs_shipments TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.receiving_claim(p_store_id uuid, p_shipment jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.receiving_complete(p_shipment public.ocs_shipments) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.receiving_lines(p_payload jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.receiving_problems(p_shipment jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.receiving_record(p_shipment jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_busy(p_reason text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_catalogue_rows(p_bad jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_closed(p_order public.pos_orders) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_misrouted(p_problems jsonb, p_what text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_missing(p_missing jsonb, p_hint text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_other_payload(p_stored jsonb, p_sent jsonb, p_key jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_overflow(p_reason text, p_what text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.refuse_problems(p_problems jsonb, p_what text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.reservation_cancel(p_cancellation jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.reservation_complete(p_completion jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.reservation_hold(p_order public.pos_orders, p_alloc public.pos_sale_allocation[], p_limits jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.reservation_locked(p_payload jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.reservation_problems(p_payload jsonb, p_cancel boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.reservation_release(p_store_id uuid, p_orders uuid[], p_as text, p_note jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.routed(p_store_id uuid, p_payload jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.stock_batches(p_store_id uuid, p_batches jsonb, p_movement jsonb, p_why text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.store_date(p_store public.stores, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.store_today(p_store public.stores) FROM PUBLIC;

GRANT SELECT ON TABLE public.transfers TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.transfer_cancel_complete(p_header public.transfers, p_cancel jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_cancel_record(p_cancel jsonb) FROM PUBLIC;

GRANT SELECT ON TABLE public.transfer_receipts TO posledger_readonly;

REVOKE ALL ON FUNCTION posledger_private.transfer_in_complete(p_header public.transfer_receipts, p_own_crsa text, p_sent jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_in_record(p_receipt jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_in_sent(p_header public.transfer_receipts) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_lines(p_payload jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_out_complete(p_header public.transfers, p_own_crsa text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_out_record(p_transfer jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_parties(p_store_id uuid, p_other_id uuid, p_field text, OUT own_crsa text, OUT other_crsa text) FROM PUBLIC;

REVOKE ALL ON FUNCTION posledger_private.transfer_problems(p_payload jsonb, p_kind text) FROM PUBLIC;

REVOKE ALL ON FUNCTION public.adjust_inventory(p_adjustment jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.adjust_inventory(p_adjustment jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.adjust_inventory(p_store_id uuid, p_adjustment jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.adjust_inventory(p_store_id uuid, p_adjustment jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.cancel_reservation(p_cancellation jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.cancel_reservation(p_cancellation jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.cancel_reservation(p_store_id uuid, p_cancellation jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.cancel_reservation(p_store_id uuid, p_cancellation jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.cancel_transfer(p_cancel jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.cancel_transfer(p_cancel jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.cancel_transfer(p_store_id uuid, p_cancel jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.cancel_transfer(p_store_id uuid, p_cancel jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.catalogue_product(p_key text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.catalogue_product(p_key text) TO posledger_app;
GRANT ALL ON FUNCTION public.catalogue_product(p_key text) TO posledger_readonly;

REVOKE ALL ON FUNCTION public.complete_reservation(p_completion jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_reservation(p_completion jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.complete_reservation(p_store_id uuid, p_completion jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.complete_reservation(p_store_id uuid, p_completion jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.count_inventory(p_count jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.count_inventory(p_count jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.count_inventory(p_store_id uuid, p_count jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.count_inventory(p_store_id uuid, p_count jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.inventory_exception_announce() FROM PUBLIC;

REVOKE ALL ON FUNCTION public.ledger_digest(p_as_of timestamp with time zone, p_store_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ledger_digest(p_as_of timestamp with time zone, p_store_id uuid) TO posledger_readonly;

REVOKE ALL ON FUNCTION public.load_catalogue(p_load jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.load_catalogue(p_load jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.ocs_claim_events(p_request jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ocs_claim_events(p_request jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.ocs_inventory_write_ledger() FROM PUBLIC;

GRANT SELECT ON TABLE public.ocs_inventory_transactions TO posledger_readonly;

REVOKE ALL ON FUNCTION public.ocs_ledger_hash(p_row public.ocs_inventory_transactions) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ocs_ledger_hash(p_row public.ocs_inventory_transactions) TO posledger_readonly;

REVOKE ALL ON FUNCTION public.ocs_ledger_seal() FROM PUBLIC;

REVOKE ALL ON FUNCTION public.ocs_outbox_write() FROM PUBLIC;

REVOKE ALL ON FUNCTION public.ocs_record_delivery(p_delivery jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ocs_record_delivery(p_delivery jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.ocs_report(p_request jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ocs_report(p_request jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.ocs_resend_events(p_request jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.ocs_resend_events(p_request jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.receive_inventory(p_shipment jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.receive_inventory(p_shipment jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.receive_inventory(p_store_id uuid, p_shipment jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.receive_inventory(p_store_id uuid, p_shipment jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.record_pos_sale(p_sale jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.record_pos_sale(p_sale jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.record_pos_sale(p_store_id uuid, p_sale jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.record_pos_sale(p_store_id uuid, p_sale jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.refuse_identity_change() FROM PUBLIC;

REVOKE ALL ON FUNCTION public.refuse_ledger_rewrite() FROM PUBLIC;

REVOKE ALL ON FUNCTION public.release_expired_reservations(p_store_id uuid, p_max_orders integer) FROM PUBLIC;
GRANT ALL ON FUNCTION public.release_expired_reservations(p_store_id uuid, p_max_orders integer) TO posledger_app;

REVOKE ALL ON FUNCTION public.resolve_inventory_exception(p_resolution jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.resolve_inventory_exception(p_resolution jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.resolve_inventory_exception(p_store_id uuid, p_resolution jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.resolve_inventory_exception(p_store_id uuid, p_resolution jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.return_pos_sale(p_return jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.return_pos_sale(p_return jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.return_pos_sale(p_store_id uuid, p_return jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.return_pos_sale(p_store_id uuid, p_return jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.set_batch_status(p_change jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.set_batch_status(p_change jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.transfer_in(p_receipt jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.transfer_in(p_receipt jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.transfer_in(p_store_id uuid, p_receipt jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.transfer_in(p_store_id uuid, p_receipt jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.transfer_out(p_transfer jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.transfer_out(p_transfer jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.transfer_out(p_store_id uuid, p_transfer jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.transfer_out(p_store_id uuid, p_transfer jsonb) TO posledger_app;

REVOKE ALL ON FUNCTION public.verify_ledger(p_store_id uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.verify_ledger(p_store_id uuid) TO posledger_readonly;

GRANT SELECT ON TABLE public.adjustment_reasons TO posledger_readonly;

GRANT SELECT ON TABLE public.batch_lot_holds TO posledger_readonly;

GRANT SELECT ON TABLE public.batch_status_changes TO posledger_readonly;

GRANT SELECT ON TABLE public.batches_expiring TO posledger_readonly;

GRANT SELECT ON TABLE public.catalogue_categories TO posledger_readonly;

GRANT SELECT ON TABLE public.dried_equivalency_factors TO posledger_readonly;

GRANT SELECT ON TABLE public.inventory_discrepancies TO posledger_readonly;

GRANT SELECT ON TABLE public.inventory_movements_monthly TO posledger_readonly;

GRANT SELECT ON TABLE public.loyalty_accounts TO posledger_readonly;

GRANT SELECT ON TABLE public.loyalty_transactions TO posledger_readonly;

GRANT SELECT ON TABLE public.product_classes TO posledger_readonly;

GRANT SELECT ON TABLE public.products TO posledger_readonly;

GRANT SELECT ON TABLE public.monthly_report TO posledger_readonly;

GRANT SELECT ON TABLE public.negative_inventory TO posledger_readonly;

GRANT SELECT ON TABLE public.ocs_deliveries TO posledger_readonly;

GRANT SELECT ON TABLE public.ocs_event_types TO posledger_readonly;

GRANT SELECT ON TABLE public.ocs_outbox TO posledger_readonly;

GRANT SELECT ON TABLE public.ocs_resends TO posledger_readonly;

GRANT SELECT ON TABLE public.ocs_shipment_lines TO posledger_readonly;

GRANT SELECT ON TABLE public.open_inventory_exceptions TO posledger_readonly;

GRANT SELECT ON TABLE public.open_reservations TO posledger_readonly;

GRANT SELECT ON TABLE public.pos_order_lines TO posledger_readonly;

GRANT SELECT ON TABLE public.pos_return_lines TO posledger_readonly;

GRANT SELECT ON TABLE public.product_gtins TO posledger_readonly;

GRANT SELECT ON TABLE public.profiles TO posledger_readonly;

GRANT SELECT ON TABLE public.recall_report TO posledger_readonly;

GRANT SELECT ON TABLE public.receiving_variances TO posledger_readonly;

GRANT SELECT ON TABLE public.reservation_holds TO posledger_readonly;

GRANT SELECT ON TABLE public.sales_per_hour TO posledger_readonly;

GRANT SELECT ON TABLE public.stock_by_batch TO posledger_readonly;

GRANT SELECT ON TABLE public.terminal_sequence_gaps TO posledger_readonly;

GRANT SELECT ON TABLE public.transfers_to_watch TO posledger_readonly;

ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES  TO posledger_readonly;

ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON TYPES  FROM PUBLIC;

ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON FUNCTIONS  FROM PUBLIC;
