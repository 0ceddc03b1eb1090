-- load_catalogue(jsonb) returns jsonb: the provincial item catalogue into products and product_gtins.
-- Every row is checked here, whole, and bad rows are named by their line in the file: nothing loads
-- unless all are good, or, with skip_bad, the good ones load and the bad ones are listed. Loading the
-- same rows again changes nothing (a product whose values and GTINs agree is not written at all).
-- Read top to bottom: the entry function first, then its private helpers in the order it calls them.

-- The public entry, built like the other entry functions (SECURITY DEFINER, pinned search_path,
-- bounded lock wait). A catalogue load is back-office work; posledger has no back-office role, so
-- posledger_app executes it, as it does set_batch_status (docs/decisions.md, "The catalogue").
CREATE OR REPLACE FUNCTION load_catalogue(p_load jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '3s'
AS $$
BEGIN
    PERFORM posledger_private.apply_lock_timeout();
    RETURN posledger_private.catalogue_record(p_load);
EXCEPTION WHEN lock_not_available THEN
    PERFORM posledger_private.refuse_busy(SQLERRM);
    RETURN NULL;  -- not reached: refuse_busy raises
END $$;

REVOKE ALL ON FUNCTION load_catalogue(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION load_catalogue(jsonb) TO posledger_app;
COMMENT ON FUNCTION load_catalogue(jsonb) IS 'Load catalogue rows into products and product_gtins: every row checked, bad rows named by line (IV400) or skipped with skip_bad; idempotent, a product''s GTINs replaced by its row''s.';

-- Validate, take the catalogue's turn, judge every row, then refuse or write. Loads take turns (an
-- advisory lock) because a row's problems depend on what the catalogue holds: two loads giving one
-- GTIN to two skus would each find it free.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_record(p_load jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_seen jsonb;
    v_bad  jsonb;
BEGIN
    PERFORM posledger_private.refuse_problems(posledger_private.catalogue_load_problems(p_load), 'catalogue load');
    PERFORM pg_advisory_xact_lock(x'63617467'::integer, 0);   -- 'catg' in ASCII, apart from lock_lots' keys
    v_seen := posledger_private.catalogue_seen(p_load);
    v_bad := posledger_private.catalogue_bad_rows(p_load, v_seen);
    IF v_bad <> '[]' AND NOT coalesce((p_load->>'skip_bad')::boolean, false) THEN
        PERFORM posledger_private.refuse_catalogue_rows(v_bad);
    END IF;
    PERFORM posledger_private.catalogue_remember(p_load, v_seen);
    RETURN posledger_private.catalogue_write(p_load, ARRAY(SELECT (b->>'n')::integer FROM jsonb_array_elements(v_bad) b))
        || jsonb_build_object('skipped', jsonb_array_length(v_bad),
                              'skipped_rows', (SELECT coalesce(jsonb_agg(b - 'n' ORDER BY (b->>'n')::integer), '[]')
                                               FROM jsonb_array_elements(v_bad) b));
END $$;

-- The payload's own problems, before any row is read: [{field, problem}], [] when none.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_load_problems(p_load jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', p.field, 'problem', p.problem) ORDER BY p.ord), '[]')
    FROM (SELECT CASE jsonb_typeof(p_load) WHEN 'object' THEN p_load ELSE '{}' END AS l) load, LATERAL (VALUES
        (0, '$', 'the catalogue load must be a JSON object', jsonb_typeof(p_load) IS DISTINCT FROM 'object'),
        (1, 'rows', format('is required and must be an array of 1 to %s rows', posledger_private.max_lines()),
            NOT posledger_private.json_is_lines(l->'rows')),
        (2, 'skip_bad', 'must be true or false when given',
            posledger_private.json_is_given(l->'skip_bad') AND NOT posledger_private.json_is_boolean(l->'skip_bad')),
        (3, 'load_id', 'must be a non-empty string when given',
            posledger_private.json_is_given(l->'load_id') AND NOT posledger_private.json_is_text(l->'load_id'))
    ) AS p(ord, field, problem, failed)
    WHERE p.failed
$$;

-- A number, or a decimal in a string (as a CSV cell comes): the value, else NULL.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_amount(p_value jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'number' THEN p_value::numeric
                WHEN jsonb_typeof(p_value) = 'string'
                     AND btrim(p_value #>> '{}') ~ '^([0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9})$'
                THEN btrim(p_value #>> '{}')::numeric END
$$;

-- The unit a label spells, as the catalogue stores it: g, mL or count; NULL when it is none of them.
-- Case does not matter; each, ea, unit(s), piece(s) are counts; gram(s) and millilitre(s) their units.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_unit(p_value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_value) = 'string' THEN CASE lower(btrim(p_value #>> '{}'))
        WHEN 'g' THEN 'g' WHEN 'gram' THEN 'g' WHEN 'grams' THEN 'g'
        WHEN 'ml' THEN 'mL' WHEN 'millilitre' THEN 'mL' WHEN 'millilitres' THEN 'mL'
        WHEN 'milliliter' THEN 'mL' WHEN 'milliliters' THEN 'mL'
        WHEN 'count' THEN 'count' WHEN 'each' THEN 'count' WHEN 'ea' THEN 'count' WHEN 'unit' THEN 'count'
        WHEN 'units' THEN 'count' WHEN 'piece' THEN 'count' WHEN 'pieces' THEN 'count' END END
$$;

-- A text field: trimmed, or NULL when absent, blank or not a string.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_text(p_value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN posledger_private.json_is_text(p_value) THEN btrim(p_value #>> '{}') END
$$;

-- The rows of a load, each read into the values it would store (NULL where a value is missing or
-- unreadable: catalogue_bad_rows says why). n is the row's place in the payload; line its line in the
-- file (n when the row does not say). gtins: the valid ones, as GTIN-14, sorted, each once.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_rows(p_load jsonb)
RETURNS TABLE (n integer, line integer, sku text, name text, brand text, category text, product_class text,
               counts_toward text, net_content numeric, net_unit text, stated_dried_grams numeric, gtins text[],
               item jsonb)
LANGUAGE sql STABLE AS $$
    SELECT r.n::integer,
           CASE WHEN posledger_private.json_is_number(r.item->'line', 1, 2147483647, true)
                THEN (r.item->>'line')::numeric::integer ELSE r.n::integer END,
           posledger_private.catalogue_text(r.item->'sku'), posledger_private.catalogue_text(r.item->'name'),
           posledger_private.catalogue_text(r.item->'brand'), posledger_private.catalogue_text(r.item->'category'),
           c.product_class, k.counts_toward,
           posledger_private.catalogue_amount(r.item->'net_content'), posledger_private.catalogue_unit(r.item->'net_unit'),
           posledger_private.catalogue_amount(r.item->'stated_dried_grams'),
           ARRAY(SELECT DISTINCT posledger_private.gtin14(btrim(g #>> '{}'))
                 FROM jsonb_array_elements(CASE jsonb_typeof(r.item->'gtins') WHEN 'array' THEN r.item->'gtins' ELSE '[]' END) g
                 WHERE jsonb_typeof(g) = 'string' AND posledger_private.gtin14(btrim(g #>> '{}')) IS NOT NULL ORDER BY 1),
           r.item
    FROM jsonb_array_elements(posledger_private.json_lines(p_load->'rows')) WITH ORDINALITY AS r(item, n)
    LEFT JOIN public.catalogue_categories c ON c.category = lower(posledger_private.catalogue_text(r.item->'category'))
    LEFT JOIN public.product_classes k ON k.product_class = c.product_class
$$;

-- A file sent in several calls of one transaction is one load when the calls share a load_id: the skus
-- of its earlier calls, {sku: line}, kept in a setting local to the transaction, so a sku twice in the
-- file is found whichever calls carry it. {} for a call without load_id, or the first of its load.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_seen(p_load jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_load jsonb;
BEGIN
    v_load := nullif(current_setting('posledger.catalogue_load', true), '')::jsonb;
    RETURN CASE WHEN v_load->>'load_id' = p_load->>'load_id' THEN v_load->'skus' ELSE '{}' END;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN '{}'::jsonb;   -- the session set the setting to something else: no load of ours to continue
END $$;

CREATE OR REPLACE FUNCTION posledger_private.catalogue_remember(p_load jsonb, p_seen jsonb) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT set_config('posledger.catalogue_load', jsonb_build_object('load_id', p_load->>'load_id', 'skus',
               p_seen || coalesce((SELECT jsonb_object_agg(r.sku, r.line) FROM (
                   SELECT DISTINCT ON (r.sku) r.sku, r.line FROM posledger_private.catalogue_rows(p_load) r
                   WHERE r.sku IS NOT NULL AND NOT p_seen ? r.sku ORDER BY r.sku, r.n) r), '{}'))::text, true)
    WHERE p_load->>'load_id' IS NOT NULL
$$;

-- A value a row gives: present, not null, and not a blank string (a CSV's empty cell).
CREATE OR REPLACE FUNCTION posledger_private.catalogue_given(p_value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT posledger_private.json_is_given(p_value)
           AND NOT (jsonb_typeof(p_value) = 'string' AND btrim(p_value #>> '{}') = '')
$$;

-- The problems of each row by itself: (n, field, problem, ord). Net content and unit are required but
-- for a class that counts toward nothing (an accessory); a class counted in grams must state its grams
-- unless a factor in force today turns its unit into grams (catalogue_grams could not, at the till).
CREATE OR REPLACE FUNCTION posledger_private.catalogue_row_problems(p_load jsonb)
RETURNS TABLE (n integer, field text, problem text, ord integer)
LANGUAGE sql STABLE AS $$
    SELECT r.n, c.field, c.problem, c.ord
    FROM posledger_private.catalogue_rows(p_load) r, LATERAL (VALUES
        (0, '$', 'each row must be a JSON object', jsonb_typeof(r.item) IS DISTINCT FROM 'object'),
        (1, 'line', 'must be the row''s line number in its file, a whole number from 1, when given',
            posledger_private.json_is_given(r.item->'line')
            AND NOT posledger_private.json_is_number(r.item->'line', 1, 2147483647, true)),
        (2, 'sku', 'is required and must be a non-empty string', r.sku IS NULL),
        (20, 'sku', 'must be at most 200 characters', posledger_private.json_is_long(r.item->'sku')),
        (3, 'name', 'is required and must be a non-empty string', r.name IS NULL),
        (4, 'brand', 'must be a string when given',
            posledger_private.json_is_given(r.item->'brand') AND jsonb_typeof(r.item->'brand') <> 'string'),
        (5, 'category', 'is required and must be a non-empty string', r.category IS NULL),
        (6, 'category', format('%s is not a known category (see catalogue_categories)', r.category),
            r.category IS NOT NULL AND r.product_class IS NULL),
        (7, 'net_content', 'must be a number above 0 and at most 1000000',
            posledger_private.catalogue_given(r.item->'net_content') AND NOT coalesce(r.net_content > 0
                AND r.net_content <= 1000000, false)),
        (8, 'net_content', 'is required: the label''s net content, a number above 0',
            NOT posledger_private.catalogue_given(r.item->'net_content')
            AND (r.counts_toward IS DISTINCT FROM 'nothing' OR posledger_private.catalogue_given(r.item->'net_unit'))),
        (9, 'net_unit', format('%s is not a unit: g, mL or count (also read: ml, gram, each, units)', r.item->'net_unit'),
            posledger_private.catalogue_given(r.item->'net_unit') AND r.net_unit IS NULL),
        (10, 'net_unit', 'is required: g, mL or count',
            NOT posledger_private.catalogue_given(r.item->'net_unit')
            AND (r.counts_toward IS DISTINCT FROM 'nothing' OR posledger_private.catalogue_given(r.item->'net_content'))),
        (11, 'stated_dried_grams', 'must be a number from 0 to 1000 when given',
            posledger_private.catalogue_given(r.item->'stated_dried_grams')
            AND NOT coalesce(r.stated_dried_grams BETWEEN 0 AND 1000, false)),
        (12, 'stated_dried_grams', format('is required: no dried equivalency factor turns %s of %s into grams',
                                          r.net_unit, r.product_class),
            r.counts_toward = 'dried_grams' AND r.net_unit IS NOT NULL
            AND NOT posledger_private.catalogue_given(r.item->'stated_dried_grams')
            AND NOT EXISTS (SELECT FROM public.dried_equivalency_factors f
                            WHERE f.product_class = r.product_class AND f.net_unit = r.net_unit
                              AND f.in_force_from <= current_date)),
        (13, 'gtins', 'must be an array of GTINs when given',
            posledger_private.json_is_given(r.item->'gtins') AND jsonb_typeof(r.item->'gtins') <> 'array')
    ) AS c(ord, field, problem, failed)
    WHERE c.failed AND (c.ord = 0 OR jsonb_typeof(r.item) = 'object')
    UNION ALL
    SELECT r.n, format('gtins[%s]', g.i - 1),
           format('%s is not a GTIN-8, -12, -13 or -14 with a valid GS1 check digit', g.gtin), 100 + g.i::integer
    FROM posledger_private.catalogue_rows(p_load) r,
         jsonb_array_elements(CASE jsonb_typeof(r.item->'gtins') WHEN 'array' THEN r.item->'gtins' ELSE '[]' END)
             WITH ORDINALITY AS g(gtin, i)
    WHERE jsonb_typeof(g.gtin) IS DISTINCT FROM 'string' OR posledger_private.gtin14(btrim(g.gtin #>> '{}')) IS NULL
$$;

-- The problems of a row against the others and the catalogue: a sku or GTIN an earlier row of the load
-- already has (the first row keeps it), and a GTIN that belongs to another product. GS1 never gives a
-- GTIN to a second product, so that is an error in the file, not a move.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_clashes(p_load jsonb, p_seen jsonb)
RETURNS TABLE (n integer, field text, problem text, ord integer)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT r.n, r.line, r.sku, r.gtins,
               first_value(r.line) OVER (PARTITION BY r.sku ORDER BY r.n) AS first_line,
               first_value(r.n) OVER (PARTITION BY r.sku ORDER BY r.n) AS first_n
        FROM posledger_private.catalogue_rows(p_load) r WHERE r.sku IS NOT NULL
    ), g AS (
        SELECT r.n, r.sku, g.gtin, first_value(r.n) OVER w AS first_n, first_value(r.line) OVER w AS first_line,
               first_value(r.sku) OVER w AS first_sku
        FROM r, unnest(r.gtins) AS g(gtin)
        WINDOW w AS (PARTITION BY g.gtin ORDER BY r.n)
    )
    SELECT r.n, 'sku', format('%s is also on line %s of this load', r.sku, coalesce(p_seen->>r.sku, r.first_line::text)),
           200
    FROM r WHERE r.first_n < r.n OR p_seen ? r.sku
    UNION ALL
    SELECT g.n, 'gtins', format('GTIN %s is also on line %s (sku %s) of this load', g.gtin, g.first_line, g.first_sku), 300
    FROM g WHERE g.first_n < g.n
    UNION ALL
    SELECT g.n, 'gtins', format('GTIN %s already belongs to sku %s', g.gtin, o.sku), 400
    FROM g JOIN public.product_gtins o ON o.gtin = g.gtin AND o.sku <> g.sku
$$;

-- The bad rows, [{n, line, sku, problems: [{field, problem}]}] in payload order; [] when every row is good.
CREATE OR REPLACE FUNCTION posledger_private.catalogue_bad_rows(p_load jsonb, p_seen jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('n', r.n, 'line', r.line, 'sku', r.sku, 'problems', p.problems)
                              ORDER BY r.n), '[]')
    FROM posledger_private.catalogue_rows(p_load) r
    JOIN (SELECT x.n, jsonb_agg(jsonb_build_object('field', x.field, 'problem', x.problem) ORDER BY x.ord) AS problems
          FROM (SELECT * FROM posledger_private.catalogue_row_problems(p_load)
                UNION ALL SELECT * FROM posledger_private.catalogue_clashes(p_load, p_seen)) x
          GROUP BY x.n) p ON p.n = r.n
$$;

-- IV400 naming each bad row by its line (the first 100 rows; bad_rows counts all), with the problems also
-- as the flat [{field, problem}] every IV400 carries (field: the row's place in the payload).
CREATE OR REPLACE FUNCTION posledger_private.refuse_catalogue_rows(p_bad jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_flat jsonb := (SELECT jsonb_agg(jsonb_build_object('field', format('rows[%s].%s', (b->>'n')::integer - 1, p->>'field'),
                                                         'problem', p->>'problem'))
                     FROM jsonb_array_elements(p_bad) b, jsonb_array_elements(b->'problems') p);
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'IV400',
        MESSAGE = format('invalid catalogue load: %s row(s) have problems; nothing was loaded', jsonb_array_length(p_bad)),
        DETAIL = jsonb_build_object(
            'rows', (SELECT jsonb_agg(b - 'n') FROM jsonb_array_elements(jsonb_path_query_array(p_bad, '$[0 to 99]')) b),
            'bad_rows', jsonb_array_length(p_bad),
            'problems', jsonb_path_query_array(v_flat, '$[0 to 99]'), 'total', jsonb_array_length(v_flat))::text,
        HINT = 'Correct each row named by its line and load the file again, or skip the bad rows (skip_bad).';
END $$;

-- The writes, in one statement, of the rows not in p_bad: a new sku is inserted; a known one is updated,
-- with updated_at, only when a value or its set of GTINs differs, so a second load of the same file
-- writes nothing. A product's GTINs become its row's: a GTIN the row no longer lists is deleted (the
-- file is the catalogue; a GTIN left behind would still find the product at the till).
CREATE OR REPLACE FUNCTION posledger_private.catalogue_write(p_load jsonb, p_bad integer[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_counts jsonb;
BEGIN
    WITH judged AS (
        SELECT r.*, CASE
                   WHEN p.sku IS NULL THEN 'inserted'
                   WHEN (p.name, p.brand, p.category, p.product_class, p.net_content, p.net_unit, p.stated_dried_grams,
                         ARRAY(SELECT x.gtin FROM public.product_gtins x WHERE x.sku = p.sku ORDER BY x.gtin))
                        IS NOT DISTINCT FROM (r.name, r.brand, r.category, r.product_class, r.net_content, r.net_unit,
                                              r.stated_dried_grams, r.gtins) THEN 'unchanged'
                   ELSE 'updated' END AS outcome
        FROM posledger_private.catalogue_rows(p_load) r
        LEFT JOIN public.products p ON p.sku = r.sku
        WHERE r.n <> ALL (p_bad)
    ), inserted AS (
        INSERT INTO public.products (sku, name, brand, category, product_class, net_content, net_unit, stated_dried_grams)
        SELECT j.sku, j.name, j.brand, j.category, j.product_class, j.net_content, j.net_unit, j.stated_dried_grams
        FROM judged j WHERE j.outcome = 'inserted' ORDER BY j.sku
    ), updated AS (
        UPDATE public.products p
        SET name = j.name, brand = j.brand, category = j.category, product_class = j.product_class,
            net_content = j.net_content, net_unit = j.net_unit, stated_dried_grams = j.stated_dried_grams,
            updated_at = now()
        FROM judged j WHERE p.sku = j.sku AND j.outcome = 'updated'
    ), dropped AS (
        DELETE FROM public.product_gtins x USING judged j
        WHERE x.sku = j.sku AND j.outcome = 'updated' AND x.gtin <> ALL (j.gtins)
    ), added AS (
        -- A GTIN the product already has stays; no other product has any of these (catalogue_clashes).
        INSERT INTO public.product_gtins (gtin, sku)
        SELECT g.gtin, j.sku FROM judged j, unnest(j.gtins) AS g(gtin)
        WHERE j.outcome <> 'unchanged' AND NOT EXISTS (SELECT FROM public.product_gtins x WHERE x.gtin = g.gtin)
    )
    SELECT jsonb_build_object('rows', count(*) + cardinality(p_bad),
                              'inserted', count(*) FILTER (WHERE j.outcome = 'inserted'),
                              'updated', count(*) FILTER (WHERE j.outcome = 'updated'),
                              'unchanged', count(*) FILTER (WHERE j.outcome = 'unchanged'))
    INTO v_counts FROM judged j;
    RETURN v_counts;
END $$;
