-- Stock promised and sales that already happened (issue 17; docs/decisions.md "Promised stock",
-- "Sales that already happened" and "The exception queue"). Constraints on tables that hold data are
-- added NOT VALID and indexes built by 0021, so this migration holds its locks for moments only.

-- 1. Reservations and parked carts. A reservation is a sale recorded with status 'reserved' (or
-- 'parked', a cart the cashier put aside): its units are held by batch, lowering quantity_available
-- but not quantity_on_hand, until it is completed (sold), cancelled or expires. The held units of a
-- stock row are also kept on the row, so every function that sets available from on hand can leave
-- them out without reading the holds.
ALTER TABLE stores
    ADD COLUMN reservation_minutes integer NOT NULL DEFAULT 1440,
    ADD COLUMN parked_cart_minutes integer NOT NULL DEFAULT 30;
ALTER TABLE stores
    ADD CONSTRAINT stores_reservation_minutes_bounded CHECK (reservation_minutes BETWEEN 1 AND 43200) NOT VALID,
    ADD CONSTRAINT stores_parked_cart_minutes_bounded CHECK (parked_cart_minutes BETWEEN 1 AND 43200) NOT VALID;
COMMENT ON COLUMN stores.reservation_minutes IS 'How long a reservation (status reserved) holds its units before release_expired_reservations releases them; 1 minute to 30 days.';
COMMENT ON COLUMN stores.parked_cart_minutes IS 'How long a parked cart (status parked) holds its units before release_expired_reservations releases them; 1 minute to 30 days.';

ALTER TABLE ocs_inventory ADD COLUMN quantity_reserved integer NOT NULL DEFAULT 0;
ALTER TABLE ocs_inventory ADD CONSTRAINT ocs_inventory_reserved_within_on_hand
    CHECK (quantity_reserved >= 0 AND quantity_available + quantity_quarantined + quantity_reserved <= quantity_on_hand) NOT VALID;
COMMENT ON COLUMN ocs_inventory.quantity_reserved IS 'Units on hand held by open reservations and parked carts (the sum of this row''s open reservation_holds): on hand, not available.';

ALTER TABLE pos_orders
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN terminal_sequence bigint,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN closed_at timestamptz;
-- squawk-ignore ban-drop-constraint
ALTER TABLE pos_orders DROP CONSTRAINT pos_orders_status_known,
    ADD CONSTRAINT pos_orders_status_known
        CHECK (status IN ('completed', 'voided', 'reserved', 'parked', 'cancelled', 'expired')) NOT VALID;
-- squawk-ignore ban-drop-constraint
ALTER TABLE pos_orders DROP CONSTRAINT pos_orders_policy_check,
    ADD CONSTRAINT pos_orders_policy_check CHECK (policy IN ('strict', 'lenient', 'offline')) NOT VALID;
-- squawk-ignore ban-drop-constraint
ALTER TABLE pos_orders DROP CONSTRAINT pos_orders_check,
    ADD CONSTRAINT pos_orders_lenient_authorized CHECK (policy <> 'lenient' OR authorized_by IS NOT NULL) NOT VALID,
    ADD CONSTRAINT pos_orders_offline_from_a_till
        CHECK (policy <> 'offline' OR (occurred_at IS NOT NULL AND terminal_id IS NOT NULL AND terminal_sequence IS NOT NULL)) NOT VALID,
    ADD CONSTRAINT pos_orders_reservation_expires CHECK (status NOT IN ('reserved', 'parked') OR expires_at IS NOT NULL) NOT VALID;
COMMENT ON COLUMN pos_orders.status IS 'completed (a sale), voided by return_pos_sale; reserved or parked (a reservation holding its units), then completed, cancelled or expired.';
COMMENT ON COLUMN pos_orders.policy IS 'strict (refuse short lines), lenient (record them as inventory_exceptions; authorized_by says who allowed it), or offline (a sale a till made while the database was out of reach: never refused for stock or the law, every shortfall and breach an exception).';
COMMENT ON COLUMN pos_orders.occurred_at IS 'When the sale happened by the till''s clock, when the payload said (an offline sale always does); NULL: when it was recorded (created_at).';
COMMENT ON COLUMN pos_orders.terminal_sequence IS 'The till''s own sequence number of this sale, unique per store and terminal_id: a missing number is a sale the till sent that never arrived (terminal_sequence_gaps).';
COMMENT ON COLUMN pos_orders.expires_at IS 'A reservation''s end: after it release_expired_reservations releases its units.';
COMMENT ON COLUMN pos_orders.closed_at IS 'When a reservation was completed, cancelled or expired.';

-- What each reservation holds, by batch: the record of the promise. A hold is released once, with how
-- (completed, cancelled, expired) and when; the rows stay.
CREATE TABLE reservation_holds (
    store_id     uuid NOT NULL REFERENCES stores (id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    order_id     uuid NOT NULL,
    line_no      integer NOT NULL,
    inventory_id bigint NOT NULL,
    sku          text NOT NULL,
    batch_lot    text,
    quantity     integer NOT NULL CHECK (quantity > 0),
    held_at      timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    released_as  text CHECK (released_as IN ('completed', 'cancelled', 'expired')),
    PRIMARY KEY (store_id, id),
    FOREIGN KEY (store_id, order_id) REFERENCES pos_orders (store_id, id),
    FOREIGN KEY (store_id, inventory_id) REFERENCES ocs_inventory (store_id, id),
    CONSTRAINT reservation_holds_release_recorded CHECK ((released_at IS NULL) = (released_as IS NULL))
);
CREATE INDEX reservation_holds_by_order ON reservation_holds (store_id, order_id);
CREATE INDEX reservation_holds_open_by_stock ON reservation_holds (store_id, inventory_id) WHERE released_at IS NULL;
COMMENT ON TABLE reservation_holds IS 'The units each reservation or parked cart holds, by batch; released once (released_as: completed, cancelled, expired), never deleted.';

-- 2. Offline tills: the ledger keeps when a movement happened beside when it was recorded.
ALTER TABLE ocs_inventory_transactions ADD COLUMN occurred_at timestamptz;
COMMENT ON COLUMN ocs_inventory_transactions.occurred_at IS 'When the movement happened, when it differs from when it was recorded (an offline sale: the till''s clock); NULL: at created_at. Covered by row_hash when set.';

-- 3. The exception queue: shortfalls of lenient and offline sales, and the breaches of the law an
-- offline sale that already happened could not be refused for. A breach names no line, units or
-- authoriser, so those columns may be NULL now; a shortfall still names them all (the CHECK below), so
-- every row a reader saw before keeps its shape.
ALTER TABLE inventory_exceptions
    ADD COLUMN kind text NOT NULL DEFAULT 'shortfall',
    ADD COLUMN reason text,
    ADD COLUMN detail jsonb,
    ADD COLUMN resolution jsonb,
    -- squawk-ignore ban-drop-not-null
    ALTER COLUMN line_no DROP NOT NULL,
    -- squawk-ignore ban-drop-not-null
    ALTER COLUMN sku DROP NOT NULL,
    -- squawk-ignore ban-drop-not-null
    ALTER COLUMN quantity_short DROP NOT NULL,
    -- squawk-ignore ban-drop-not-null
    ALTER COLUMN authorized_by DROP NOT NULL;
-- squawk-ignore ban-drop-constraint
ALTER TABLE inventory_exceptions DROP CONSTRAINT inventory_exceptions_resolution_recorded,
    ADD CONSTRAINT inventory_exceptions_resolution_recorded CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)) NOT VALID,
    ADD CONSTRAINT inventory_exceptions_kind_known
        CHECK (kind IN ('shortfall', 'over_limit', 'blocked_batch', 'uncatalogued')) NOT VALID,
    ADD CONSTRAINT inventory_exceptions_shortfall_names_units
        CHECK (kind <> 'shortfall' OR (line_no IS NOT NULL AND sku IS NOT NULL AND quantity_short IS NOT NULL)) NOT VALID;
COMMENT ON TABLE inventory_exceptions IS 'The exception queue: units lenient and offline sales sold that the books did not have (shortfall), and the offline sales that broke a rule they could not be refused for (over_limit, blocked_batch, uncatalogued). Open until resolved by a count or resolve_inventory_exception; each new row is announced on the channel posledger_inventory_exceptions.';
COMMENT ON COLUMN inventory_exceptions.kind IS 'shortfall (quantity_short units no batch covered), over_limit (a purchase limit), blocked_batch (a held or expired batch), uncatalogued (a sku the catalogue cannot weigh).';
COMMENT ON COLUMN inventory_exceptions.reason IS 'Why, in words (NULL on rows before migration 0020: a lenient sale''s shortfall).';
COMMENT ON COLUMN inventory_exceptions.resolution IS 'How it was closed by resolve_inventory_exception: who, why, the payload, the adjustment or count that moved stock.';

-- Announces each new exception on the channel, after the commit (NOTIFY's own rule). Its body is in
-- sql/functions/_triggers.sql.
CREATE FUNCTION inventory_exception_announce() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN NULL;
END $$;
CREATE TRIGGER inventory_exceptions_announce
    AFTER INSERT ON inventory_exceptions
    FOR EACH ROW EXECUTE FUNCTION inventory_exception_announce();

-- 4. The views: open reservations with their age, the gaps in each till's sequence, the open exceptions.
CREATE VIEW open_reservations AS
SELECT o.store_id, o.id AS order_id, o.receipt_number, o.status, o.user_id, o.cashier_id, o.terminal_id,
       o.created_at AS reserved_at, o.expires_at, now() - o.created_at AS age, o.expires_at <= now() AS overdue,
       coalesce(sum(h.quantity), 0) AS units, count(h.id) AS batches
FROM pos_orders o
LEFT JOIN reservation_holds h ON h.store_id = o.store_id AND h.order_id = o.id AND h.released_at IS NULL
WHERE o.status IN ('reserved', 'parked')
GROUP BY o.store_id, o.id;
COMMENT ON VIEW open_reservations IS 'Reservations and parked carts still holding units, per store, with their age and whether they are past expires_at (release_expired_reservations releases those).';

-- A gap is a run of numbers between two sequence numbers a till's sales arrived with: numbers before
-- the first one seen, or after the last, cannot be told from sales not yet made.
CREATE VIEW terminal_sequence_gaps AS
SELECT store_id, terminal_id, previous_sequence + 1 AS first_missing, terminal_sequence - 1 AS last_missing,
       terminal_sequence - previous_sequence - 1 AS missing, previous_received_at, next_received_at
FROM (SELECT store_id, terminal_id, terminal_sequence, created_at AS next_received_at,
             lag(terminal_sequence) OVER w AS previous_sequence, lag(created_at) OVER w AS previous_received_at
      FROM pos_orders
      WHERE terminal_sequence IS NOT NULL
      WINDOW w AS (PARTITION BY store_id, terminal_id ORDER BY terminal_sequence)) s
WHERE terminal_sequence > previous_sequence + 1;
COMMENT ON VIEW terminal_sequence_gaps IS 'Per store and till, each run of sequence numbers missing between two that arrived: sales the till sent that never reached the database.';

CREATE VIEW open_inventory_exceptions AS
SELECT e.id, e.store_id, e.kind, e.sku, e.batch_lot, e.quantity_short,
       o.terminal_id, o.receipt_number, e.order_id,
       coalesce(e.authorized_by, o.cashier_id) AS who,
       coalesce(e.reason, 'lenient sale: units no batch covered') AS why, e.detail,
       coalesce(o.occurred_at, o.created_at) AS sold_at, e.created_at, now() - e.created_at AS age, e.status
FROM inventory_exceptions e
JOIN pos_orders o ON o.store_id = e.store_id AND o.id = e.order_id
WHERE e.status = 'open'
ORDER BY e.created_at, e.id;
COMMENT ON VIEW open_inventory_exceptions IS 'The exception queue''s open items, oldest first: what (kind, sku, batch, units), where (store, till, receipt), who (authorised by, else the cashier), why, when.';

-- Reservations are orders but not sales: the hourly sales count completed (and later voided) ones.
CREATE OR REPLACE VIEW sales_per_hour AS
SELECT o.store_id, date_trunc('hour', o.created_at) AS hour, count(*) AS orders,
       count(*) FILTER (WHERE o.status = 'voided') AS voided, sum(l.units) AS units, sum(o.total) AS total
FROM pos_orders o
LEFT JOIN LATERAL (SELECT sum(ol.quantity) AS units FROM pos_order_lines ol
                   WHERE ol.store_id = o.store_id AND ol.order_id = o.id) l ON true
WHERE o.status IN ('completed', 'voided')
GROUP BY o.store_id, date_trunc('hour', o.created_at);

-- Held units are on hand and not available: the checks' sum counts them (columns added at the end).
CREATE OR REPLACE VIEW negative_inventory AS
SELECT store_id, id AS inventory_id, sku, batch_lot, quantity_on_hand, quantity_available, quantity_quarantined,
       quantity_reserved
FROM ocs_inventory
WHERE quantity_on_hand < 0 OR quantity_available < 0 OR quantity_quarantined < 0 OR quantity_reserved < 0
   OR quantity_available + quantity_quarantined + quantity_reserved > quantity_on_hand;

-- The monthly movements as in 0015, each in the month it happened in its store's calendar (as expiry is
-- judged): an offline sale recorded after midnight on the first belongs to the month before, and a sale at
-- 22:00 in Toronto on the 31st to that month, whatever the session's TimeZone, as the regulator counts it.
CREATE OR REPLACE VIEW inventory_movements_monthly AS
WITH by_reason AS (
    SELECT t.store_id, t.sku,
           date_trunc('month', coalesce(t.occurred_at, t.created_at) AT TIME ZONE s.time_zone)::date AS month,
           t.transaction_type, t.reason_code, sum(t.quantity) AS quantity
    FROM ocs_inventory_transactions t
    JOIN stores s ON s.id = t.store_id
    GROUP BY t.store_id, t.sku, 3, t.transaction_type, t.reason_code
), monthly AS (
    SELECT store_id, sku, month,
           coalesce(sum(quantity) FILTER (WHERE transaction_type = 'receipt'), 0) AS received,
           coalesce(sum(quantity) FILTER (WHERE transaction_type = 'sale'), 0) AS sold,
           coalesce(sum(quantity) FILTER (WHERE transaction_type IN ('return', 'void')), 0) AS returned,
           coalesce(sum(quantity) FILTER (WHERE transaction_type = 'adjustment'
                                          AND reason_code NOT IN ('destruction', 'loss_theft')), 0) AS adjusted,
           coalesce(sum(quantity) FILTER (WHERE reason_code = 'destruction'), 0) AS destroyed,
           coalesce(sum(quantity) FILTER (WHERE reason_code = 'loss_theft'), 0) AS lost,
           coalesce(sum(quantity) FILTER (WHERE transaction_type IN ('opening', 'manual_adjustment')), 0) AS manual,
           coalesce(jsonb_object_agg(reason_code, quantity) FILTER (WHERE reason_code IS NOT NULL), '{}')
               AS adjusted_by_reason,
           sum(quantity) AS net
    FROM by_reason
    GROUP BY store_id, sku, month
)
SELECT m.store_id, m.sku, m.month,
       sum(m.net) OVER w - m.net AS opening, m.received, m.sold, m.returned, m.adjusted, m.destroyed, m.lost,
       m.manual, sum(m.net) OVER w AS closing, m.adjusted_by_reason,
       CASE WHEN m.month = max(m.month) OVER (PARTITION BY m.store_id, m.sku)
            THEN (SELECT sum(i.quantity_on_hand) FROM ocs_inventory i WHERE i.store_id = m.store_id AND i.sku = m.sku)
       END AS on_hand_now
FROM monthly m
WINDOW w AS (PARTITION BY m.store_id, m.sku ORDER BY m.month);
COMMENT ON VIEW inventory_movements_monthly IS 'Per store, sku and month (the month a movement happened, occurred_at else when recorded, in the store''s calendar): opening, every kind of movement signed, and closing; on the latest month, on_hand_now beside the closing shows stock changed behind the ledger''s back.';
