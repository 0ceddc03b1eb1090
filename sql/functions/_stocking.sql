-- Units arriving at a store by batch: an OCS shipment (receive_inventory.sql) or a transfer from another
-- store of the retailer (transfer_in.sql). One home for what arrival means, so the two cannot drift.

-- Each batch's row is created or topped up. A new row of a lot held here (batch_lot_holds, the strictest
-- hold when several scopes cover it) is created held - on hand, not available - with a history row that
-- says why it was never sellable; an existing row keeps its status (a release narrower than the hold left
-- it active on purpose), and adds to available only if active. The caller has taken the lots (lock_lots,
-- shared); the existing rows are locked here in id order, as a sale locks them, and new rows go in
-- sku+batch order, so two arrivals of the same new batches wait for each other instead of deadlocking.
-- p_batches: [{sku, batch_lot, units, case_gtin, each_gtin, packaged_on_date, expiry_date, unit_cost}];
-- p_movement labels the ledger rows (_triggers.sql) and names the actor; p_why ends the history's reason.
-- Returns the rows as they now stand: [{id, sku, batch_lot, quantity_on_hand, quantity_available, status,
-- held_by}], in sku+batch order.
CREATE OR REPLACE FUNCTION posledger_private.stock_batches(p_store_id uuid, p_batches jsonb, p_movement jsonb,
                                                          p_why text) RETURNS jsonb
LANGUAGE plpgsql AS $$
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
