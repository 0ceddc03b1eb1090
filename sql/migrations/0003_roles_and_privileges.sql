-- Least privilege. Two NOLOGIN group roles; grant them to real login roles, e.g.
--     CREATE ROLE till_service LOGIN PASSWORD '...' IN ROLE posledger_app;
--     CREATE ROLE dba_alice LOGIN PASSWORD '...' IN ROLE posledger_readonly;
-- posledger_app may only EXECUTE the entry functions (each function file grants its own) and read the
-- public views; posledger_readonly may read every table and view. Only the owner (the role that runs
-- migrate) writes tables, and it does so through the SECURITY DEFINER entry functions.
-- Roles belong to the whole cluster: created only when missing, so every database of it can migrate.
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['posledger_app', 'posledger_readonly'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- a migrate of another database of this cluster created it at the same moment
            END;
        END IF;
    END LOOP;
END $$;

-- PUBLIC gets nothing of ours: functions are executable by PUBLIC unless revoked, now and by default.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
REVOKE USAGE ON TYPE pos_sale_line, pos_sale_allocation FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE USAGE ON TYPES FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO posledger_app, posledger_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO posledger_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO posledger_readonly;

-- Trigger functions run with the search_path of whoever fired them: pin it, as for the entry functions.
ALTER FUNCTION ocs_inventory_write_ledger() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION refuse_ledger_rewrite() SET search_path = pg_catalog, public, pg_temp;
