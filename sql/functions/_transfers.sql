-- The helpers of transfers between the stores of one retailer (transfer_out.sql, transfer_in.sql,
-- cancel_transfer.sql; docs/transfers.md). Each call writes its own store's rows only: the sender's
-- transfers row and stock, or the receiver's transfer_receipts row and stock - but for one column: a receipt
-- marks the sender's transfer received (received_at), under the lock a cancel takes too, so the two decide
-- on that one row. On Citus a receipt therefore runs on the coordinator, which reaches both stores.

-- Every problem of a transfer's payload at once, as [{field, problem}]. p_kind: 'out' (lines of
-- quantity), 'in' (lines of sent and received), 'cancel' (no lines). Lines name their batch: a transfer
-- moves named batches, as the shipment that brought them did.
CREATE OR REPLACE FUNCTION posledger_private.transfer_problems(p_payload jsonb, p_kind text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
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
$$;

-- The two stores of a transfer: IV404 for a store that does not exist; IV400 for a transfer to itself,
-- to a store of another retailer (their CROLs differ, or either has none) or between stores without a
-- CRSA (the platform names a transfer's counterpart by it). p_field names the counterpart's field.
-- Returns the counterpart's CRSA and its own.
CREATE OR REPLACE FUNCTION posledger_private.transfer_parties(p_store_id uuid, p_other_id uuid, p_field text,
                                                             OUT own_crsa text, OUT other_crsa text)
LANGUAGE plpgsql STABLE AS $$
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

-- A transfer's lines as the ledger's movement at each side needs them: sku, batch_lot and units. For the
-- sender's payload the units are quantity; for the receiver's, received (and sent).
CREATE OR REPLACE FUNCTION posledger_private.transfer_lines(p_payload jsonb)
RETURNS TABLE (sku text, batch_lot text, quantity integer, sent integer, expiry_date date)
LANGUAGE sql IMMUTABLE AS $$
    SELECT l->>'sku', l->>'batch_lot', coalesce(l->>'quantity', l->>'received')::numeric::integer,
           coalesce(l->>'quantity', l->>'sent')::numeric::integer,
           CASE WHEN posledger_private.json_is_given(l->'expiry_date') THEN (l->>'expiry_date')::date END
    FROM jsonb_array_elements(p_payload->'lines') l
$$;
