"""The law at the till (issue 15): the 30 g dried-equivalent limit and the plant limit, judged in the
database from the catalogue and the factors in force, whatever the client sends; line values; expiry."""

from decimal import Decimal

import pytest

from conftest import (
    add_stock,
    catalogue,
    item,
    readme_sql,
    receive,
    record_sale,
    return_sale,
    sale_payload,
    shipment_line,
)
from posledger import (
    BatchBlocked,
    InsufficientStock,
    InvalidSale,
    LimitExceeded,
    NotFound,
    adjust_inventory,
    count_inventory,
)


def product(db, store, sku, product_class, quantity=100, batch_lot=None, **columns):
    """A catalogued product with stock in the store."""
    catalogue(db, sku, product_class, **columns)
    add_stock(db, store, sku, quantity, batch_lot)


def dried(db, store, sku="FLOWER-1G", grams="1", quantity=100):
    product(db, store, sku, "dried", quantity, net_content=Decimal(grams), net_unit="g")
    return sku


def grams_of(result):
    return Decimal(str(result["purchase_limit"]["dried_grams"]))


# The limit

def test_exactly_30_grams_is_sold_and_one_more_gram_is_refused(db, store):
    sku = dried(db, store)
    assert grams_of(record_sale(db, sale_payload(store, item(sku, 30)))) == 30
    with pytest.raises(LimitExceeded) as refused:
        record_sale(db, sale_payload(store, item(sku, 31)))
    assert refused.value.detail["limit_grams"] == 30
    assert Decimal(str(refused.value.detail["dried_grams"])) == 31


def test_a_thousandth_of_a_gram_over_is_refused(db, store):
    product(db, store, "EXACT", "dried", stated_dried_grams=Decimal("30"))
    product(db, store, "OVER", "dried", stated_dried_grams=Decimal("30.001"))
    record_sale(db, sale_payload(store, item("EXACT", 1)))
    with pytest.raises(LimitExceeded) as refused:
        record_sale(db, sale_payload(store, item("OVER", 1)))
    assert refused.value.detail["dried_grams"] == 30.001


@pytest.mark.parametrize(("product_class", "net_content", "net_unit", "one_unit"), [
    ("dried", "3.5", "g", "3.5"),
    ("fresh", "10", "g", "2"),            # 5 g fresh = 1 g dried
    ("solid_edible", "30", "g", "2"),     # 15 g of solids = 1 g
    ("topical", "45", "g", "3"),          # a solid topical counts as a solid
    ("topical", "140", "mL", "2"),        # a lotion counts as a non-solid
    ("non_solid", "35", "mL", "0.5"),     # 70 g of non-solids = 1 g
    ("beverage", "1140", "mL", "2"),      # 570 g of beverages = 1 g since 2022-12-02
    ("concentrate", "1", "g", "4"),       # 0.25 g of concentrates = 1 g
    ("seed", "5", "count", "5"),          # 1 seed = 1 g
    ("accessory", None, None, "0"),
    ("non_cannabis", None, None, "0"),
    ("plant", "1", "count", "0"),         # plants count against the plant limit, not in grams
])
def test_every_class_counts_by_its_factor(db, store, product_class, net_content, net_unit, one_unit):
    columns = {} if net_content is None else {"net_content": Decimal(net_content), "net_unit": net_unit}
    product(db, store, "P", product_class, **columns)
    result = record_sale(db, sale_payload(store, item("P", 2)))
    assert grams_of(result) == 2 * Decimal(one_unit)
    row = db.execute("SELECT product_class, dried_grams_per_unit FROM pos_order_lines").fetchone()
    assert row == (product_class, Decimal(one_unit))


def test_the_beverage_factor_is_the_one_in_force_on_the_day(db):
    db.execute("INSERT INTO products (sku, name, product_class, net_content, net_unit)"
               " VALUES ('DRINK', 'Drink', 'beverage', 355, 'mL')")
    per_unit = db.execute(
        "SELECT g.dried_grams_per_unit FROM unnest(ARRAY['2022-12-01', '2022-12-02']) d,"
        " posledger_private.catalogue_grams(d::date, ARRAY['DRINK']) g ORDER BY d").fetchall()
    db.rollback()
    assert [round(g, 6) for (g,) in per_unit] == [round(Decimal(355) / 70, 6), round(Decimal(355) / 570, 6)]


def test_mixed_classes_add_up_and_each_line_is_named(db, store):
    dried(db, store, "FLOWER", "3.5")
    product(db, store, "GUMMIES", "solid_edible", net_content=Decimal("15"), net_unit="g")
    product(db, store, "PAPERS", "accessory")
    with pytest.raises(LimitExceeded) as refused:
        record_sale(db, sale_payload(store, item("FLOWER", 8), item("GUMMIES", 3), item("PAPERS", 50)))
    detail = refused.value.detail
    assert Decimal(str(detail["dried_grams"])) == 31            # 28 + 3 + 0
    assert [(line["line_no"], line["sku"], Decimal(str(line["dried_grams"]))) for line in detail["lines"]] == [
        (1, "FLOWER", 28), (2, "GUMMIES", 3), (3, "PAPERS", 0)]
    assert db.execute("SELECT count(*) FROM pos_orders").fetchone() == (0,)


def test_lines_of_one_sku_are_summed(db, store):
    sku = dried(db, store)
    with pytest.raises(LimitExceeded):
        record_sale(db, sale_payload(store, item(sku, 20), item(sku, 11)))


def test_a_lenient_sale_over_the_limit_is_refused_too(db, store):
    sku = dried(db, store, quantity=5)
    lenient = {"policy": "lenient", "authorized_by": "manager"}
    with pytest.raises(LimitExceeded):
        record_sale(db, sale_payload(store, item(sku, 31), **lenient))


def test_a_store_sets_its_own_limit(db, store):
    sku = dried(db, store)
    db.execute("UPDATE stores SET purchase_limit_grams = 10 WHERE id = %s", [store])
    db.commit()
    record_sale(db, sale_payload(store, item(sku, 10)))
    with pytest.raises(LimitExceeded):
        record_sale(db, sale_payload(store, item(sku, 11)))


def test_plants_are_counted_against_their_own_limit(db, store):
    product(db, store, "CLONE", "plant", net_content=Decimal(1), net_unit="count")
    sku = dried(db, store)
    result = record_sale(db, sale_payload(store, item("CLONE", 4), item(sku, 30)))
    assert result["purchase_limit"]["plants"] == 4
    with pytest.raises(LimitExceeded) as refused:
        record_sale(db, sale_payload(store, item("CLONE", 5)))
    assert (refused.value.detail["plants"], refused.value.detail["plant_limit"]) == (5, 4)


def test_a_catalogue_change_after_a_sale_changes_neither_its_record_nor_its_replay(db, store):
    sku = dried(db, store, grams="3.5")
    sale = sale_payload(store, item(sku, 8))
    first = record_sale(db, sale)
    db.execute("UPDATE products SET stated_dried_grams = 5 WHERE sku = %s", [sku])
    db.commit()
    again = record_sale(db, sale)   # now 40 g: a new sale would be refused; the replay is the old sale
    assert again["replayed"] and again["purchase_limit"] == first["purchase_limit"]
    assert db.execute("SELECT dried_grams_per_unit FROM pos_order_lines").fetchone() == (Decimal("3.5"),)
    with pytest.raises(LimitExceeded):
        record_sale(db, sale_payload(store, item(sku, 8)))


def test_returns_are_not_judged_by_the_limit(db, store):
    sku = dried(db, store)
    order = record_sale(db, sale_payload(store, item(sku, 30)))
    back = return_sale(db, {"store_id": store, "reference": "RET-1", "order_id": order["id"],
                            "lines": [{"line_no": 1, "quantity": 30}]})
    assert back["replayed"] is False
    assert grams_of(record_sale(db, sale_payload(store, item(sku, 30)))) == 30


def test_a_sku_missing_from_the_catalogue_is_refused_by_default(db, store):
    db.execute("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand, quantity_available)"
               " VALUES (%s, 'UNKNOWN', 5, 5)", [store])
    db.commit()
    with pytest.raises(NotFound) as refused:
        record_sale(db, sale_payload(store, item("UNKNOWN", 1)))
    assert refused.value.detail["missing"] == [{"sku": "UNKNOWN", "catalogue": "not in the catalogue"}]
    db.execute("UPDATE stores SET uncatalogued_skus = 'count_zero' WHERE id = %s", [store])
    db.commit()
    result = record_sale(db, sale_payload(store, item("UNKNOWN", 1)))
    assert result["purchase_limit"]["uncatalogued"] == ["UNKNOWN"]
    assert grams_of(result) == 0


# Line values

def test_line_values_are_rounded_to_cents_and_checked_against_the_totals(db, store):
    product(db, store, "PAPERS", "accessory", batch_lot="A")
    line = {**item("PAPERS", 3), "unit_price": 4.550000000000001, "discount": 10, "discount_type": "percentage",
            "tax": 1.6}
    result = record_sale(db, sale_payload(store, line, subtotal=12.28, tax=1.6, total=13.88))  # 13.65 - 1.37
    assert result["replayed"] is False
    assert db.execute("SELECT unit_price, discount, tax FROM pos_order_lines").fetchone() == (
        Decimal("4.55"), Decimal("1.37"), Decimal("1.60"))
    assert db.execute("SELECT total FROM pos_orders").fetchone() == (Decimal("13.88"),)
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(store, line, subtotal=12.31, tax=1.6, total=13.88))
    assert refused.value.detail["problems"] == [
        {"field": "subtotal", "problem": "is 12.31 but the lines add up to 12.28"}]


def test_a_line_split_across_batches_shares_its_discount_and_tax_to_the_cent(db, store):
    catalogue(db, "PAPERS")
    for lot in ("A", "B", "C"):
        add_stock(db, store, "PAPERS", 1, lot)
    line = {**item("PAPERS", 3), "unit_price": 1, "discount": 0.10, "tax": 0.10}
    record_sale(db, sale_payload(store, line, total=3.00))
    shares = db.execute("SELECT discount, tax FROM pos_order_lines ORDER BY id").fetchall()
    assert sum(d for d, _ in shares) == Decimal("0.10") and sum(t for _, t in shares) == Decimal("0.10")
    assert sorted(d for d, _ in shares) == [Decimal("0.03"), Decimal("0.03"), Decimal("0.04")]


def test_priced_and_unpriced_lines_do_not_mix(db, store):
    catalogue(db, "A")
    catalogue(db, "B")
    add_stock(db, store, "A", 5)
    add_stock(db, store, "B", 5)
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(store, {**item("A", 1), "unit_price": 2}, item("B", 1), total=2))
    assert {"field": "items[1].unit_price", "problem": "is required on every line when any line has one"} in (
        refused.value.detail["problems"])


# Expiry

def test_an_expired_batch_is_refused_by_name_and_skipped_by_fefo(db, store):
    catalogue(db, "SKU")
    add_stock(db, store, "SKU", 5, "EXPIRED")
    add_stock(db, store, "SKU", 5, "LATER")
    add_stock(db, store, "SKU", 5, "SOONER")
    db.execute("UPDATE ocs_inventory SET expiry_date = posledger_private.store_today(s) + CASE batch_lot"
               " WHEN 'EXPIRED' THEN -1 WHEN 'LATER' THEN 60 ELSE 30 END FROM stores s WHERE s.id = store_id")
    db.commit()
    with pytest.raises(BatchBlocked) as refused:
        record_sale(db, sale_payload(store, item("SKU", 1, "EXPIRED")))
    assert [(b["batch"], b["status"]) for b in refused.value.detail["blocked"]] == [("EXPIRED", "expired")]
    result = record_sale(db, sale_payload(store, item("SKU", 7)))
    assert [(u["batch"], u["quantity_deducted"]) for u in result["inventory_updates"]["successful"]] == [
        ("LATER", 2), ("SOONER", 5)]   # by row id; SOONER went first
    with pytest.raises(InsufficientStock) as short:
        record_sale(db, sale_payload(store, item("SKU", 4)))
    assert short.value.detail["short_lines"][0]["available"] == 3


def test_batches_expiring_lists_days_left(db, store):
    catalogue(db, "SKU")
    add_stock(db, store, "SKU", 5, "A")
    db.execute("UPDATE ocs_inventory SET expiry_date = posledger_private.store_today(s) + 10"
               " FROM stores s WHERE s.id = store_id")
    rows = db.execute("SELECT sku, batch_lot, days_left, quantity_on_hand FROM batches_expiring"
                      " WHERE days_left <= 30").fetchall()
    db.commit()
    assert rows == [("SKU", "A", 10, 5)]


def test_a_shipment_brings_its_expiry_date(db, store):
    receive(db, store, shipment_line("SKU", 5, "LOT-1", expiry_date="2031-01-31"))
    assert db.execute("SELECT expiry_date::text FROM ocs_inventory").fetchone() == ("2031-01-31",)


def test_derived_grams_that_repeat_add_up_exactly_to_the_limit(db, store):
    # 10 g of gummies / 15 = 0.666... g a unit; 45 of them weigh 30 g exactly, and exactly 30 g is allowed.
    product(db, store, "GUMMIES", "solid_edible", net_content=Decimal(10), net_unit="g")
    assert grams_of(record_sale(db, sale_payload(store, item("GUMMIES", 45)))) == 30
    with pytest.raises(LimitExceeded):
        record_sale(db, sale_payload(store, item("GUMMIES", 46)))


def test_an_adjustment_sets_or_corrects_an_expiry_date_with_or_without_moving_units(db, store):
    receive(db, store, shipment_line("SKU", 5, "LOT-1", expiry_date="2031-01-31"))
    base = {"store_id": store, "reason_code": "data_entry_error", "note": "label misread", "actor": "manager-1"}
    result = adjust_inventory(db, {**base, "reference": "ADJ-1",
                                   "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "expiry_date": "2030-06-30"}]})
    assert result["adjustments"] == []
    assert result["expiry_dates"] == [{"sku": "SKU", "batch": "LOT-1", "expiry_date": "2030-06-30"}]
    adjust_inventory(db, {**base, "reference": "ADJ-2",
                          "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "quantity": -1, "expiry_date": "2030-07-31"}]})
    assert db.execute("SELECT expiry_date::text, quantity_on_hand FROM ocs_inventory").fetchone() == ("2030-07-31", 4)
    db.commit()
    with pytest.raises(InvalidSale) as refused:
        adjust_inventory(db, {**base, "reference": "ADJ-3",
                              "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "expiry_date": "2030-02-30"},
                                        {"sku": "SKU", "batch_lot": "LOT-1"}]})
    assert [p["field"] for p in refused.value.detail["problems"]] == ["lines[0].expiry_date", "lines[1].quantity"]


def test_the_runbooks_upgrade_lists_what_is_missing_then_makes_every_store_refuse(db, store):
    db.execute("UPDATE stores SET uncatalogued_skus = 'count_zero'")   # as migration 0017 leaves older stores
    db.execute("INSERT INTO ocs_inventory (store_id, sku, quantity_on_hand, quantity_available)"
               " VALUES (%s, 'NOT-LOADED', 3, 3)", [store])
    db.commit()
    listing, switch = (s for s in readme_sql("-- skus with stock", doc="docs/runbook.md").split(";") if s.strip())
    missing = db.execute(listing).fetchall()
    db.execute(switch)
    db.commit()
    assert missing == [("NOT-LOADED",)]
    assert db.execute("SELECT uncatalogued_skus FROM stores").fetchall() == [("refuse",)]
    db.commit()
    with pytest.raises(NotFound):
        record_sale(db, sale_payload(store, item("NOT-LOADED", 1)))


def test_a_null_expiry_date_changes_nothing_and_two_dates_for_one_batch_are_refused(db, store):
    receive(db, store, shipment_line("SKU", 5, "LOT-1", expiry_date="2031-01-31"))
    base = {"store_id": store, "reason_code": "data_entry_error", "note": "n", "actor": "manager-1"}
    adjust_inventory(db, {**base, "reference": "ADJ-1",
                          "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "quantity": 1, "expiry_date": None}]})
    count_inventory(db, {**base, "reference": "COUNT-1", "reason_code": "cycle_count",
                         "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "counted": 6, "expiry_date": None}]})
    assert db.execute("SELECT expiry_date::text FROM ocs_inventory").fetchone() == ("2031-01-31",)
    db.commit()
    with pytest.raises(InvalidSale) as refused:
        adjust_inventory(db, {**base, "reference": "ADJ-2",
                              "lines": [{"sku": "SKU", "batch_lot": "LOT-1", "expiry_date": "2030-01-01"},
                                        {"sku": "SKU", "batch_lot": "LOT-1", "expiry_date": "2031-01-01"}]})
    assert {p["problem"] for p in refused.value.detail["problems"]} == {
        "differs from another line's for the same sku and batch"}
