-- ocs_report(jsonb) returns jsonb: a store's day as the OCS data platform reads it (issue 18; README,
-- "The OCS feed"): the day's inventory events, rendered from the ledger through the outbox, its inventory
-- position at the day's end, and the check the platform makes - the previous day's position plus the day's
-- events equals the day's position, per SKU - which must pass before anything is sent.

CREATE OR REPLACE FUNCTION ocs_report(p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
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

REVOKE ALL ON FUNCTION ocs_report(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ocs_report(jsonb) TO posledger_app;
COMMENT ON FUNCTION ocs_report(jsonb) IS 'A store''s day for the OCS data platform: {store_id, crsa, crol, day, events: {inventoryEventList}, position: {inventoryPositionList}, check: {balanced, differences}}.';

-- The day's report of a store: its events (outbox rows of that day), its position, and the check.
CREATE OR REPLACE FUNCTION posledger_private.ocs_day(p_store stores, p_day date) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
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

-- On hand per SKU at the end of a store's day, from the ledger (not the outbox, so the check compares two
-- records): every movement that happened that day or before, by the store's calendar; its book value at
-- each batch's unit cost (0 where no receipt gave one: docs/ocs-feed.md). moved: the SKU
-- moved that day (so a SKU sold out that day is still reported, at 0).
CREATE OR REPLACE FUNCTION posledger_private.ocs_day_position(p_store stores, p_day date)
RETURNS TABLE (sku text, barcode text, on_hand bigint, book_value numeric, moved boolean)
LANGUAGE plpgsql STABLE AS $$
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

-- A moment as ISO 8601 in a store's zone, with its offset (2026-11-30T14:05:00.123-05:00): the platform
-- reads posTransactionTimeStamp as local time with the offset it had then.
CREATE OR REPLACE FUNCTION posledger_private.iso_in_zone(p_at timestamptz, p_zone text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p_at AT TIME ZONE p_zone, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
           || CASE WHEN o < interval '0' THEN '-' ELSE '+' END || to_char(abs(extract(epoch FROM o))::integer / 3600, 'FM00')
           || ':' || to_char(abs(extract(epoch FROM o))::integer % 3600 / 60, 'FM00')
    FROM (SELECT (p_at AT TIME ZONE p_zone) - (p_at AT TIME ZONE 'UTC') AS o) z
$$;

-- The events of the outbox rows p_ids of a store, as the platform's inventoryEventList entries. Rendered
-- from the ledger when read: the mapping in ocs_event_types is data, so a corrected event type reaches
-- every event sent after the correction, under the same posTransactionLineId. A transfer's event names the
-- other store by its CRSA (counterPartyCRSA).
CREATE OR REPLACE FUNCTION posledger_private.ocs_events(p_store_id uuid, p_ids bigint[])
RETURNS TABLE (outbox_id bigint, event jsonb)
LANGUAGE plpgsql STABLE AS $$
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
