-- Transfers between the stores of one retailer (issue 18; docs/transfers.md). Each side is its own store's
-- record, so each call writes one store's rows and distributes on Citus like a sale: transfers is the
-- sender's (units leave by batch and are in transit), transfer_receipts the receiver's (what arrived, per
-- line, with its variance). transfers_to_watch joins the two for the DBAs.

-- 1. The ledger learns the movements: out at the sender, in at the receiver, and a cancelled transfer's
-- units back at the sender. NOT VALID: the ledger is large and every row it holds has a type of the old
-- list, a subset of this one; 0024_transfers_validate.sql validates it outside a transaction.
ALTER TABLE ocs_inventory_transactions
    -- squawk-ignore ban-drop-constraint
    DROP CONSTRAINT ocs_inventory_transactions_type_known,  -- replaced by the wider list below
    ADD CONSTRAINT ocs_inventory_transactions_type_known CHECK (transaction_type IN
        ('opening', 'manual_adjustment', 'sale', 'receipt', 'return', 'void', 'adjustment',
         'transfer_out', 'transfer_in', 'transfer_cancel')) NOT VALID;

-- A cancelled transfer's units come back to the sender: reported as the reversal of its TRANSFER_OUT (a
-- positive change), a reading of the platform's enumeration not yet confirmed.
INSERT INTO ocs_event_types (transaction_type, reason_code, event_type, reason_category, confirmed)
VALUES ('transfer_cancel', NULL, 'TRANSFER_OUT', 'CANCELLED', false);

-- 2. The sender's record: one row per transfer, keyed by the sender's store; its reference is the
-- idempotency key, and names the transfer at the receiver too.
CREATE TABLE transfers (
    store_id       uuid NOT NULL REFERENCES stores (id),
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    reference      text NOT NULL CHECK (reference <> ''),
    to_store_id    uuid NOT NULL REFERENCES stores (id),
    to_crsa        text NOT NULL,
    status         text NOT NULL DEFAULT 'in_transit' CHECK (status IN ('in_transit', 'cancelled')),
    actor          text NOT NULL,
    payload        jsonb NOT NULL,
    result         jsonb,
    cancel_payload jsonb,
    cancel_result  jsonb,
    cancelled_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT transfers_reference_once UNIQUE (store_id, reference),
    CONSTRAINT transfers_not_to_itself CHECK (to_store_id <> store_id),
    CONSTRAINT transfers_cancel_recorded CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
COMMENT ON TABLE transfers IS 'Transfers out of a store (the sender''s record, by its store_id): the lines sent by batch (payload), in transit until received at to_store_id or cancelled (docs/transfers.md).';

-- 3. The receiver's record: what arrived of a transfer, per line (sent and received), by the receiver's
-- store; the sender's store and the transfer's reference are its key there.
CREATE TABLE transfer_receipts (
    store_id      uuid NOT NULL REFERENCES stores (id),
    id            uuid NOT NULL DEFAULT gen_random_uuid(),
    reference     text NOT NULL CHECK (reference <> ''),
    from_store_id uuid NOT NULL REFERENCES stores (id),
    from_crsa     text NOT NULL,
    actor         text NOT NULL,
    payload       jsonb NOT NULL,
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT transfer_receipts_once UNIQUE (store_id, from_store_id, reference),
    CONSTRAINT transfer_receipts_not_from_itself CHECK (from_store_id <> store_id)
);
COMMENT ON TABLE transfer_receipts IS 'Transfers received by a store (the receiver''s record, by its store_id): per line the units sent and received, the variance between them (docs/transfers.md).';

-- 4. For the DBAs (multi-store): every transfer that needs a look - in transit, received with other
-- quantities than were sent, received after the sender cancelled it, or received with no transfer sent.
-- The two sides are read apart (MATERIALIZED) and joined after: on Citus their tables are distributed by
-- different stores (sender, receiver), a join Citus makes only of the results of each.
CREATE VIEW transfers_to_watch AS
WITH t AS MATERIALIZED (SELECT store_id, id, reference, to_store_id, to_crsa, status, payload, created_at FROM transfers),
     r AS MATERIALIZED (SELECT store_id, id, reference, from_store_id, from_crsa, payload, created_at FROM transfer_receipts)
SELECT coalesce(t.store_id, r.from_store_id) AS from_store_id, coalesce(r.from_crsa, fs.crsa) AS from_crsa,
       coalesce(t.to_store_id, r.store_id) AS to_store_id, coalesce(t.to_crsa, ts.crsa) AS to_crsa,
       coalesce(t.reference, r.reference) AS reference, t.id AS transfer_id, r.id AS receipt_id,
       CASE WHEN t.id IS NULL THEN 'received_unknown'
            WHEN t.status = 'cancelled' AND r.id IS NOT NULL THEN 'received_after_cancel'
            WHEN r.id IS NULL THEN 'in_transit'
            ELSE 'unbalanced' END AS state,
       t.created_at AS sent_at, r.created_at AS received_at, d.units_sent, d.units_received, d.differences
FROM t
FULL JOIN r ON r.store_id = t.to_store_id AND r.from_store_id = t.store_id AND r.reference = t.reference
LEFT JOIN stores fs ON fs.id = r.from_store_id
LEFT JOIN stores ts ON ts.id = r.store_id
LEFT JOIN LATERAL (
    SELECT sum(coalesce(s.sent, 0)) AS units_sent, sum(coalesce(g.received, 0)) AS units_received,
           coalesce(jsonb_agg(jsonb_build_object('sku', coalesce(s.sku, g.sku), 'batch', coalesce(s.batch_lot, g.batch_lot),
                                                 'sent', coalesce(s.sent, 0), 'received', coalesce(g.received, 0))
                              ORDER BY coalesce(s.sku, g.sku), coalesce(s.batch_lot, g.batch_lot))
                    FILTER (WHERE r.id IS NOT NULL AND coalesce(s.sent, 0) <> coalesce(g.received, 0)), '[]') AS differences
    FROM (SELECT l->>'sku' AS sku, l->>'batch_lot' AS batch_lot, sum((l->>'quantity')::integer) AS sent
          FROM jsonb_array_elements(t.payload->'lines') l GROUP BY 1, 2) s
    FULL JOIN (SELECT l->>'sku' AS sku, l->>'batch_lot' AS batch_lot, sum((l->>'received')::integer) AS received
               FROM jsonb_array_elements(r.payload->'lines') l GROUP BY 1, 2) g USING (sku, batch_lot)
) d ON true
WHERE t.id IS NULL
   OR (t.status = 'in_transit' AND r.id IS NULL)
   OR (t.status = 'cancelled' AND r.id IS NOT NULL)
   OR (r.id IS NOT NULL AND d.differences <> '[]');
COMMENT ON VIEW transfers_to_watch IS 'Transfers that need a look (docs/transfers.md): state in_transit (sent, neither received nor cancelled), unbalanced (received quantities differ from sent: differences), received_after_cancel, received_unknown (no transfer sent by that reference).';
