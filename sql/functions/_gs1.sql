-- Barcode scans (issue 15): a sale line may carry the scanned GS1 element string instead of sku and batch.
-- These functions are PL/pgSQL because this file sorts before _shared.sql: a PL/pgSQL body is resolved
-- when it runs, so gtin14() need not exist yet when this file is applied.

-- The scan as {gtin, batch_lot, expiry_date, packaged_on_date, serial} (absent AIs absent; gtin always
-- there), or {problem} naming what is wrong. It never raises: the sale collects every problem of its
-- lines at once, so no text a scanner or a person sends may abort that with a cast error.
-- Read: a plain GTIN-8/12/13/14; the human-readable form "(01)...(10)..."; the raw form, whose
-- variable fields (10, 21) end at FNC1 (chr(29)) or the end. A symbology identifier and one leading FNC1
-- are dropped, and so is the whitespace around a scan (keyboard-wedge scanners end it with Enter): no
-- AI we read may hold whitespace. In the human-readable form parentheses always delimit AIs, though set
-- 82 allows them in a lot: a lot with parentheses is read from the raw form only.
CREATE OR REPLACE FUNCTION posledger_private.gs1_parse(p_scan text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_rest text := btrim(coalesce(p_scan, ''), E' \t\r\n');
    v_bracketed boolean;
    v_next record;
    v_seen text[] := '{}'::text[];
    v_element jsonb;
    v_result jsonb := '{}'::jsonb;
BEGIN
    IF left(v_rest, 1) = ']' THEN
        -- GS1-128, DataBar, DataMatrix, QR, DotCode; EAN/UPC's ]E0 and ]E4 carry a plain GTIN.
        IF left(v_rest, 3) NOT IN (']C1', ']e0', ']d2', ']Q3', ']J1', ']E0', ']E4') THEN
            RETURN jsonb_build_object('problem', format('unsupported symbology identifier "%s"', left(v_rest, 3)));
        END IF;
        v_rest := substr(v_rest, 4);
    END IF;
    IF left(v_rest, 1) = chr(29) THEN
        v_rest := substr(v_rest, 2);
    END IF;
    IF v_rest = '' THEN
        RETURN '{"problem": "empty scan"}'::jsonb;
    ELSIF v_rest ~ '^([0-9]{8}|[0-9]{12,14})$' THEN
        RETURN CASE WHEN posledger_private.gtin14(v_rest) IS NULL
                    THEN jsonb_build_object('problem', format('check digit wrong in GTIN %s', v_rest))
                    ELSE jsonb_build_object('gtin', posledger_private.gtin14(v_rest)) END;
    END IF;
    v_bracketed := left(v_rest, 1) = '(';
    WHILE v_rest <> '' LOOP
        v_next := posledger_private.gs1_next(v_rest, v_bracketed);
        v_element := CASE WHEN v_next.problem IS NOT NULL THEN jsonb_build_object('problem', v_next.problem)
                          WHEN v_next.ai = ANY (v_seen)
                              THEN jsonb_build_object('problem', format('repeated AI (%s)', v_next.ai))
                          ELSE posledger_private.gs1_element(v_next.ai, v_next.value) END;
        IF v_element ? 'problem' THEN
            RETURN v_element;
        END IF;
        v_seen := v_seen || v_next.ai;
        v_result := v_result || v_element;
        v_rest := v_next.rest;
    END LOOP;
    IF NOT v_result ? 'gtin' THEN
        RETURN '{"problem": "no GTIN: the scan has no AI (01)"}'::jsonb;
    END IF;
    RETURN v_result;
END $$;

-- The first element string of the rest of a scan, in its form: its AI and value and what follows it, or
-- the problem that stops the reading.
CREATE OR REPLACE FUNCTION posledger_private.gs1_next(p_rest text, p_bracketed boolean,
                                                      OUT ai text, OUT value text, OUT rest text, OUT problem text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_match text[];
BEGIN
    IF p_bracketed THEN
        v_match := regexp_match(p_rest, '^\(([^()]*)\)([^()]*)');
        ai := v_match[1];
        value := v_match[2];
        rest := substr(p_rest, length(ai) + length(value) + 3);
    ELSIF left(p_rest, 2) IN ('01', '10', '13', '17', '21') THEN
        ai := left(p_rest, 2);
        -- A fixed-length field takes its length whatever follows, so only 10 and 21 need FNC1 to end.
        value := CASE ai WHEN '01' THEN substr(p_rest, 3, 14) WHEN '13' THEN substr(p_rest, 3, 6)
                         WHEN '17' THEN substr(p_rest, 3, 6) ELSE split_part(substr(p_rest, 3), chr(29), 1) END;
        -- FNC1 ends a variable-length field; some encoders put one after a fixed-length field too, where
        -- it ends nothing: both are passed over.
        rest := ltrim(substr(p_rest, length(value) + 3), chr(29));
    ELSIF p_rest ~ '^[0-9]{2}' THEN
        problem := format('unsupported AI at "%s": only (01), (10), (13), (17) and (21) are read', left(p_rest, 20));
    END IF;
    problem := coalesce(problem, CASE WHEN ai IS NULL THEN format('unparsed text "%s"', left(p_rest, 30)) END);
END $$;

-- One element string's AI and value as {key: value}, or {problem}. The characters allowed in a lot or a
-- serial are the GS1 General Specifications' "AI encodable character set 82".
CREATE OR REPLACE FUNCTION posledger_private.gs1_element(p_ai text, p_value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_key text := CASE p_ai WHEN '01' THEN 'gtin' WHEN '10' THEN 'batch_lot' WHEN '13' THEN 'packaged_on_date'
                            WHEN '17' THEN 'expiry_date' WHEN '21' THEN 'serial' END;
    v_fixed integer := CASE p_ai WHEN '01' THEN 14 WHEN '13' THEN 6 WHEN '17' THEN 6 END;
    v_date date := CASE WHEN p_ai IN ('13', '17') THEN posledger_private.gs1_date(p_value) END;
    v_problem text;
BEGIN
    v_problem := CASE
        WHEN v_key IS NULL THEN
            format('unsupported AI (%s): only (01), (10), (13), (17) and (21) are read', left(p_ai, 10))
        WHEN v_fixed IS NOT NULL AND (length(p_value) <> v_fixed OR p_value !~ '^[0-9]*$') THEN
            format('AI (%s) must be %s digits, not "%s"', p_ai, v_fixed, left(p_value, 30))
        WHEN p_ai = '01' AND posledger_private.gtin14(p_value) IS NULL THEN
            format('check digit wrong in GTIN %s', p_value)
        WHEN v_fixed = 6 AND v_date IS NULL THEN
            format('AI (%s) is not a date YYMMDD: "%s"', p_ai, p_value)
        WHEN v_fixed IS NOT NULL THEN NULL
        WHEN p_value = '' THEN format('AI (%s) is empty', p_ai)
        WHEN length(p_value) > 20 THEN format('AI (%s) is longer than 20 characters', p_ai)
        WHEN p_value !~ '^[-!"%&''()*+,./0-9:;<=>?A-Z_a-z]+$' THEN
            format('AI (%s) has characters outside GS1 set 82: "%s"', p_ai,
                   left(regexp_replace(p_value, '[-!"%&''()*+,./0-9:;<=>?A-Z_a-z]', '', 'g'), 20))
    END;
    IF v_problem IS NOT NULL THEN
        RETURN jsonb_build_object('problem', v_problem);
    END IF;
    RETURN jsonb_build_object(v_key, CASE WHEN v_date IS NOT NULL THEN to_char(v_date, 'YYYY-MM-DD') ELSE p_value END);
END $$;

-- A GS1 date YYMMDD, or NULL when it is none; DD 00 means the month's last day. The century is always
-- 20, so the function is IMMUTABLE: the GS1 General Specifications' rule (7.12: within 49 years before
-- to 50 years after the current year) would read the clock, making it STABLE and a scan's meaning change
-- from year to year. Until 2049 the two differ only where 7.12 reads 19YY (YY 76-99 in 2025, fewer each
-- year), which no packaging or expiry date of stock on sale has; from 2050 7.12 reads 00 as 2100.
CREATE OR REPLACE FUNCTION posledger_private.gs1_date(p_yymmdd text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_year integer;
    v_month integer;
    v_last date;
BEGIN
    IF p_yymmdd IS NULL OR p_yymmdd !~ '^[0-9]{2}(0[1-9]|1[0-2])[0-9]{2}$' THEN
        RETURN NULL;
    END IF;
    v_year := 2000 + substr(p_yymmdd, 1, 2)::integer;
    v_month := substr(p_yymmdd, 3, 2)::integer;
    v_last := make_date(v_year + v_month / 12, v_month % 12 + 1, 1) - 1;
    RETURN CASE WHEN substr(p_yymmdd, 5, 2) = '00' THEN v_last
                WHEN substr(p_yymmdd, 5, 2)::integer <= extract(day FROM v_last)
                    THEN make_date(v_year, v_month, substr(p_yymmdd, 5, 2)::integer) END;
END $$;
