-- TEMPORARY STUB (not committed): replaced by helper-gs1's parser.
CREATE OR REPLACE FUNCTION posledger_private.gs1_parse(p_scan text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE m text[];
BEGIN
    m := regexp_match(p_scan, '^\(01\)([0-9]{14})(?:\(10\)([^(]+))?(?:\(17\)([0-9]{6}))?$');
    IF m IS NULL THEN
        IF p_scan ~ '^[0-9]{12,14}$' THEN RETURN jsonb_build_object('gtin', lpad(p_scan, 14, '0')); END IF;
        RETURN '{"problem": "stub: unparsed"}';
    END IF;
    RETURN jsonb_strip_nulls(jsonb_build_object('gtin', m[1], 'batch_lot', m[2], 'expiry_date',
        CASE WHEN m[3] IS NOT NULL THEN to_char(to_date(m[3], 'YYMMDD'), 'YYYY-MM-DD') END));
END $$;
