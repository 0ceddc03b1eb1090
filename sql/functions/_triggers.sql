-- The triggers' functions, their current bodies: re-applied on every migrate like every other function,
-- so a change to one is made here alone. A migration that creates a trigger creates its function with the
-- body that trigger needs at that moment (0002, 0004, 0009, 0011: their history); CREATE OR REPLACE here
-- keeps each function's oid, so the triggers keep calling it. They live in public, not posledger_private:
-- moving one means re-creating its trigger, a lock every sale would wait behind (docs/decisions.md).
-- Each pins its search_path: a trigger runs with the search_path of whoever fired it.

-- The ledger invariant, whatever path stock takes: every change of a stock row's quantity_on_hand is
-- ledgered here, once per changed row. Our functions describe their movement (type, reason, reference,
-- notes, actor) in the row's column movement, written by the same statement that moves the units: the
-- label reaches whichever node holds the row, as a transaction-local setting would not on Citus (issue
-- 16). A statement that leaves the column as it was is not ours: an 'opening' balance (INSERT) or a
-- 'manual_adjustment' (UPDATE) by the role that made it, never a stale label of the movement before.
CREATE OR REPLACE FUNCTION ocs_inventory_write_ledger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_movement jsonb := CASE WHEN TG_OP = 'INSERT' OR NEW.movement IS DISTINCT FROM OLD.movement
                             THEN NEW.movement END;
BEGIN
    INSERT INTO public.ocs_inventory_transactions
        (store_id, inventory_id, sku, batch_lot, transaction_type, reason_code, quantity, quantity_after,
         reference_type, reference_id, notes, actor, occurred_at)
    VALUES (NEW.store_id, NEW.id, NEW.sku, NEW.batch_lot,
            coalesce(v_movement->>'type', CASE WHEN TG_OP = 'INSERT' THEN 'opening' ELSE 'manual_adjustment' END),
            v_movement->>'reason_code',
            NEW.quantity_on_hand - coalesce(OLD.quantity_on_hand, 0), NEW.quantity_on_hand,
            v_movement->>'reference_type', (v_movement->>'reference_id')::uuid, v_movement->>'notes',
            coalesce(v_movement->>'actor', session_user), (v_movement->>'occurred_at')::timestamptz);
    RETURN NULL;
END $$;

-- A regulator accepts a ledger only if its past cannot be rewritten: corrections are new rows.
CREATE OR REPLACE FUNCTION refuse_ledger_rewrite() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'IV403',
        MESSAGE = format('%s is append-only: %s is refused', TG_TABLE_NAME, TG_OP),
        DETAIL = jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP)::text,
        HINT = 'Record a correcting movement instead of editing the ledger.';
END $$;

-- A stock row's store, sku and lot never change: the ledger, the order lines and a recall name the row
-- by them (migration 0009).
CREATE OR REPLACE FUNCTION refuse_identity_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'IV403',
        MESSAGE = format('%s: a stock row''s id, store, sku and batch_lot never change', TG_TABLE_NAME),
        DETAIL = jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP, 'id', OLD.id,
                                    'store_id', OLD.store_id, 'sku', OLD.sku, 'batch_lot', OLD.batch_lot)::text,
        HINT = 'Move the units with adjustments (out of this row, into the right one) instead.';
END $$;

-- The hash of a ledger row: every column but id (the chain orders the rows) and row_hash, with the hash
-- of the row before it, as the text of one row value (unambiguous: NULL and '' differ, separators in a
-- value are quoted). prev_hash is hex and the time epoch microseconds, so the text depends on no
-- session setting (bytea_output, TimeZone). LANGUAGE sql, STABLE and without a SET clause, so PostgreSQL
-- inlines it into the expression that calls it (docs/benchmarks.md, "The ledger's hash chain"). A column
-- added to the ledger later is not covered until a new version of this function says how old rows hash:
-- occurred_at (migration 0020) is appended when set, so every row written before it hashes as it did.
CREATE OR REPLACE FUNCTION ocs_ledger_hash(p_row ocs_inventory_transactions) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(rtrim(ROW(
        encode(p_row.prev_hash, 'hex'), p_row.store_id, p_row.inventory_id, p_row.sku, p_row.batch_lot,
        p_row.transaction_type, p_row.reason_code, p_row.quantity, p_row.quantity_after, p_row.reference_type,
        p_row.reference_id, p_row.notes, p_row.actor, p_row.db_user,
        (EXTRACT(epoch FROM p_row.created_at) * 1000000)::bigint, p_row.origin)::text, ')')
        || coalesce(',' || (EXTRACT(epoch FROM p_row.occurred_at) * 1000000)::bigint, '') || ')', 'UTF8'))
$$;

-- Seals a ledger row as it is written. The stock trigger writes it at trigger depth 2, holding the stock
-- row's lock through the UPDATE or INSERT that fired it, so the row before it in the chain is committed
-- (or its own) and visible. A direct INSERT takes that lock first, as every writer of the chain does.
CREATE OR REPLACE FUNCTION ocs_ledger_seal() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    NEW.origin := CASE WHEN pg_trigger_depth() > 1 THEN 'posledger' ELSE 'direct' END;
    IF NEW.origin = 'direct' THEN
        PERFORM FROM public.ocs_inventory i WHERE i.store_id = NEW.store_id AND i.id = NEW.inventory_id
        FOR NO KEY UPDATE;
        -- The chain orders a stock row's movements by id. A direct row with an id below its chain's last
        -- (on Citus, drawn by the coordinator, whose range lies below the workers': docs/scaling.md) would
        -- be chained last yet sorted first: the chain would read as broken. Refused instead.
        IF EXISTS (SELECT FROM public.ocs_inventory_transactions t
                   WHERE t.store_id = NEW.store_id AND t.inventory_id = NEW.inventory_id AND t.id > NEW.id) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'IV403',
                MESSAGE = 'ocs_inventory_transactions: a ledger row must come after its chain''s last row',
                DETAIL = jsonb_build_object('table', 'ocs_inventory_transactions', 'operation', TG_OP, 'id', NEW.id,
                                            'store_id', NEW.store_id, 'inventory_id', NEW.inventory_id)::text,
                HINT = 'Record the correction with adjust_inventory; on Citus, a direct ledger row draws its id on the coordinator.';
        END IF;
    END IF;
    NEW.prev_hash := (SELECT t.row_hash FROM public.ocs_inventory_transactions t
                      WHERE t.store_id = NEW.store_id AND t.inventory_id = NEW.inventory_id
                      ORDER BY t.id DESC LIMIT 1);
    -- On a Citus shard NEW is the shard's row type (ocs_inventory_transactions_102008), which
    -- ocs_ledger_hash does not take: the same row, as the table's type.
    NEW.row_hash := public.ocs_ledger_hash(ROW(NEW.*)::public.ocs_inventory_transactions);
    RETURN NEW;
END $$;

-- The exception queue calls for help: each new exception is announced on the channel
-- posledger_inventory_exceptions (docs/runbook.md), delivered by PostgreSQL only when the transaction
-- that raised it commits. The payload is small (PostgreSQL's limit is 8000 bytes): the listener reads
-- the rest from open_inventory_exceptions by id. On Citus the row is written on the worker holding its
-- store's shard, and announced there when that worker's transaction is its own (a call delegated to it).
-- A worker's part of a transaction another node began is prepared (two-phase commit), and PostgreSQL
-- cannot prepare a transaction that has executed NOTIFY: that node announces the row instead, at its own
-- commit (posledger_private.exceptions_announce_here).
CREATE OR REPLACE FUNCTION inventory_exception_announce() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NOT posledger_private.begun_elsewhere() THEN
        -- On a Citus shard NEW is the shard's row type: the same row, as the table's type.
        PERFORM pg_notify('posledger_inventory_exceptions',
                          posledger_private.exception_announcement(ROW(NEW.*)::public.inventory_exceptions));
    END IF;
    RETURN NULL;
END $$;

-- What the channel says of a new exception (README, "The exception queue").
CREATE OR REPLACE FUNCTION posledger_private.exception_announcement(p_row public.inventory_exceptions) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'id', p_row.id, 'store_id', p_row.store_id, 'kind', p_row.kind, 'order_id', p_row.order_id, 'sku', p_row.sku,
        'batch', p_row.batch_lot, 'quantity_short', p_row.quantity_short, 'created_at', p_row.created_at)::text
$$;

-- Whether this transaction is a worker's part of a Citus transaction that another node began (a call
-- the coordinator ran without delegating it): Citus assigns it that node's id. Never on one server.
-- The query is text, run by EXECUTE: what it reads exists only where the citus extension is installed,
-- so plpgsql_check, which plans every static statement, would report it missing on one server.
CREATE OR REPLACE FUNCTION posledger_private.begun_elsewhere() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_query text := 'SELECT t.transaction_number <> 0
                            AND t.initiator_node_identifier <> (SELECT groupid FROM pg_catalog.pg_dist_local_group)
                     FROM pg_catalog.get_current_transaction_id() t';
    v_elsewhere boolean := false;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        EXECUTE v_query INTO v_elsewhere;
    END IF;
    RETURN v_elsewhere;
END $$;

-- Whether a store's rows of a table live on another node: on Citus, when the table is distributed and
-- the store's shard is not placed on this one (the coordinator holds none). Never on one server. A
-- text run by EXECUTE, as in begun_elsewhere.
CREATE OR REPLACE FUNCTION posledger_private.placed_elsewhere(p_table regclass, p_store_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_query text := 'SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)
                     THEN NOT EXISTS (SELECT FROM pg_catalog.pg_dist_placement p
                                      WHERE p.shardid = pg_catalog.get_shard_id_for_distribution_column($1, $2)
                                        AND p.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group))
                     ELSE false END';
    v_elsewhere boolean := false;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        EXECUTE v_query INTO v_elsewhere USING p_table, p_store_id;
    END IF;
    RETURN v_elsewhere;
END $$;

-- Announces an order's exceptions from the node that ran its sale, when their rows were written on
-- another: on Citus, a sale the coordinator ran itself (the one-argument form, or a call inside the
-- caller's transaction) writes them on the store's worker, in a transaction the coordinator began, where
-- the trigger does not announce them (inventory_exception_announce). On one server, and in a call
-- delegated to the store's worker, the rows were written here and the trigger announced them.
CREATE OR REPLACE FUNCTION posledger_private.exceptions_announce_here(p_store_id uuid, p_order_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_store_id uuid := p_store_id;   -- a plain variable: Citus prunes shards by a scalar only
    v_rows     public.inventory_exceptions[];
BEGIN
    IF NOT posledger_private.placed_elsewhere('public.inventory_exceptions', v_store_id) THEN
        RETURN;
    END IF;
    -- Read, then announce: pg_notify inside a statement on the table would run on the worker too.
    SELECT ARRAY(SELECT e FROM public.inventory_exceptions e
                 WHERE e.store_id = v_store_id AND e.order_id = p_order_id ORDER BY e.id) INTO v_rows;
    PERFORM pg_notify('posledger_inventory_exceptions', posledger_private.exception_announcement(e))
    FROM unnest(v_rows) e;
END $$;

-- The OCS feed's outbox (README, "The OCS feed"): each ledger row leaves its outbox row in the same
-- transaction, so the platform hears of a movement exactly when it committed. The day is the store's
-- calendar day it happened (an offline sale's, when the till made it): the day whose events it belongs to.
CREATE OR REPLACE FUNCTION ocs_outbox_write() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_zone text := (SELECT s.time_zone FROM public.stores s WHERE s.id = NEW.store_id);
BEGIN
    -- VALUES, not a SELECT: Citus routes an INSERT ... SELECT through the coordinator.
    INSERT INTO public.ocs_outbox (store_id, ledger_id, day)
    VALUES (NEW.store_id, NEW.id, (coalesce(NEW.occurred_at, NEW.created_at) AT TIME ZONE v_zone)::date);
    RETURN NULL;
END $$;
