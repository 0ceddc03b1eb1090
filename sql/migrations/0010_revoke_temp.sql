-- PUBLIC keeps TEMPORARY on every database it is not revoked on, so any role that can connect, the till's
-- included, could create temporary tables, functions and types. No function of ours creates a temporary
-- object, so no role of ours needs TEMP; a role that does is granted it by name (README, roles).
-- Only the database's owner (or a superuser) can revoke it; a REVOKE by anyone else is a warning that
-- changes nothing, so any other migrating role is told the statement to have the owner run instead.
-- A database's privileges do not travel with a copy of it (CREATE DATABASE ... TEMPLATE, pg_restore
-- without --create): the copy has the default back and nothing pending, so it needs the REVOKE run by hand.
DO $$
DECLARE
    v_revoke text := format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    v_owner oid := (SELECT datdba FROM pg_catalog.pg_database WHERE datname = current_database());
BEGIN
    IF pg_catalog.pg_has_role(current_user, v_owner, 'USAGE') THEN  -- true for a superuser too
        EXECUTE v_revoke;
    ELSIF EXISTS (
        SELECT FROM pg_catalog.pg_database d,
            pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a
        WHERE d.datname = current_database() AND a.grantee = 0 AND a.privilege_type = 'TEMPORARY'
    ) THEN
        RAISE NOTICE USING
            MESSAGE = format('PUBLIC can still create temporary objects in database %I: only its owner (%s) or a '
                             'superuser can revoke that; as one of them, run: %s;',
                             current_database(), v_owner::regrole, v_revoke);
    END IF;
END $$;
