-- Helpers the reservation entries share (complete_reservation, cancel_reservation,
-- release_expired_reservations); a reservation is made by record_pos_sale with status reserved or parked.

-- Every problem of a completion's or cancellation's payload, as [{field, problem}]: the store and the
-- reservation's receipt number; a cancellation also says who cancels it, and may say why.
CREATE OR REPLACE FUNCTION posledger_private.reservation_problems(p_payload jsonb, p_cancel boolean) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
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
END $$;

-- The order a completion or cancellation names, locked: completions, cancellations, expiries and
-- returns of one order take turns on it, before any stock row is locked (the order every path takes).
-- FOR NO KEY UPDATE: the holds and exceptions that point at the order take key-share locks on it.
CREATE OR REPLACE FUNCTION posledger_private.reservation_locked(p_payload jsonb) RETURNS pos_orders
LANGUAGE plpgsql AS $$
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

-- IV408: the order is not an open reservation (a sale, or a reservation completed, cancelled or past
-- its end), so it cannot be completed or cancelled.
CREATE OR REPLACE FUNCTION posledger_private.refuse_closed(p_order pos_orders) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'IV408', MESSAGE = 'reservation closed: it holds no stock any more',
        DETAIL = jsonb_build_object('store_id', p_order.store_id, 'receipt_number', p_order.receipt_number,
                                    'order_id', p_order.id, 'status', p_order.status,
                                    'reserved', p_order.payload->>'status' IN ('reserved', 'parked'),
                                    'expires_at', p_order.expires_at, 'closed_at', p_order.closed_at,
                                    'now', now())::text,
        HINT = 'A reservation past its end is released by release_expired_reservations; reserve again under a new receipt number, or sell it as a sale.';
END $$;

-- Releases the holds of the orders p_orders (open reservations this transaction has locked) as
-- cancelled or expired: each hold is marked with how and when, its units go back to available (to
-- nothing, on a batch that was held meanwhile), and each order records the release in its status and
-- result. The stock rows are locked first, in id order, as a sale locks them. Set-based: one pass for
-- one order or ten thousand. Returns the units released.
CREATE OR REPLACE FUNCTION posledger_private.reservation_release(p_store_id uuid, p_orders uuid[], p_as text,
                                                                 p_note jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
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
