-- The core schema: stores, stock per batch, the append-only stock ledger, orders and loyalty.
-- Tables are the functions' private state: writers go through record_pos_sale() and friends,
-- DBAs may read everything. Every store-scoped key leads with store_id (DESIGN.md section 9).

CREATE TABLE stores (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    text NOT NULL DEFAULT '',
    -- Points per whole currency unit of a sale's total; a store may run a promotion rate.
    loyalty_points_per_unit numeric(10, 4) NOT NULL DEFAULT 1 CHECK (loyalty_points_per_unit >= 0),
    created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ocs_inventory (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    store_id           uuid NOT NULL REFERENCES stores (id),
    sku                text NOT NULL CHECK (sku <> ''),
    batch_lot          text CHECK (batch_lot <> ''),   -- NULL = legacy unbatched stock
    quantity_on_hand   integer NOT NULL DEFAULT 0 CHECK (quantity_on_hand >= 0),
    quantity_available integer NOT NULL DEFAULT 0
        CHECK (quantity_available >= 0 AND quantity_available <= quantity_on_hand),
    case_gtin          text,
    each_gtin          text,
    packaged_on_date   date,
    location_code      text,
    last_sold          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    -- NULLS NOT DISTINCT: at most one unbatched row per store+sku, and the index the sale's lookups use.
    CONSTRAINT ocs_inventory_one_row_per_batch UNIQUE NULLS NOT DISTINCT (store_id, sku, batch_lot)
);

CREATE TABLE ocs_inventory_transactions (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    store_id         uuid NOT NULL,
    inventory_id     bigint NOT NULL,
    sku              text NOT NULL,
    batch_lot        text,
    transaction_type text NOT NULL CHECK (transaction_type IN ('opening', 'manual_adjustment', 'sale')),
    quantity         integer NOT NULL CHECK (quantity <> 0),          -- signed: negative = out of stock
    quantity_after   integer NOT NULL CHECK (quantity_after >= 0),    -- running balance of the batch row
    reference_type   text,
    reference_id     uuid,
    notes            text,
    actor            text,                                            -- the person, as the caller names them
    db_user          text NOT NULL DEFAULT session_user,              -- the database role that did it
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    -- Joined by id, not by (sku, batch_lot): NULL-safe and without fan-out.
    FOREIGN KEY (store_id, inventory_id) REFERENCES ocs_inventory (store_id, id)
);
CREATE INDEX ocs_inventory_transactions_by_row ON ocs_inventory_transactions (store_id, inventory_id, id);
CREATE INDEX ocs_inventory_transactions_by_reference ON ocs_inventory_transactions (store_id, reference_id);

CREATE TABLE pos_orders (
    id             uuid NOT NULL DEFAULT gen_random_uuid(),
    store_id       uuid NOT NULL REFERENCES stores (id),
    receipt_number text NOT NULL CHECK (receipt_number <> ''),
    status         text NOT NULL CHECK (status IN ('completed')),
    policy         text NOT NULL CHECK (policy IN ('strict', 'lenient')),
    authorized_by  text CHECK (policy = 'strict' OR authorized_by IS NOT NULL),
    user_id        uuid,
    cashier_id     text,
    terminal_id    text,
    payment_method text,
    subtotal       numeric,
    tax            numeric,
    total          numeric NOT NULL CHECK (total >= 0),
    payload        jsonb NOT NULL,   -- the sale exactly as sent: the idempotency comparison uses it
    result         jsonb,            -- what the first call returned: a replay returns it again
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT pos_orders_receipt_once UNIQUE (store_id, receipt_number)
);

-- One row per sale line and batch the units came from. inventory_id is NULL only for units sold
-- under a lenient override that no batch could cover; each such part has an inventory_exceptions row.
CREATE TABLE pos_order_lines (
    id           bigint GENERATED ALWAYS AS IDENTITY,
    store_id     uuid NOT NULL,
    order_id     uuid NOT NULL,
    line_no      integer NOT NULL CHECK (line_no > 0),
    sku          text NOT NULL,
    product_name text,
    batch_lot    text,
    inventory_id bigint,
    quantity     integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (store_id, id),
    FOREIGN KEY (store_id, order_id) REFERENCES pos_orders (store_id, id),
    FOREIGN KEY (store_id, inventory_id) REFERENCES ocs_inventory (store_id, id)
);
CREATE INDEX pos_order_lines_by_order ON pos_order_lines (store_id, order_id);

-- Shortfalls of lenient sales: stock sold that the books did not have, to be resolved by a count.
CREATE TABLE inventory_exceptions (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    store_id       uuid NOT NULL,
    order_id       uuid NOT NULL,
    line_no        integer NOT NULL,
    sku            text NOT NULL,
    batch_lot      text,
    quantity_short integer NOT NULL CHECK (quantity_short > 0),
    authorized_by  text NOT NULL,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    FOREIGN KEY (store_id, order_id) REFERENCES pos_orders (store_id, id)
);

-- Customers shop in many stores, so profiles are not store-scoped.
CREATE TABLE profiles (
    user_id        uuid PRIMARY KEY,
    loyalty_points bigint NOT NULL DEFAULT 0 CHECK (loyalty_points >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE loyalty_transactions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES profiles (user_id),
    store_id         uuid NOT NULL,
    order_id         uuid NOT NULL,
    transaction_type text NOT NULL CHECK (transaction_type IN ('earn')),
    points           bigint NOT NULL CHECK (points <> 0),
    balance_after    bigint NOT NULL CHECK (balance_after >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (store_id, order_id) REFERENCES pos_orders (store_id, id)
);
CREATE INDEX loyalty_transactions_by_user ON loyalty_transactions (user_id, id);

-- What a sale allocates: one row per sale line and batch; inventory_id NULL marks a shortfall.
CREATE TYPE pos_sale_line AS (line_no integer, sku text, product_name text, batch_lot text, quantity integer);
CREATE TYPE pos_sale_allocation AS (
    line_no integer, sku text, batch_lot text, inventory_id bigint, quantity integer, available integer
);
