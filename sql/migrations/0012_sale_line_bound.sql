-- The most lines one sale may have, per store (issue 14: carts of any size, but not unbounded). A cart
-- at a till rarely has a hundred lines; 500 leaves room for a bulk order and still bounds one call and
-- the time its row locks are held. A store raises it up to 10,000 (posledger_max_lines(), every
-- payload's bound): UPDATE stores SET max_sale_lines = 2000 WHERE id = ...
ALTER TABLE stores
    ADD COLUMN max_sale_lines integer NOT NULL DEFAULT 500
        CONSTRAINT stores_max_sale_lines_bounded CHECK (max_sale_lines BETWEEN 1 AND 10000);
