-- The entry functions' private helpers get a schema of their own (DESIGN.md section 2): `\df public.*`
-- shows the public surface alone, and no role but the owner may even look up a helper. sql/functions
-- creates the helpers here; sql/retired.sql drops their old copies in public once no sale can still be
-- running an old body that calls them (pyshell/posledger/migrations.py).
CREATE SCHEMA posledger_private;
REVOKE ALL ON SCHEMA posledger_private FROM PUBLIC;
COMMENT ON SCHEMA posledger_private IS 'The entry functions'' private helpers: no role but the owner may use them.';
