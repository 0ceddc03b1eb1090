-- What the regulator asks for (issue 18; docs/decisions.md "The OCS feed"): stores carry their licences,
-- the ledger's movement types map to the platform's event types in a table (data, not code), and every
-- committed movement the platform must hear about leaves its event in an outbox, in the same transaction.

-- 1. Licences: a store is its CRSA (Cannabis Retail Store Authorization); its retailer is a CROL (Cannabis
-- Retail Operator Licence), shared by that retailer's stores. Their exact format is not checked (not known
-- to posledger: docs/decisions.md); a CRSA is unique.
ALTER TABLE stores ADD COLUMN crsa text, ADD COLUMN crol text;
ALTER TABLE stores ADD CONSTRAINT stores_crsa_not_empty CHECK (crsa <> '') NOT VALID,
    ADD CONSTRAINT stores_crol_not_empty CHECK (crol <> '') NOT VALID;
COMMENT ON COLUMN stores.crsa IS 'The store''s Cannabis Retail Store Authorization (CRSA): how the OCS data platform names the store; unique.';
COMMENT ON COLUMN stores.crol IS 'The retailer''s Cannabis Retail Operator Licence (CROL), shared by its stores: transfers stay within one.';

-- 2. The mapping: a ledger movement (its transaction_type, and for an adjustment its reason_code; NULL: any
-- other reason) is reported as an inventoryEventType with a reasonCategory. A wrong guess is corrected here,
-- by an UPDATE, and the events not yet sent follow it.
CREATE TABLE ocs_event_types (
    transaction_type text NOT NULL,
    reason_code      text,
    event_type       text NOT NULL CHECK (event_type <> ''),
    reason_category  text,
    confirmed        boolean NOT NULL DEFAULT false,
    UNIQUE NULLS NOT DISTINCT (transaction_type, reason_code)
);
-- Its key has a nullable column, so the whole row is its replica identity (Citus copies reference tables
-- to a joining node by logical replication; migration 0019).
ALTER TABLE ocs_event_types REPLICA IDENTITY FULL;
COMMENT ON TABLE ocs_event_types IS 'How each ledger movement is reported to the OCS data platform: its inventoryEventType and reasonCategory, by transaction_type and (for adjustments) reason_code. confirmed: checked against the platform''s published enumeration; false: posledger''s reading of it (docs/decisions.md).';
INSERT INTO ocs_event_types (transaction_type, reason_code, event_type, reason_category, confirmed) VALUES
    ('sale', NULL, 'PURCHASE', NULL, true),
    ('return', NULL, 'RETURN', 'CUSTOMER_RETURN', false),
    ('void', NULL, 'RETURN', 'VOID', false),
    ('receipt', NULL, 'RECEIVING', NULL, false),
    ('transfer_out', NULL, 'TRANSFER_OUT', NULL, false),
    ('transfer_in', NULL, 'TRANSFER_IN', NULL, false),
    ('adjustment', 'destruction', 'DESTRUCTION', 'DESTRUCTION', false),
    ('adjustment', 'loss_theft', 'ADJUSTMENT', 'LOSS_THEFT', false),
    ('adjustment', NULL, 'ADJUSTMENT', 'OTHER', false),
    ('opening', NULL, 'ADJUSTMENT', 'OPENING_BALANCE', false),
    ('manual_adjustment', NULL, 'ADJUSTMENT', 'OTHER', false);

-- 3. The outbox: one row per ledger row, written by a trigger on the ledger in the transaction that moved
-- the stock, so an event exists exactly when its movement committed. The event itself is rendered from the
-- ledger row (append-only) when it is read (ocs_event), so a corrected mapping reaches every event not yet
-- sent. A sender claims rows with FOR UPDATE SKIP LOCKED inside its transaction, POSTs them, and records
-- the response and sent_at before it commits: two senders never hold one row, and a sender that dies
-- mid-batch releases its rows unsent.
CREATE TABLE ocs_outbox (
    store_id     uuid NOT NULL REFERENCES stores (id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    ledger_id    bigint NOT NULL,
    day          date NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, id),
    UNIQUE (store_id, ledger_id)
);
CREATE INDEX ocs_outbox_unsent ON ocs_outbox (store_id, id) WHERE sent_at IS NULL;
CREATE INDEX ocs_outbox_by_day ON ocs_outbox (store_id, day);
COMMENT ON TABLE ocs_outbox IS 'The OCS feed''s transactional outbox: one row per ledger row, written in the same transaction; day is the store''s calendar day it happened (occurred_at, else created_at); sent_at once the platform accepted it.';

-- Writes a ledger row's outbox row, in the ledger row's own transaction. Its body is in
-- sql/functions/_triggers.sql.
CREATE FUNCTION ocs_outbox_write() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN NULL;
END $$;
CREATE TRIGGER ocs_inventory_transactions_outbox
    AFTER INSERT ON ocs_inventory_transactions
    FOR EACH ROW EXECUTE FUNCTION ocs_outbox_write();
