-- Run by `posledger migrate` after it has re-created the functions, in the same transaction. The entry
-- functions force generic plans (their SET clause): on one server that saves re-planning every
-- statement for every call (docs/benchmarks.md: a sale ran at 0.72 without). Citus plans a statement on
-- a distributed table only with its parameters' values ("could not create distributed plan" under a
-- generic plan), so where the citus extension is installed the entries leave the choice to
-- PostgreSQL's plan cache. Citus propagates each ALTER FUNCTION to the workers.
DO $$
DECLARE
    v_function regprocedure;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        FOR v_function IN
            SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace
              AND p.proconfig @> ARRAY['plan_cache_mode=force_generic_plan']
            ORDER BY 1
        LOOP
            EXECUTE format('ALTER FUNCTION %s RESET plan_cache_mode', v_function);
        END LOOP;
    END IF;
END $$;
