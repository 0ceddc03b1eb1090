-- A fresh demo store, so the demo can run again and again side by side; the ASN brings its stock.
INSERT INTO stores (name) VALUES ('posledger demo store') RETURNING id;
