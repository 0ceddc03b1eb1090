-- The law at the till (issue 15): a product catalogue shared by every store, the dried-equivalency
-- factors of Cannabis Act Schedule 3 as data with the date each came into force, the stores' purchase
-- limits, batch expiry, and the values and grams each sale line was judged by. A sale stores the grams
-- and class it was judged by on its order lines, so a later correction of the catalogue or of a factor
-- never changes a past sale's record (docs/decisions.md).

-- What each regulated class counts toward in one sale: dried-equivalent grams, plants, or nothing.
CREATE TABLE product_classes (
    product_class text PRIMARY KEY,
    counts_toward text NOT NULL CHECK (counts_toward IN ('dried_grams', 'plants', 'nothing')),
    description   text NOT NULL
);
INSERT INTO product_classes (product_class, counts_toward, description) VALUES
    ('dried', 'dried_grams', 'dried cannabis: flower, pre-rolls, milled'),
    ('fresh', 'dried_grams', 'fresh cannabis'),
    ('solid_edible', 'dried_grams', 'solids containing cannabis: edibles, capsules'),
    ('non_solid', 'dried_grams', 'non-solids containing cannabis other than beverages: oils, sprays'),
    ('beverage', 'dried_grams', 'cannabis beverages'),
    ('concentrate', 'dried_grams', 'cannabis concentrates: extracts, vapes, hash'),
    ('seed', 'dried_grams', 'cannabis plant seeds'),
    ('topical', 'dried_grams', 'cannabis topicals: counted as a solid (g) or a non-solid (mL)'),
    ('plant', 'plants', 'cannabis plants: counted against the plant limit, not in grams'),
    ('accessory', 'nothing', 'accessories: no cannabis'),
    ('non_cannabis', 'nothing', 'other products without cannabis');

-- How much of a class, in its unit, equals 1 g of dried cannabis, from the day it came into force. A
-- product whose class and unit have no row here cannot be derived: it must state its grams. mL are
-- taken as g (the labels of non-solids and beverages give mL; the Act counts g).
CREATE TABLE dried_equivalency_factors (
    product_class         text NOT NULL REFERENCES product_classes (product_class),
    net_unit              text NOT NULL CHECK (net_unit IN ('g', 'mL', 'count')),
    in_force_from         date NOT NULL,
    amount_per_dried_gram numeric NOT NULL CHECK (amount_per_dried_gram > 0),
    source                text NOT NULL,
    PRIMARY KEY (product_class, net_unit, in_force_from)
);
INSERT INTO dried_equivalency_factors (product_class, net_unit, in_force_from, amount_per_dried_gram, source)
SELECT f.product_class, f.net_unit, f.in_force_from::date, f.amount, f.source
FROM (VALUES
    ('dried', 'g', '2018-10-17', 1, 'Cannabis Act, Schedule 3, item 1'),
    ('fresh', 'g', '2018-10-17', 5, 'Cannabis Act, Schedule 3, item 2'),
    ('solid_edible', 'g', '2018-10-17', 15, 'Cannabis Act, Schedule 3, item 3'),
    ('topical', 'g', '2018-10-17', 15, 'Cannabis Act, Schedule 3, item 3 (a solid)'),
    ('non_solid', 'mL', '2018-10-17', 70, 'Cannabis Act, Schedule 3, item 4'),
    ('non_solid', 'g', '2018-10-17', 70, 'Cannabis Act, Schedule 3, item 4'),
    ('topical', 'mL', '2018-10-17', 70, 'Cannabis Act, Schedule 3, item 4 (a non-solid)'),
    ('beverage', 'mL', '2018-10-17', 70, 'Cannabis Act, Schedule 3, item 4 (before 2022-12-02)'),
    ('beverage', 'g', '2018-10-17', 70, 'Cannabis Act, Schedule 3, item 4 (before 2022-12-02)'),
    ('beverage', 'mL', '2022-12-02', 570, 'Cannabis Act, Schedule 3, item 4.1 (SOR/2022-229)'),
    ('beverage', 'g', '2022-12-02', 570, 'Cannabis Act, Schedule 3, item 4.1 (SOR/2022-229)'),
    ('concentrate', 'g', '2018-10-17', 0.25, 'Cannabis Act, Schedule 3, item 5'),
    ('seed', 'count', '2018-10-17', 1, 'Cannabis Act, Schedule 3, item 6')
) AS f(product_class, net_unit, in_force_from, amount, source);

-- The provincial catalogue's categories and the class each means (lower case; posledger catalogue load
-- matches case-insensitively). A category missing here makes a row bad: add it, do not guess.
CREATE TABLE catalogue_categories (
    category      text PRIMARY KEY CHECK (category = lower(category)),
    product_class text NOT NULL REFERENCES product_classes (product_class)
);
INSERT INTO catalogue_categories (category, product_class) VALUES
    ('dried flower', 'dried'), ('flower', 'dried'), ('pre-rolls', 'dried'), ('pre-roll', 'dried'),
    ('milled flower', 'dried'), ('fresh cannabis', 'fresh'), ('edibles', 'solid_edible'),
    ('capsules', 'solid_edible'), ('oils', 'non_solid'), ('sprays', 'non_solid'), ('beverages', 'beverage'),
    ('extracts', 'concentrate'), ('vapes', 'concentrate'), ('concentrates', 'concentrate'),
    ('hash', 'concentrate'), ('seeds', 'seed'), ('topicals', 'topical'), ('plants', 'plant'),
    ('accessories', 'accessory'), ('non-cannabis', 'non_cannabis');

-- One row per product, the same for every store (a reference table on Citus). The dried-equivalent
-- grams of one unit are stated_dried_grams when the label states them, else net_content divided by
-- the factor in force on the day of the sale.
CREATE TABLE products (
    sku                text PRIMARY KEY CHECK (sku <> ''),
    name               text NOT NULL CHECK (name <> ''),
    brand              text,
    category           text,   -- as the catalogue file spelt it
    product_class      text NOT NULL REFERENCES product_classes (product_class),
    net_content        numeric CHECK (net_content > 0),
    net_unit           text CHECK (net_unit IN ('g', 'mL', 'count')),
    stated_dried_grams numeric CHECK (stated_dried_grams >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT products_net_content_has_unit CHECK ((net_content IS NULL) = (net_unit IS NULL))
);

-- A product's barcodes, each as its GTIN-14 (GTIN-8/12/13 padded with zeros), GS1 check digit verified.
CREATE TABLE product_gtins (
    gtin text PRIMARY KEY CONSTRAINT product_gtins_check_digit CHECK (
        gtin ~ '^[0-9]{14}$'
        AND (3 * (substr(gtin, 1, 1)::integer + substr(gtin, 3, 1)::integer + substr(gtin, 5, 1)::integer
                  + substr(gtin, 7, 1)::integer + substr(gtin, 9, 1)::integer + substr(gtin, 11, 1)::integer
                  + substr(gtin, 13, 1)::integer)
             + substr(gtin, 2, 1)::integer + substr(gtin, 4, 1)::integer + substr(gtin, 6, 1)::integer
             + substr(gtin, 8, 1)::integer + substr(gtin, 10, 1)::integer + substr(gtin, 12, 1)::integer
             + substr(gtin, 14, 1)::integer) % 10 = 0),
    sku  text NOT NULL REFERENCES products (sku)
);
CREATE INDEX product_gtins_by_sku ON product_gtins (sku);

-- The law per store: the purchase limit in dried-equivalent grams (Ontario: 30), the plants one sale
-- may hold (4), what a sale does with a sku the catalogue does not know (refuse it, or count it as
-- zero grams and flag it in the result), and the time zone whose calendar dates decide expiry and
-- which factors are in force.
ALTER TABLE stores
    ADD COLUMN purchase_limit_grams numeric NOT NULL DEFAULT 30
        CONSTRAINT stores_purchase_limit_grams_not_negative CHECK (purchase_limit_grams >= 0),
    ADD COLUMN plant_limit integer NOT NULL DEFAULT 4
        CONSTRAINT stores_plant_limit_not_negative CHECK (plant_limit >= 0),
    ADD COLUMN uncatalogued_skus text NOT NULL DEFAULT 'refuse'
        CONSTRAINT stores_uncatalogued_skus_known CHECK (uncatalogued_skus IN ('refuse', 'count_zero')),
    ADD COLUMN time_zone text NOT NULL DEFAULT 'America/Toronto'
        CONSTRAINT stores_time_zone_known CHECK (('epoch'::timestamptz AT TIME ZONE time_zone) IS NOT NULL);
-- Stores that existed before the catalogue sold without one: refusing every uncatalogued sku the moment
-- this migration commits would stop their tills. They count such skus as zero, flagged in each result,
-- until the catalogue is loaded and the store switches to refuse (docs/runbook.md). New stores refuse.
UPDATE stores SET uncatalogued_skus = 'count_zero';

-- A batch's expiry date: from the shipment, an adjustment, or a scan. As GS1 reads AI (17), the batch
-- may be sold on that date and not after it. NULL: not known.
ALTER TABLE ocs_inventory ADD COLUMN expiry_date date;

-- What each order line was judged and priced by, as of the sale: the class and dried-equivalent grams
-- of one unit, the unit price, and this part's share of its sale line's discount and tax (a line split
-- across batches shares them out to the cent). NULL on lines sold before the catalogue existed.
ALTER TABLE pos_order_lines
    ADD COLUMN product_class text,
    ADD COLUMN dried_grams_per_unit numeric,
    ADD COLUMN unit_price numeric,
    ADD COLUMN discount numeric,
    ADD COLUMN tax numeric;

-- A sale line as the sale reads it: what a scan read (its GTIN, the sku the catalogue gives it, its
-- lot and expiry) and the sku and batch it gives a line that names none, money rounded to cents (the
-- discount as an amount), and the catalogue's class of the product, what it counts toward, and the grams
-- of a unit.
CREATE TYPE posledger_private.pos_sale_line AS (
    line_no integer, sku text, product_name text, batch_lot text, quantity integer,
    unit_price numeric, discount numeric, tax numeric,
    scanned_gtin text, scanned_sku text, scanned_lot text, scanned_expiry date,
    product_class text, counts_toward text, dried_grams_per_unit numeric
);

-- Batches with an expiry date and units on hand, with the days left in their store's calendar (0:
-- its last day of sale; negative: expired, no longer sold). DBAs filter: WHERE days_left <= 30.
CREATE VIEW batches_expiring AS
SELECT i.store_id, s.name AS store_name, i.sku, i.batch_lot, i.expiry_date,
       i.expiry_date - (now() AT TIME ZONE s.time_zone)::date AS days_left,
       i.status, i.quantity_on_hand, i.quantity_available
FROM ocs_inventory i
JOIN stores s ON s.id = i.store_id
WHERE i.expiry_date IS NOT NULL AND i.quantity_on_hand > 0;

COMMENT ON TABLE product_classes IS 'The regulated classes of products and what each counts toward in one sale: dried-equivalent grams, plants, or nothing.';
COMMENT ON TABLE dried_equivalency_factors IS 'Cannabis Act Schedule 3 as data: how much of a class, in its unit, equals 1 g dried, from the day it came into force.';
COMMENT ON TABLE catalogue_categories IS 'The provincial catalogue''s categories (lower case) and the class each means; posledger catalogue load reads it.';
COMMENT ON TABLE products IS 'The product catalogue, the same for every store: sku, class, net content, stated dried-equivalent grams. Loaded by load_catalogue().';
COMMENT ON TABLE product_gtins IS 'The barcodes of each product as GTIN-14, GS1 check digit verified; a scan finds its sku here.';
COMMENT ON VIEW batches_expiring IS 'Batches with an expiry date and units on hand, with the days left in their store''s calendar; filter WHERE days_left <= N.';
COMMENT ON COLUMN stores.purchase_limit_grams IS 'The most dried-equivalent grams one sale may hold (Ontario: 30).';
COMMENT ON COLUMN stores.plant_limit IS 'The most cannabis plants one sale may hold (4).';
COMMENT ON COLUMN stores.uncatalogued_skus IS 'A sale of a sku the catalogue does not know: refuse (IV404) or count_zero (0 g, flagged in the result).';
COMMENT ON COLUMN stores.time_zone IS 'The store''s time zone: its calendar date decides expiry and which equivalency factors are in force.';
COMMENT ON COLUMN ocs_inventory.expiry_date IS 'The batch''s expiry date (GS1 AI 17): sold on it, not after it. NULL: unknown.';
COMMENT ON COLUMN pos_order_lines.dried_grams_per_unit IS 'The dried-equivalent grams of one unit the sale was judged by, as of the sale.';
