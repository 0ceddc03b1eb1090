-- A return's plan as typed rows, not JSON built and unpacked again in the same call (issue 14): what
-- goes back where, one row per order line row (line and batch), and the plan's refusals.
CREATE TYPE posledger_private.pos_return_line AS (
    order_line_id bigint, inventory_id bigint, line_no integer, sku text, batch_lot text, quantity integer,
    defective boolean
);
CREATE TYPE posledger_private.pos_return_plan AS (
    lines   posledger_private.pos_return_line[],
    excess  jsonb,   -- [{line_no, batch, requested, returnable}]: IV410's detail
    unknown jsonb    -- [{order_id, line_no, batch}]: IV404's detail
);
