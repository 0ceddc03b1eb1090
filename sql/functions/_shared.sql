-- Helpers every entry function shares. This file sorts first, so the functions after it may use them.

-- The lock wait an entry function accepts before it gives up with IV503 (busy, retry): the setting
-- posledger.lock_timeout (e.g. ALTER DATABASE ... SET posledger.lock_timeout = '5s'), else 3 seconds.
CREATE OR REPLACE FUNCTION posledger_lock_timeout() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('posledger.lock_timeout', true), ''), '3s')
$$;

-- Predicates over one JSON value, for the entry functions' validation. They never raise: a payload is
-- checked whole and every problem is reported at once, so a bad value must answer false, not abort the
-- check with a cast error (22P02).

CREATE OR REPLACE FUNCTION json_is_uuid(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string'
                    AND p_value #>> '{}' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
                    false)
$$;

CREATE OR REPLACE FUNCTION json_is_text(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string' AND btrim(p_value #>> '{}') <> '', false)
$$;

-- The bounds keep every accepted value inside the column types, so no write can overflow (22003).
CREATE OR REPLACE FUNCTION json_is_number(p_value jsonb, p_min numeric, p_max numeric, p_whole boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number'
                THEN p_value::numeric BETWEEN p_min AND p_max
                     AND (NOT p_whole OR p_value::numeric = trunc(p_value::numeric))
                ELSE false END
$$;

-- An optional field: absent and JSON null both mean "not given".
CREATE OR REPLACE FUNCTION json_is_given(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) <> 'null', false)
$$;
