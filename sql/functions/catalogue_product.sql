-- catalogue_product(text) returns jsonb: one product of the catalogue, found by its sku or by any of its
-- GTINs (8, 12, 13 or 14 digits, as a scanner reads it), with what the law at the till judges it by.

-- A read, for tills and DBAs alike; SECURITY DEFINER because posledger_app reads no table itself. A
-- key that is a sku wins over the same digits read as a GTIN. The grams are those of the session's
-- calendar date (as_of): the catalogue belongs to no store, while a sale judges by its store's date.
CREATE OR REPLACE FUNCTION catalogue_product(p_key text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_product public.products;
BEGIN
    PERFORM posledger_private.refuse_problems(CASE WHEN coalesce(btrim(p_key), '') = ''
        THEN '[{"field": "key", "problem": "is required: a sku or a GTIN"}]'::jsonb ELSE '[]' END, 'product key');
    SELECT p.* INTO v_product FROM public.products p
    WHERE p.sku = coalesce((SELECT s.sku FROM public.products s WHERE s.sku = btrim(p_key)),
                           (SELECT g.sku FROM public.product_gtins g WHERE g.gtin = posledger_private.gtin14(btrim(p_key))));
    PERFORM posledger_private.refuse_missing(CASE WHEN v_product.sku IS NULL
        THEN jsonb_build_array(jsonb_build_object('product', p_key)) ELSE '[]' END,
        'Name a sku or GTIN of the catalogue (posledger catalogue load adds products).');
    RETURN jsonb_build_object(
        'sku', v_product.sku, 'name', v_product.name, 'brand', v_product.brand, 'category', v_product.category,
        'product_class', v_product.product_class,
        'counts_toward', (SELECT c.counts_toward FROM public.product_classes c WHERE c.product_class = v_product.product_class),
        'net_content', v_product.net_content, 'net_unit', v_product.net_unit,
        'stated_dried_grams', v_product.stated_dried_grams,
        'dried_grams_per_unit', (SELECT g.dried_grams_per_unit
                                 FROM posledger_private.catalogue_grams(current_date, ARRAY[v_product.sku]) g), 'as_of', current_date,
        'gtins', ARRAY(SELECT g.gtin FROM public.product_gtins g WHERE g.sku = v_product.sku ORDER BY g.gtin),
        'created_at', v_product.created_at, 'updated_at', v_product.updated_at);
END $$;

REVOKE ALL ON FUNCTION catalogue_product(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION catalogue_product(text) TO posledger_app, posledger_readonly;
COMMENT ON FUNCTION catalogue_product(text) IS 'One product of the catalogue by sku or GTIN (8/12/13/14 digits): its class, what it counts toward, its GTINs and its dried-equivalent grams per unit today; IV404 when unknown.';
