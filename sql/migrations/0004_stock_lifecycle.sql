-- Stock in, stock back, stock corrected: batch statuses and quarantined units, the ledger's new movement
-- types and adjustment reasons, and one document table per movement (shipments, returns, adjustments,
-- status changes), each with the caller's idempotency key, the payload and the result a replay returns.
-- Constraints on existing tables are added NOT VALID here, holding their lock only briefly; 0005
-- validates them and builds the indexes of existing tables outside a transaction.

-- A batch is sellable only while active. quantity_available is what a sale may take, so a held batch has
-- none; its units stay on hand. Defective returns are quantity_quarantined: on hand, never sellable,
-- whatever the batch's status, until they are destroyed or sent back.
ALTER TABLE ocs_inventory
    ADD COLUMN status text NOT NULL DEFAULT 'active',
    ADD COLUMN quantity_quarantined integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT ocs_inventory_status_known
        CHECK (status IN ('active', 'quarantined', 'recalled', 'awaiting_destruction')) NOT VALID,
    ADD CONSTRAINT ocs_inventory_quarantine_within_on_hand
        CHECK (quantity_quarantined >= 0 AND quantity_available + quantity_quarantined <= quantity_on_hand) NOT VALID,
    ADD CONSTRAINT ocs_inventory_held_batch_not_available
        CHECK (status = 'active' OR quantity_available = 0) NOT VALID;

-- The reasons Ontario retailers report adjustments under; a reference table, so the functions' validation
-- and the ledger's foreign key read the one list.
CREATE TABLE adjustment_reasons (
    code        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO adjustment_reasons (code, description) VALUES
    ('physical_count', 'Full physical count of the store'),
    ('cycle_count', 'Partial (cycle) count'),
    ('internal_audit', 'Internal audit finding'),
    ('data_entry_error', 'Correction of a data entry error'),
    ('sold_product_handling_error', 'Sold product handled wrongly (e.g. wrong batch scanned)'),
    ('receiving_error', 'Error found after receiving a shipment'),
    ('destruction', 'Product destroyed'),
    ('loss_theft', 'Product lost or stolen'),
    ('return_to_supplier', 'Product returned to the supplier (OCS)');

ALTER TABLE ocs_inventory_transactions
    ADD COLUMN reason_code text,
    ADD CONSTRAINT ocs_inventory_transactions_reason_fk
        FOREIGN KEY (reason_code) REFERENCES adjustment_reasons (code) NOT VALID,
    -- squawk-ignore ban-drop-constraint
    DROP CONSTRAINT ocs_inventory_transactions_transaction_type_check,  -- replaced by the wider list below
    ADD CONSTRAINT ocs_inventory_transactions_type_known CHECK (transaction_type IN
        ('opening', 'manual_adjustment', 'sale', 'receipt', 'return', 'void', 'adjustment')) NOT VALID,
    ADD CONSTRAINT ocs_inventory_transactions_adjustment_has_reason
        CHECK ((transaction_type = 'adjustment') = (reason_code IS NOT NULL)) NOT VALID;

-- The ledger trigger learns the movement's reason code; everything else is as in 0002.
CREATE OR REPLACE FUNCTION ocs_inventory_write_ledger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_movement jsonb := nullif(current_setting('posledger.movement', true), '')::jsonb;
BEGIN
    INSERT INTO public.ocs_inventory_transactions
        (store_id, inventory_id, sku, batch_lot, transaction_type, reason_code, quantity, quantity_after,
         reference_type, reference_id, notes, actor)
    VALUES (NEW.store_id, NEW.id, NEW.sku, NEW.batch_lot,
            coalesce(v_movement->>'type', CASE TG_OP WHEN 'INSERT' THEN 'opening' ELSE 'manual_adjustment' END),
            v_movement->>'reason_code',
            NEW.quantity_on_hand - coalesce(OLD.quantity_on_hand, 0), NEW.quantity_on_hand,
            v_movement->>'reference_type', (v_movement->>'reference_id')::uuid, v_movement->>'notes',
            coalesce(v_movement->>'actor', session_user));
    RETURN NULL;
END $$;

-- Receiving: one row per OCS shipment and store, one per shipment line as shipped and as received.
CREATE TABLE ocs_shipments (
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    store_id        uuid NOT NULL REFERENCES stores (id),
    ocs_shipment_id text NOT NULL CHECK (ocs_shipment_id <> ''),
    received_by     text,
    payload         jsonb NOT NULL,
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT ocs_shipments_received_once UNIQUE (store_id, ocs_shipment_id)
);

CREATE TABLE ocs_shipment_lines (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    store_id          uuid NOT NULL,
    shipment_id       uuid NOT NULL,
    line_no           integer NOT NULL CHECK (line_no > 0),
    inventory_id      bigint NOT NULL,
    sku               text NOT NULL,
    batch_lot         text,
    quantity_shipped  integer NOT NULL CHECK (quantity_shipped >= 0),
    quantity_received integer NOT NULL CHECK (quantity_received >= 0),
    PRIMARY KEY (store_id, id),
    FOREIGN KEY (store_id, shipment_id) REFERENCES ocs_shipments (store_id, id),
    FOREIGN KEY (store_id, inventory_id) REFERENCES ocs_inventory (store_id, id)
);
CREATE INDEX ocs_shipment_lines_by_shipment ON ocs_shipment_lines (store_id, shipment_id);

-- Returns and voids. A void returns everything not yet returned and marks the order voided.
ALTER TABLE pos_orders
    -- squawk-ignore ban-drop-constraint
    DROP CONSTRAINT pos_orders_status_check,  -- replaced by the wider list below
    ADD CONSTRAINT pos_orders_status_known CHECK (status IN ('completed', 'voided')) NOT VALID;

CREATE TABLE pos_returns (
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    store_id   uuid NOT NULL,
    order_id   uuid NOT NULL,
    reference  text NOT NULL CHECK (reference <> ''),
    kind       text NOT NULL CHECK (kind IN ('return', 'void')),
    reason     text,
    actor      text,
    -- Points this return took back or owed: later returns of the order reverse the rest, never twice.
    points_due bigint NOT NULL DEFAULT 0 CHECK (points_due >= 0),
    payload    jsonb NOT NULL,
    result     jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT pos_returns_reference_once UNIQUE (store_id, reference),
    FOREIGN KEY (store_id, order_id) REFERENCES pos_orders (store_id, id)
);
CREATE INDEX pos_returns_by_order ON pos_returns (store_id, order_id);

-- One row per order line row (line and batch) a return gives units back to.
CREATE TABLE pos_return_lines (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    store_id      uuid NOT NULL,
    return_id     uuid NOT NULL,
    order_line_id bigint NOT NULL,
    inventory_id  bigint NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    defective     boolean NOT NULL,
    PRIMARY KEY (store_id, id),
    FOREIGN KEY (store_id, return_id) REFERENCES pos_returns (store_id, id),
    FOREIGN KEY (store_id, order_line_id) REFERENCES pos_order_lines (store_id, id),
    FOREIGN KEY (store_id, inventory_id) REFERENCES ocs_inventory (store_id, id)
);
CREATE INDEX pos_return_lines_by_order_line ON pos_return_lines (store_id, order_line_id);
CREATE INDEX pos_return_lines_by_return ON pos_return_lines (store_id, return_id);

-- 'reversal': points a return took back. 'redemption': points the customer spent, written (with the
-- profile's update, in one transaction) by whatever redeems them; no posledger function does yet.
ALTER TABLE loyalty_transactions
    ADD COLUMN return_id uuid,
    -- squawk-ignore ban-drop-constraint
    DROP CONSTRAINT loyalty_transactions_transaction_type_check,  -- replaced by the stricter rule below
    ADD CONSTRAINT loyalty_transactions_type_known CHECK (
        (transaction_type = 'earn' AND return_id IS NULL AND points > 0)
        OR (transaction_type = 'reversal' AND return_id IS NOT NULL AND points < 0)
        OR (transaction_type = 'redemption' AND return_id IS NULL AND points < 0)) NOT VALID,
    ADD CONSTRAINT loyalty_transactions_return_fk
        FOREIGN KEY (store_id, return_id) REFERENCES pos_returns (store_id, id) NOT VALID;

-- Adjustments and counts: the header; the lines are the ledger rows that reference it.
CREATE TABLE inventory_adjustments (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    store_id    uuid NOT NULL REFERENCES stores (id),
    reference   text NOT NULL CHECK (reference <> ''),
    kind        text NOT NULL CHECK (kind IN ('adjustment', 'count')),
    reason_code text NOT NULL REFERENCES adjustment_reasons (code),
    note        text NOT NULL,
    actor       text NOT NULL,
    payload     jsonb NOT NULL,
    result      jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT inventory_adjustments_reference_once UNIQUE (store_id, reference)
);

-- A count settles the lenient sales' shortfalls of what it counted.
ALTER TABLE inventory_exceptions
    ADD COLUMN resolved_by uuid,
    ADD COLUMN resolved_at timestamptz,
    ADD CONSTRAINT inventory_exceptions_resolved_by_fk
        FOREIGN KEY (store_id, resolved_by) REFERENCES inventory_adjustments (store_id, id) NOT VALID,
    ADD CONSTRAINT inventory_exceptions_resolution_recorded
        CHECK ((status = 'resolved') = (resolved_by IS NOT NULL)) NOT VALID;

-- Holds and recalls. A recall spans stores, so its request is not store-scoped; each batch it changed
-- is a store-scoped history row, append-only like the ledgers.
CREATE TABLE batch_status_requests (
    reference  text PRIMARY KEY CHECK (reference <> ''),
    payload    jsonb NOT NULL,
    result     jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batch_status_changes (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    store_id         uuid NOT NULL,
    inventory_id     bigint NOT NULL,
    sku              text NOT NULL,
    batch_lot        text,
    from_status      text NOT NULL,
    to_status        text NOT NULL,
    quantity_on_hand integer NOT NULL,
    reference        text NOT NULL REFERENCES batch_status_requests (reference),
    reason           text NOT NULL,
    actor            text NOT NULL,
    db_user          text NOT NULL DEFAULT session_user,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    FOREIGN KEY (store_id, inventory_id) REFERENCES ocs_inventory (store_id, id)
);
CREATE INDEX batch_status_changes_by_row ON batch_status_changes (store_id, inventory_id, id);

CREATE TRIGGER batch_status_changes_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON batch_status_changes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_rewrite();

-- What an adjustment or count changes per inventory row: sellable units (or, for a held batch, its held
-- units) and quarantined units.
CREATE TYPE inventory_delta AS (inventory_id bigint, sellable integer, quarantined integer);
REVOKE USAGE ON TYPE inventory_delta FROM PUBLIC;
