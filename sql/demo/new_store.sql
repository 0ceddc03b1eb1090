-- A fresh demo store, so the demo can run again and again side by side; the ASN brings its stock. Each run's
-- store has a name of its own (demo store 1, 2, ...), so a kept database does not fill with look-alikes.
INSERT INTO stores (name)
SELECT 'posledger demo store ' || (count(*) + 1) FROM stores WHERE name LIKE 'posledger demo store %'
RETURNING id, name;
