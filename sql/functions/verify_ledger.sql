-- verify_ledger() and ledger_digest(): the evidence that the stock ledger's history was not rewritten
-- (migration 0011 seals each row into its stock row's hash chain). For DBAs, auditors and `posledger
-- verify` / `posledger digest`; both only read. SECURITY INVOKER: whoever may read the ledger may check it.

-- What is wrong with the ledger, empty when nothing is: per chain (one per stock row) its first broken
-- link, kind 'broken' (a row whose content no longer matches its hash, a row removed, added or moved
-- inside the chain, a running balance that does not follow). Not the order of times: created_at is
-- its transaction's start, and a transaction that began earlier may write after one that held the lock; every row written
-- into the ledger directly rather than by the stock trigger, kind 'review' (the runbook's correction is
-- one; so is a forgery); and any protective trigger missing or disabled, kind 'broken'. PL/pgSQL, as
-- ledger_digest: Citus cannot plan a LANGUAGE sql function's parameterised query on its tables; and each
-- row is hashed as ROW(t.*) of the table's type, which a Citus shard's own row type is not.
CREATE OR REPLACE FUNCTION verify_ledger(p_store_id uuid DEFAULT NULL)
RETURNS TABLE (kind text, store_id uuid, inventory_id bigint, transaction_id bigint, problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    WITH link AS (
        SELECT t.store_id, t.inventory_id, t.id, t.origin,
               CASE WHEN t.row_hash IS DISTINCT FROM public.ocs_ledger_hash(ROW(t.*)::public.ocs_inventory_transactions)
                        THEN 'altered: the row no longer matches its hash'
                    WHEN t.prev_hash IS DISTINCT FROM lag(t.row_hash) OVER w
                        THEN 'unlinked: the row before it in the chain was removed, added or changed'
                    WHEN t.quantity_after <> coalesce(lag(t.quantity_after) OVER w, 0) + t.quantity
                        THEN 'unbalanced: quantity_after does not follow from the row before it'
               END AS broken
        FROM public.ocs_inventory_transactions t
        WHERE p_store_id IS NULL OR t.store_id = p_store_id
        WINDOW w AS (PARTITION BY t.store_id, t.inventory_id ORDER BY t.id)
    ), guard(table_name, trigger_name) AS (
        VALUES ('ocs_inventory', 'ocs_inventory_ledger_opening'), ('ocs_inventory', 'ocs_inventory_ledger_change'),
               ('ocs_inventory', 'ocs_inventory_identity_fixed'),
               ('ocs_inventory_transactions', 'ocs_inventory_transactions_seal'),
               ('ocs_inventory_transactions', 'ocs_inventory_transactions_append_only')
    )
    SELECT * FROM (SELECT DISTINCT ON (l.store_id, l.inventory_id) 'broken'::text, l.store_id, l.inventory_id, l.id, l.broken
                   FROM link l WHERE l.broken IS NOT NULL
                   ORDER BY l.store_id, l.inventory_id, l.id) first_break
    UNION ALL
    SELECT 'review', l.store_id, l.inventory_id, l.id, 'written into the ledger directly, not by a change of stock'
    FROM link l WHERE l.origin = 'direct'
    UNION ALL
    SELECT 'broken', NULL, NULL, NULL, format('trigger %s on %s is %s', g.trigger_name, g.table_name,
                                             CASE WHEN tg.oid IS NULL THEN 'missing' ELSE 'disabled' END)
    FROM guard g
    LEFT JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = ('public.' || g.table_name)::regclass
                                      AND tg.tgname = g.trigger_name
    WHERE tg.oid IS NULL OR tg.tgenabled NOT IN ('O', 'A');
END $$;

-- Per store, a digest of its ledger as of a moment: sha256 over the head of every chain (the hash of each
-- stock row's newest ledger row written before p_as_of), in stock row order. Printed in the daily report
-- and kept outside the database, it makes a later rewrite of anything before that moment evident, even
-- one that recomputed every hash: recompute it for the same moment and compare. Rows are dated by the
-- start of their transaction, so a digest is final once every transaction begun before p_as_of has
-- ended: take the day's digest a few minutes after midnight, not at it.
CREATE OR REPLACE FUNCTION ledger_digest(p_as_of timestamptz DEFAULT now(), p_store_id uuid DEFAULT NULL)
RETURNS TABLE (store_id uuid, as_of timestamptz, chains bigint, ledger_rows bigint, digest text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT h.store_id, p_as_of, count(*), sum(h.rows_before)::bigint,
           encode(sha256(convert_to(string_agg(h.inventory_id || ':' || encode(h.row_hash, 'hex'), ','
                                               ORDER BY h.inventory_id), 'UTF8')), 'hex')
    FROM (SELECT DISTINCT ON (t.store_id, t.inventory_id) t.store_id, t.inventory_id, t.row_hash,
                 count(*) OVER (PARTITION BY t.store_id, t.inventory_id) AS rows_before
          FROM public.ocs_inventory_transactions t
          WHERE t.created_at < p_as_of AND (p_store_id IS NULL OR t.store_id = p_store_id)
          ORDER BY t.store_id, t.inventory_id, t.id DESC) h
    GROUP BY h.store_id
    ORDER BY h.store_id;
END $$;

REVOKE ALL ON FUNCTION verify_ledger(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_digest(timestamptz, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION verify_ledger(uuid), ledger_digest(timestamptz, uuid) TO posledger_readonly;
COMMENT ON FUNCTION ledger_digest(timestamptz, uuid) IS 'Per store, sha256 over its ledger chains'' heads as of a moment: keep it outside the database to make a later rewrite evident.';
COMMENT ON FUNCTION verify_ledger(uuid) IS 'What is wrong with the stock ledger (empty when nothing): each chain''s first broken link and any guard missing or disabled (broken), rows written directly (review).';
GRANT EXECUTE ON FUNCTION ocs_ledger_hash(ocs_inventory_transactions) TO posledger_readonly;
