-- Every function signature posledger has retired, dropped IF EXISTS, in one place. `posledger migrate`
-- runs this file only after the functions that replace them have committed and every transaction that
-- began before that has ended (migrations.py: retire()): a sale already running an old body may still
-- call an old helper, and must not find it gone.

-- Private helpers moved out of public into posledger_private (issue 14): \df public.* shows the entry
-- functions alone, and the application role cannot even see the helpers' schema.
DROP FUNCTION IF EXISTS public.adjustment_apply(inventory_adjustments,inventory_delta[]);
DROP FUNCTION IF EXISTS public.adjustment_claim(jsonb,text);
DROP FUNCTION IF EXISTS public.adjustment_lines(inventory_adjustments);
DROP FUNCTION IF EXISTS public.adjustment_problems(jsonb,text);
DROP FUNCTION IF EXISTS public.adjustment_record(jsonb);
DROP FUNCTION IF EXISTS public.batch_status_complete(batch_status_requests);
DROP FUNCTION IF EXISTS public.batch_status_problems(jsonb);
DROP FUNCTION IF EXISTS public.batch_status_record(jsonb);
DROP FUNCTION IF EXISTS public.batch_status_targets(jsonb);
DROP FUNCTION IF EXISTS public.count_record(jsonb);
DROP FUNCTION IF EXISTS public.gtin14(text);
DROP FUNCTION IF EXISTS public.json_is_boolean(jsonb);
DROP FUNCTION IF EXISTS public.json_is_date(jsonb);
DROP FUNCTION IF EXISTS public.json_is_given(jsonb);
DROP FUNCTION IF EXISTS public.json_is_lines(jsonb);
DROP FUNCTION IF EXISTS public.json_is_number(jsonb,numeric,numeric,boolean);
DROP FUNCTION IF EXISTS public.json_is_text(jsonb);
DROP FUNCTION IF EXISTS public.json_is_uuid(jsonb);
DROP FUNCTION IF EXISTS public.json_lines(jsonb);
DROP FUNCTION IF EXISTS public.pos_return_complete(pos_orders,pos_returns,jsonb);
DROP FUNCTION IF EXISTS public.pos_return_plan(pos_orders,jsonb);
DROP FUNCTION IF EXISTS public.pos_return_problems(jsonb);
DROP FUNCTION IF EXISTS public.pos_return_record(jsonb);
DROP FUNCTION IF EXISTS public.pos_return_reverse_points(pos_orders,pos_returns);
DROP FUNCTION IF EXISTS public.pos_sale_allocate(ocs_inventory[],pos_sale_line[]);
DROP FUNCTION IF EXISTS public.pos_sale_award_points(pos_orders);
DROP FUNCTION IF EXISTS public.pos_sale_blocked(ocs_inventory[],pos_sale_line[]);
DROP FUNCTION IF EXISTS public.pos_sale_claim_receipt(uuid,jsonb);
DROP FUNCTION IF EXISTS public.pos_sale_complete(pos_orders,pos_sale_line[],pos_sale_allocation[],jsonb);
DROP FUNCTION IF EXISTS public.pos_sale_lines(jsonb);
DROP FUNCTION IF EXISTS public.pos_sale_missing(uuid,pos_sale_line[]);
DROP FUNCTION IF EXISTS public.pos_sale_problems(jsonb);
DROP FUNCTION IF EXISTS public.pos_sale_record(jsonb);
DROP FUNCTION IF EXISTS public.pos_sale_shortfalls(pos_sale_line[],pos_sale_allocation[]);
DROP FUNCTION IF EXISTS public.posledger_apply_lock_timeout();
DROP FUNCTION IF EXISTS public.posledger_lock_lots(text[],boolean);
DROP FUNCTION IF EXISTS public.posledger_lock_timeout();
DROP FUNCTION IF EXISTS public.posledger_max_lines();
DROP FUNCTION IF EXISTS public.posledger_refuse_busy(text);
DROP FUNCTION IF EXISTS public.posledger_refuse_misrouted(jsonb,text);
DROP FUNCTION IF EXISTS public.posledger_refuse_missing(jsonb,text);
DROP FUNCTION IF EXISTS public.posledger_refuse_other_payload(jsonb,jsonb,jsonb);
DROP FUNCTION IF EXISTS public.posledger_refuse_overflow(text,text);
DROP FUNCTION IF EXISTS public.posledger_refuse_problems(jsonb,text);
DROP FUNCTION IF EXISTS public.posledger_routed(uuid,jsonb);
DROP FUNCTION IF EXISTS public.receiving_complete(ocs_shipments);
DROP FUNCTION IF EXISTS public.receiving_problems(jsonb);
DROP FUNCTION IF EXISTS public.receiving_record(jsonb);

-- Before the sale's helpers took the rows the sale locked (issue 5).
DROP FUNCTION IF EXISTS public.pos_sale_blocked(uuid, pos_sale_line[]);
DROP FUNCTION IF EXISTS public.pos_sale_allocate(uuid, pos_sale_line[]);

-- Before the sale read its lines with their values, scans and grams (issue 15): the lines' type moved
-- into posledger_private, and the type goes once nothing uses it.
DROP FUNCTION IF EXISTS posledger_private.pos_sale_lines(jsonb);
DROP FUNCTION IF EXISTS posledger_private.pos_sale_missing(uuid, pos_sale_line[]);
DROP FUNCTION IF EXISTS posledger_private.pos_sale_blocked(ocs_inventory[], pos_sale_line[]);
DROP FUNCTION IF EXISTS posledger_private.pos_sale_allocate(ocs_inventory[], pos_sale_line[]);
DROP FUNCTION IF EXISTS posledger_private.pos_sale_shortfalls(pos_sale_line[], pos_sale_allocation[]);
DROP FUNCTION IF EXISTS posledger_private.pos_sale_complete(pos_orders, pos_sale_line[], pos_sale_allocation[], jsonb);
DROP TYPE IF EXISTS public.pos_sale_line;

-- Issue 16: the catalogue's grams for the skus asked only, in PL/pgSQL (Citus could not plan the inlined set).
DROP FUNCTION IF EXISTS posledger_private.catalogue_grams(date);

-- Issue 17: the claim reads the store's reservation times, and the writes of a sale learn to complete a
-- reservation (its units were held, not available).
DROP FUNCTION IF EXISTS posledger_private.pos_sale_claim(uuid, jsonb);
DROP FUNCTION IF EXISTS posledger_private.pos_sale_complete(pos_orders, posledger_private.pos_sale_line[], pos_sale_allocation[], jsonb, jsonb);

-- Issue 18: the day's position learned its book value (a new column: renamed, as CREATE OR REPLACE cannot
-- change what a function returns).
DROP FUNCTION IF EXISTS posledger_private.ocs_position(stores, date);

-- Issue 18: a receipt of a transfer reads and marks the sender's transfer everywhere (on Citus it runs on
-- the coordinator), so a cancel decides on its own row; a transfer arrives through stock_batches as a
-- receipt does (standing holds apply).
DROP FUNCTION IF EXISTS posledger_private.transfer_other_side_visible();
DROP FUNCTION IF EXISTS posledger_private.transfer_in_check_sender(transfer_receipts);
DROP FUNCTION IF EXISTS posledger_private.transfer_cancel_check_receiver(transfers);
DROP FUNCTION IF EXISTS posledger_private.transfer_in_complete(transfer_receipts, text);
