-- A transfer's receipt marks the sender's transfer received (issue 18). The cancel and the receipt of one
-- transfer then decide on that one row, on the sender's node: the receipt locks it and refuses a cancelled
-- transfer, the cancel locks it and refuses a received one. On Citus a receipt commits on two workers by
-- two-phase commit, not at one instant, so a cancel reading the receiver's receipt could miss it.
ALTER TABLE transfers ADD COLUMN received_at timestamptz;
COMMENT ON COLUMN transfers.received_at IS 'When the receiving store recorded this transfer (transfer_in); a received transfer cannot be cancelled.';

-- Transfers received before this migration: each marked by its receipt, one routed statement each (on
-- Citus the two tables are distributed by different stores).
DO $$
DECLARE
    v_receipt record;
BEGIN
    FOR v_receipt IN SELECT store_id, from_store_id, reference, created_at FROM transfer_receipts LOOP
        UPDATE transfers SET received_at = v_receipt.created_at
        WHERE store_id = v_receipt.from_store_id AND reference = v_receipt.reference
          AND to_store_id = v_receipt.store_id AND received_at IS NULL;
    END LOOP;
END $$;
