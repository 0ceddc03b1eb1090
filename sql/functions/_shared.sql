-- Helpers every entry function shares. This file sorts first, so the functions after it may use them.

-- The lock wait an entry function accepts before it gives up with IV503 (busy, retry): the setting
-- posledger.lock_timeout (e.g. ALTER DATABASE ... SET posledger.lock_timeout = '5s'), else 3 seconds,
-- normalised (e.g. '200ms'). Only 1 ms to 1 min is taken: '0' would mean waiting forever, and a value
-- PostgreSQL cannot read failed every call with a raw 22023, so both are refused with IV500 by name.
CREATE OR REPLACE FUNCTION posledger_private.lock_timeout() RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_value text := coalesce(nullif(current_setting('posledger.lock_timeout', true), ''), '3s');
    v_parts text[] := regexp_match(v_value, '^\s*([0-9]{1,9}(\.[0-9]{1,6})?)\s*(ms|s|min)?\s*$');
BEGIN
    IF v_parts IS NULL OR (v_parts[1]::numeric * CASE v_parts[3] WHEN 's' THEN 1000 WHEN 'min' THEN 60000 ELSE 1 END
                           NOT BETWEEN 1 AND 60000) THEN
        RAISE EXCEPTION USING ERRCODE = 'IV500', MESSAGE = 'misconfigured: posledger.lock_timeout is not a usable wait',
            DETAIL = jsonb_build_object('setting', 'posledger.lock_timeout', 'value', v_value,
                                        'allowed', 'a duration from 1ms to 1min, e.g. 3s or 500ms')::text,
            HINT = 'Correct or reset the setting (ALTER DATABASE/ROLE ... SET or RESET posledger.lock_timeout).';
    END IF;
    RETURN v_parts[1] || coalesce(v_parts[3], 'ms');
END $$;

-- Applies lock_timeout() to the calling entry function, whose own SET lock_timeout clause
-- scopes it to that call, and returns it.
CREATE OR REPLACE FUNCTION posledger_private.apply_lock_timeout() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT set_config('lock_timeout', posledger_private.lock_timeout(), true)
$$;

-- A status change of a lot and a receipt of it take turns, so no receipt creates an active row of a lot
-- that is being held at that moment (the hold's row does not exist yet for the receipt to wait on): a
-- status change takes the lot's advisory lock alone, receipts share it. Taken before any row lock, in
-- one order of the keys; a wait counts against the lock timeout (IV503). The first key, 'lots' in
-- ASCII, keeps these apart from other users' two-key advisory locks.
CREATE OR REPLACE FUNCTION posledger_private.lock_lots(p_lots text[], p_exclusive boolean) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM CASE WHEN p_exclusive THEN pg_advisory_xact_lock(x'6c6f7473'::integer, k)::text
                 ELSE pg_advisory_xact_lock_shared(x'6c6f7473'::integer, k)::text END
    FROM (SELECT DISTINCT hashtext(l) AS k FROM unnest(p_lots) l ORDER BY 1) keys;
END $$;

-- The refusals every entry function shares, so each code keeps one shape of DETAIL across functions.

-- IV400: the problems of a payload, as [{field, problem}], the first 100 of them, and their total;
-- nothing when there is none. The bound keeps the detail small (10,000 bad lines made 899 KB).
CREATE OR REPLACE FUNCTION posledger_private.refuse_problems(p_problems jsonb, p_what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_problems <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV400', MESSAGE = format('invalid %s: the payload has problems', p_what),
            DETAIL = jsonb_build_object('problems', jsonb_path_query_array(p_problems, '$[0 to 99]'),
                                        'total', jsonb_array_length(p_problems))::text,
            HINT = 'Correct every field named in problems (the first 100 of total) and send it again.';
    END IF;
END $$;

-- IV404: the store, skus, batches or orders a payload names that do not exist; nothing when none.
CREATE OR REPLACE FUNCTION posledger_private.refuse_missing(p_missing jsonb, p_hint text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_missing <> '[]' THEN
        RAISE EXCEPTION USING ERRCODE = 'IV404', MESSAGE = 'not found: the payload names what does not exist',
            DETAIL = jsonb_build_object('missing', p_missing)::text, HINT = p_hint;
    END IF;
END $$;

-- The store a call names, or IV404 naming it: every store-scoped entry checks its store so.
CREATE OR REPLACE FUNCTION posledger_private.existing_store(p_store_id uuid) RETURNS stores
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store public.stores;
BEGIN
    SELECT * INTO v_store FROM public.stores WHERE id = p_store_id;
    PERFORM posledger_private.refuse_missing(CASE WHEN v_store.id IS NULL
        THEN jsonb_build_array(jsonb_build_object('store_id', p_store_id)) ELSE '[]' END,
        'Name a store that exists: stores come from the back office (INSERT INTO stores).');
    RETURN v_store;
END $$;

-- IV412: an idempotency key already used with another payload. Payloads compare as jsonb, so key
-- order and spacing do not matter but every value does.
CREATE OR REPLACE FUNCTION posledger_private.refuse_other_payload(p_stored jsonb, p_sent jsonb, p_key jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_stored IS DISTINCT FROM p_sent THEN
        RAISE EXCEPTION USING ERRCODE = 'IV412',
            MESSAGE = 'idempotency conflict: this key was already used for a different payload',
            DETAIL = p_key::text,
            HINT = 'A retry must send the identical payload; a new operation needs a new key.';
    END IF;
END $$;

-- The two-argument entries Citus distributes (docs/scaling.md) are routed by their store_id parameter,
-- never by a field inside the jsonb, so the store travels twice and must agree: a call routed to one
-- store can never write another.
CREATE OR REPLACE FUNCTION posledger_private.routed(p_store_id uuid, p_payload jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN coalesce(posledger_private.json_is_uuid(p_payload->'store_id') AND (p_payload->>'store_id')::uuid = p_store_id,
                    false);
END $$;

-- IV400 for a misrouted call, listing the mismatch with every other problem of the payload (p_problems),
-- as the one-argument entry would.
CREATE OR REPLACE FUNCTION posledger_private.refuse_misrouted(p_problems jsonb, p_what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM posledger_private.refuse_problems(
        '[{"field": "store_id", "problem": "must be the store_id the call is routed by"}]'::jsonb || p_problems, p_what);
END $$;

-- IV503, from an entry function's handler of lock_not_available: safe to retry, since every entry is
-- idempotent by its key.
CREATE OR REPLACE FUNCTION posledger_private.refuse_busy(p_reason text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'IV503', MESSAGE = 'busy: the rows of this call are locked by other calls',
        DETAIL = jsonb_build_object('lock_timeout', posledger_private.lock_timeout(), 'reason', p_reason)::text,
        HINT = 'Retry the same call with the same key.';
END $$;

-- IV400, from the handler of numeric_value_out_of_range of an entry function that adds units to stock
-- (a receipt, an adjustment, a return): the payload's own sums are bounded by validation, but a row
-- already near 2^31 units would overflow (a raw 22003), and only the write finds that out.
CREATE OR REPLACE FUNCTION posledger_private.refuse_overflow(p_reason text, p_what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM posledger_private.refuse_problems(jsonb_build_array(jsonb_build_object(
        'field', 'lines', 'problem', 'would take a stock row beyond the 2147483647 units it can hold (' || p_reason || ')')),
        p_what);
END $$;

-- Predicates over one JSON value, for the entry functions' validation. They never raise: a payload is
-- checked whole and every problem is reported at once, so a bad value must answer false, not abort the
-- check with a cast error (22P02).

CREATE OR REPLACE FUNCTION posledger_private.json_is_uuid(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string'
                    AND p_value #>> '{}' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
                    false)
$$;

-- A key that a table indexes (a receipt number, a reference, a sku, a lot) over 200 characters: an index
-- row holds about 2,700 bytes, and a longer key failed its write with a raw 54000.
CREATE OR REPLACE FUNCTION posledger_private.json_is_long(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string' AND length(p_value #>> '{}') > 200, false)
$$;

CREATE OR REPLACE FUNCTION posledger_private.json_is_text(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'string' AND btrim(p_value #>> '{}') <> '', false)
$$;

-- The bounds keep every accepted value inside the column types, so no write can overflow (22003).
CREATE OR REPLACE FUNCTION posledger_private.json_is_number(p_value jsonb, p_min numeric, p_max numeric, p_whole boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number'
                THEN p_value::numeric BETWEEN p_min AND p_max
                     AND (NOT p_whole OR p_value::numeric = trunc(p_value::numeric))
                ELSE false END
$$;

-- The most lines one payload (a shipment, adjustment, count, return or sale) may carry: each call
-- validates and writes all of them in one transaction, so the bound caps its cost. A sale is bounded
-- further by its store's max_sale_lines.
CREATE OR REPLACE FUNCTION posledger_private.max_lines() RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT 10000
$$;

-- A payload's lines: an array of 1 to max_lines() elements.
CREATE OR REPLACE FUNCTION posledger_private.json_is_lines(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'array'
                    AND jsonb_array_length(p_value) BETWEEN 1 AND posledger_private.max_lines(), false)
$$;

-- The lines the per-line checks read: none unless json_is_lines, so a payload of a million lines costs
-- one problem, not a million.
CREATE OR REPLACE FUNCTION posledger_private.json_lines(p_value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN posledger_private.json_is_lines(p_value) THEN p_value ELSE '[]' END
$$;

-- An optional field: absent and JSON null both mean "not given".
CREATE OR REPLACE FUNCTION posledger_private.json_is_given(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) <> 'null', false)
$$;

CREATE OR REPLACE FUNCTION posledger_private.json_is_boolean(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(p_value) = 'boolean', false)
$$;

-- An ISO date (YYYY-MM-DD) that exists; checked by arithmetic, since a cast of 2025-02-30 would raise.
-- CASE, not AND, guards the casts: only CASE fixes the order of evaluation.
CREATE OR REPLACE FUNCTION posledger_private.json_is_date(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN coalesce(jsonb_typeof(p_value) = 'string'
                              AND p_value #>> '{}' ~ '^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-[0-9]{2}$', false)
                THEN substr(p_value #>> '{}', 9, 2)::integer BETWEEN 1 AND extract(day FROM
                         make_date(substr(p_value #>> '{}', 1, 4)::integer, substr(p_value #>> '{}', 6, 2)::integer, 1)
                         + interval '1 month - 1 day')
                ELSE false END
$$;

-- A moment with its offset, as ISO 8601 ('2026-11-30T14:05:00-05:00', 'Z' for UTC, seconds optional):
-- without an offset a till's clock could not be placed in time. The date must exist and the clock
-- read below 24:00, so the cast that follows cannot raise.
CREATE OR REPLACE FUNCTION posledger_private.json_is_timestamp(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN coalesce(jsonb_typeof(p_value) = 'string' AND p_value #>> '{}'
                              ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)$',
                              false)
                THEN posledger_private.json_is_date(to_jsonb(left(p_value #>> '{}', 10)))
                ELSE false END
$$;

-- A GTIN as stored: 14 digits, zero-padded, or NULL when it is not a GTIN-8/12/13/14 with a valid GS1
-- mod-10 check digit. Zero-padding keeps the check: weights count from the right.
CREATE OR REPLACE FUNCTION posledger_private.gtin14(p_gtin text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_gtin ~ '^([0-9]{8}|[0-9]{12,14})$' THEN (
        SELECT g.digits
        FROM (SELECT lpad(p_gtin, 14, '0') AS digits) g
        WHERE (SELECT sum(substr(g.digits, n, 1)::integer * CASE n % 2 WHEN 1 THEN 3 ELSE 1 END)
               FROM generate_series(1, 14) AS n) % 10 = 0) END
$$;

-- The products p_skus names, each with what it counts toward and the dried-equivalent grams of one unit
-- on a day (the store's calendar date): the label's stated grams when given, else its net content over
-- the factor of its class and unit in force that day, so a changed factor applies from its date on and
-- never to an earlier sale. Zero for a class that counts toward plants or nothing; NULL when neither is
-- known (no factor for its class and unit). Called once with all of a sale's skus, joined by sku: no call
-- per line. PL/pgSQL, not an inlinable LANGUAGE sql set: on Citus the inlined form read nothing.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_grams(p_day date, p_skus text[])
RETURNS TABLE (sku text, product_class text, counts_toward text, dried_grams_per_unit numeric)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT p.sku, p.product_class, c.counts_toward,
           CASE WHEN c.counts_toward <> 'dried_grams' THEN 0
                ELSE coalesce(p.stated_dried_grams, p.net_content / f.amount_per_dried_gram) END
    FROM public.products p
    JOIN public.product_classes c ON c.product_class = p.product_class
    LEFT JOIN LATERAL (SELECT f.amount_per_dried_gram FROM public.dried_equivalency_factors f
                       WHERE f.product_class = p.product_class AND f.net_unit = p.net_unit AND f.in_force_from <= p_day
                       ORDER BY f.in_force_from DESC LIMIT 1) f ON true
    WHERE p.sku = ANY (p_skus);
END $$;

-- A store's calendar date now: expiry and the factors in force are judged by it.
CREATE OR REPLACE FUNCTION posledger_private.store_today(p_store stores) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (now() AT TIME ZONE p_store.time_zone)::date
$$;

-- A store's calendar date at a moment: an offline sale is judged by the day it happened.
CREATE OR REPLACE FUNCTION posledger_private.store_date(p_store stores, p_at timestamptz) RETURNS date
LANGUAGE sql STABLE AS $$
    SELECT (p_at AT TIME ZONE p_store.time_zone)::date
$$;
