-- Two changes that let a sale run on one Citus worker and still be recorded right (issue 16,
-- docs/scaling.md, docs/decisions.md "Labels on the row" and "Loyalty by store").
--
-- 1. The ledger's label travels with the stock row it describes. Our functions wrote it into a
-- transaction-local setting that the ledger trigger read; a setting never reaches the worker where a
-- routed statement's trigger fires, and the ledger then said 'manual_adjustment' for a sale. Now the
-- statement that moves the units also writes their label into the row, wherever the row lives.
ALTER TABLE ocs_inventory ADD COLUMN movement jsonb;
COMMENT ON COLUMN ocs_inventory.movement IS 'The label (type, reason_code, reference, notes, actor) of the posledger movement that last changed this row, written by that movement''s own statement; the ledger trigger labels a change with it only when the changing statement wrote it anew (else opening or manual_adjustment).';

-- 2. A customer's points are kept per store: the store's account row is written in the sale's own
-- shard, so a sale with a customer stays a single-store transaction. The customer's balance is the sum of
-- their stores' accounts: `profiles` becomes that sum, a view.
CREATE TABLE loyalty_accounts (
    store_id   uuid NOT NULL REFERENCES stores (id),
    user_id    uuid NOT NULL,
    points     bigint NOT NULL DEFAULT 0 CHECK (points >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, user_id)
);
CREATE INDEX loyalty_accounts_by_user ON loyalty_accounts (user_id);
COMMENT ON TABLE loyalty_accounts IS 'A customer''s loyalty points at one store; equals the sum of that store''s loyalty_transactions for the customer. The customer''s balance is the sum over stores (the view profiles).';

-- Sales that wrote a profile before this migration took its lock have committed their ledger rows too:
-- the accounts are built from the whole loyalty ledger, and must add up to the balances they replace.
LOCK TABLE profiles IN ACCESS EXCLUSIVE MODE;
INSERT INTO loyalty_accounts (store_id, user_id, points, created_at, updated_at)
SELECT store_id, user_id, sum(points), min(created_at), max(created_at)
FROM loyalty_transactions GROUP BY store_id, user_id;

DO $$
DECLARE
    v_differ jsonb;
BEGIN
    SELECT jsonb_agg(jsonb_build_object('user_id', p.user_id, 'profile', p.loyalty_points,
                                        'ledger', coalesce(a.points, 0)) ORDER BY p.user_id)
    INTO v_differ
    FROM profiles p
    LEFT JOIN (SELECT user_id, sum(points) AS points FROM loyalty_accounts GROUP BY user_id) a USING (user_id)
    WHERE p.loyalty_points <> coalesce(a.points, 0);
    IF v_differ IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'IV500',
            MESSAGE = 'loyalty balances differ from the loyalty ledger: reconcile them before this migration',
            DETAIL = jsonb_build_object('customers', v_differ)::text,
            HINT = 'Write the missing loyalty_transactions rows (e.g. a redemption), then migrate again.';
    END IF;
END $$;

-- squawk-ignore ban-drop-constraint
ALTER TABLE loyalty_transactions DROP CONSTRAINT loyalty_transactions_user_id_fkey;  -- profiles is no table now
-- squawk-ignore ban-drop-table
DROP TABLE profiles;
CREATE VIEW profiles AS
SELECT user_id, sum(points)::bigint AS loyalty_points, min(created_at) AS created_at, max(updated_at) AS updated_at
FROM loyalty_accounts GROUP BY user_id;
COMMENT ON VIEW profiles IS 'Loyalty customers and their balance: the sum of their accounts at every store (loyalty_accounts), which equals the sum of their loyalty_transactions.';
COMMENT ON COLUMN loyalty_transactions.balance_after IS 'The customer''s points at this store after this row (before migration 0018: their balance over all stores).';
