"""The product catalogue (issue 15): load_catalogue checks every row of the provincial item catalogue in the
database and names each bad one by its line; the CLI reads the CSV and shows a product by sku or GTIN."""

import io
import json
from decimal import Decimal

import psycopg
import pytest

from conftest import login_as, posledger_cli
from posledger import InvalidSale, NotFound, catalogue_product, load_catalogue
from posledger.catalogue import CatalogueFormatError, read_catalogue
from posledger.migrations import SQL_DIR
from test_cli import ok_json

SAMPLE = SQL_DIR / "demo" / "ocs_catalogue_sample.csv"
HEADER = "Variant Number,GTIN,Brand,Product Name,Category,Net Content,Net Content Unit of Measure"


def sample_rows(text=None):
    return read_catalogue(io.StringIO(text if text is not None else SAMPLE.read_text(encoding="utf-8-sig")))


def products(db):
    """{sku: (name, product_class, net_content, net_unit, gtins, updated_at)} of the whole catalogue."""
    found = {row[0]: row[1:] for row in db.execute(
        "SELECT p.sku, p.name, p.product_class, p.net_content, p.net_unit,"
        " ARRAY(SELECT g.gtin FROM product_gtins g WHERE g.sku = p.sku ORDER BY g.gtin), p.updated_at"
        " FROM products p ORDER BY p.sku")}
    db.commit()
    return found


def test_the_sample_catalogue_loads_and_loading_it_again_changes_nothing(db):
    first = load_catalogue(db, sample_rows())
    assert {key: first[key] for key in ("rows", "inserted", "updated", "unchanged", "skipped")} == {
        "rows": 9, "inserted": 9, "updated": 0, "unchanged": 0, "skipped": 0}
    loaded = products(db)
    assert loaded["102345_355ml___"][1:4] == ("beverage", Decimal("355"), "mL")
    assert loaded["105500_1___"][1:4] == ("accessory", Decimal("1"), "count")    # "each" is a count
    assert loaded["101955_3.5g___"][4] == ["00627701000056", "00627701000063"]     # "a; b": two GTINs
    again = load_catalogue(db, sample_rows())
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 9)
    assert products(db) == loaded   # updated_at included: nothing was written


def test_a_changed_row_is_the_one_update_and_the_gtin_it_dropped_is_deleted(db):
    load_catalogue(db, sample_rows())
    before = products(db)
    text = SAMPLE.read_text(encoding="utf-8-sig").replace("0627701000056; 0627701000063", "0627701000056")
    result = load_catalogue(db, sample_rows(text))
    assert (result["inserted"], result["updated"], result["unchanged"]) == (0, 1, 8)
    after = products(db)
    assert after["101955_3.5g___"][4] == ["00627701000056"]
    assert after["101955_3.5g___"][5] > before["101955_3.5g___"][5]
    assert {sku: row for sku, row in after.items() if sku != "101955_3.5g___"} == {
        sku: row for sku, row in before.items() if sku != "101955_3.5g___"}
    with pytest.raises(NotFound):
        catalogue_product(db, "0627701000063")


# Each bad row of one file (line 1 is the header) with the field its problem names; lines 2 and 9 are good.
BAD_FILE = "\n".join([
    HEADER,
    "GOOD-1,0627701000018,B,Good pre-roll,Pre-Rolls,1,g",
    "BAD-CHECK,0627701000019,B,Wrong check digit,Pre-Rolls,1,g",
    "BAD-CATEGORY,,B,Unknown category,Tinctures,30,mL",
    "BAD-UNIT,,B,No unit,Dried Flower,3.5,",
    "GOOD-1,,B,The same sku again,Pre-Rolls,1,g",
    "BAD-OWNED,0627701000087,B,GTIN of another sku,Oils,30,mL",
    "BAD-FACTOR,,B,Gummies in mL,Edibles,10,mL",
    "GOOD-2,062770100014,B,Grinder,Accessories,,",
]) + "\n"
BAD_LINES = {3: ("BAD-CHECK", "gtins[0]"), 4: ("BAD-CATEGORY", "category"), 5: ("BAD-UNIT", "net_unit"),
             6: ("GOOD-1", "sku"), 7: ("BAD-OWNED", "gtins"), 8: ("BAD-FACTOR", "stated_dried_grams")}


@pytest.fixture
def owner_of_the_oils_gtin(db):
    load_catalogue(db, sample_rows(f"{HEADER}\nOIL-1,0627701000087,B,Oil,Oils,30,mL\n"))
    return products(db)


def test_every_bad_row_is_named_by_its_line_and_nothing_loads(db, owner_of_the_oils_gtin):
    with pytest.raises(InvalidSale) as refused:
        load_catalogue(db, sample_rows(BAD_FILE))
    detail = refused.value.detail
    assert {row["line"]: (row["sku"], [p["field"] for p in row["problems"]]) for row in detail["rows"]} == {
        line: (sku, [field]) for line, (sku, field) in BAD_LINES.items()}
    assert detail["bad_rows"] == 6 and detail["total"] == 6
    assert "GTIN 00627701000087 already belongs to sku OIL-1" in json.dumps(detail)
    assert products(db) == owner_of_the_oils_gtin


def test_skip_bad_loads_the_good_rows_and_lists_the_skipped_ones(db, owner_of_the_oils_gtin):
    result = load_catalogue(db, sample_rows(BAD_FILE), skip_bad=True)
    assert (result["inserted"], result["skipped"]) == (2, 6)
    assert [row["line"] for row in result["skipped_rows"]] == sorted(BAD_LINES)
    assert set(products(db)) == {"GOOD-1", "GOOD-2", "OIL-1"}
    assert products(db)["GOOD-1"][0] == "Good pre-roll"   # the first of the two rows of the sku won


def test_a_sku_twice_in_one_file_is_found_across_chunks(db):
    rows = sample_rows(f"{HEADER}\nA,,B,a,Pre-Rolls,1,g\nB,,B,b,Pre-Rolls,1,g\nA,,B,a again,Pre-Rolls,1,g\n")
    with pytest.raises(InvalidSale) as refused:
        load_catalogue(db, rows, chunk_size=2)
    assert [(row["line"], row["problems"][0]["problem"]) for row in refused.value.detail["rows"]] == [
        (4, "A is also on line 2 of this load")]
    assert products(db) == {}   # the first chunk was loaded, then rolled back with the second


def test_the_same_gtin_on_two_rows_of_one_load_is_a_problem_of_the_second(db):
    with pytest.raises(InvalidSale) as refused:
        load_catalogue(db, sample_rows(f"{HEADER}\nA,0627701000018,B,a,Pre-Rolls,1,g\n"
                                       f"B,627701000018,B,b,Pre-Rolls,1,g\n"))
    assert [(row["line"], row["problems"][0]["problem"]) for row in refused.value.detail["rows"]] == [
        (3, "GTIN 00627701000018 is also on line 2 (sku A) of this load")]


def test_a_payload_that_is_not_a_load_is_refused_whole(db):
    with pytest.raises(InvalidSale) as refused:
        load_catalogue(db, [])
    assert [p["field"] for p in refused.value.detail["problems"]] == ["rows"]


def test_values_a_csv_cannot_hold_are_problems_of_their_row_too(db):
    rows = [{"line": 5, "sku": "A", "name": "a", "category": "dried flower", "net_content": -1, "net_unit": "kg",
             "stated_dried_grams": -0.5, "gtins": "0627701000018"},
            "not a row",
            {"sku": "B", "name": "b", "category": "ACCESSORIES", "net_content": 2, "net_unit": "Units",
             "gtins": [627701000018]}]
    with pytest.raises(InvalidSale) as refused:
        load_catalogue(db, rows)
    assert [(row["line"], [p["field"] for p in row["problems"]]) for row in refused.value.detail["rows"]] == [
        (5, ["net_content", "net_unit", "stated_dried_grams", "gtins"]), (2, ["$"]), (3, ["gtins[0]"])]   # line: n
    assert products(db) == {}


def test_a_line_number_sent_as_a_decimal_is_read_as_its_whole_number(db):
    # JSON 1.0 is a whole number; its text, "1.0", is not an integer's (it was a raw 22P02).
    result = load_catalogue(db, [{"line": 7.0, "sku": "A", "name": "a", "category": "accessories", "gtins": []}])
    assert result["inserted"] == 1
    with pytest.raises(InvalidSale) as refused:
        load_catalogue(db, [{"line": 2.0, "sku": "", "name": "b", "category": "accessories", "gtins": []}])
    assert [row["line"] for row in refused.value.detail["rows"]] == [2]


def test_a_product_is_shown_by_its_sku_or_by_any_length_of_its_gtin(db):
    load_catalogue(db, sample_rows())
    gummies = catalogue_product(db, "OCS-GUMMIES-10")
    assert (gummies["product_class"], gummies["counts_toward"], gummies["gtins"]) == (
        "solid_edible", "dried_grams", ["00627701000025"])
    assert round(Decimal(str(gummies["dried_grams_per_unit"])), 3) == Decimal("0.667")   # 10 g / 15
    for gtin in ("627701000025", "0627701000025", "00627701000025"):
        assert catalogue_product(db, gtin)["sku"] == "OCS-GUMMIES-10"
    grams = {sku: catalogue_product(db, sku)["dried_grams_per_unit"] for sku in (
        "OCS-VAPE-05", "OCS-PREROLL-3PK", "103010_30ml___", "102345_355ml___", "105500_1___")}
    assert {sku: round(Decimal(str(value)), 4) for sku, value in grams.items()} == {
        "OCS-VAPE-05": Decimal("2"), "OCS-PREROLL-3PK": Decimal("1.5"), "103010_30ml___": Decimal("0.4286"),
        "102345_355ml___": Decimal("0.6228"), "105500_1___": Decimal("0")}


def test_an_unknown_product_is_not_found_by_name(db):
    with pytest.raises(NotFound) as refused:
        catalogue_product(db, "0627701000018")
    assert refused.value.detail == {"missing": [{"product": "0627701000018"}]}


def test_the_till_loads_and_shows_and_the_dba_only_shows(db, dsn):
    with psycopg.connect(login_as(dsn, "posledger_app")) as till:
        assert load_catalogue(till, sample_rows())["inserted"] == 9
        assert catalogue_product(till, "OCS-VAPE-05")["net_content"] == 0.5
    with psycopg.connect(login_as(dsn, "posledger_readonly")) as dba:
        assert catalogue_product(dba, "OCS-VAPE-05")["sku"] == "OCS-VAPE-05"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            load_catalogue(dba, sample_rows())


def test_a_file_without_the_catalogues_columns_names_the_missing_ones():
    with pytest.raises(CatalogueFormatError) as refused:
        sample_rows("variant_number,gtin,BRAND,Name\nA,,B,a\n")
    assert str(refused.value).endswith("missing columns Category, Net Content, Net Content Unit of Measure")


# The command line, as a real subprocess.

def test_catalogue_load_prints_the_counts_and_loading_again_changes_nothing(db, dsn):
    done = posledger_cli("catalogue", "load", str(SAMPLE), "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert "│ 9    │ 9        │ 0       │ 0         │ 0       │" in done.stdout, done.stdout
    again = ok_json("catalogue", "load", "-", "--dsn", dsn, stdin=posledger_cli("example", "catalogue").stdout)
    assert (again["inserted"], again["unchanged"]) == (0, 9)


def test_catalogue_load_with_bad_rows_prints_one_line_per_row_and_exits_1(db, dsn, tmp_path,
                                                                         owner_of_the_oils_gtin):
    bad = tmp_path / "catalogue.csv"
    bad.write_text(BAD_FILE)
    done = posledger_cli("catalogue", "load", str(bad), "--dsn", dsn)
    assert done.returncode == 1
    assert "IV400 InvalidSale" in done.stderr
    for line, (sku, field) in BAD_LINES.items():
        assert f"  line {line} (sku {sku}): {field}: " in done.stderr, done.stderr
    assert products(db) == owner_of_the_oils_gtin
    skipped = posledger_cli("catalogue", "load", str(bad), "--skip-bad", "--dsn", dsn)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped line 8 (sku BAD-FACTOR): stated_dried_grams: is required" in skipped.stdout
    assert set(products(db)) == {"GOOD-1", "GOOD-2", "OIL-1"}


def test_catalogue_load_of_a_file_that_is_not_a_catalogue_exits_1_naming_the_columns(dsn, tmp_path):
    wrong = tmp_path / "asn.csv"
    wrong.write_text((SQL_DIR / "demo" / "ocs_asn_sample.csv").read_text())
    done = posledger_cli("catalogue", "load", str(wrong), "--dsn", dsn)
    assert done.returncode == 1
    assert done.stderr == ("error CatalogueFormatError: not a provincial item catalogue: missing columns "
                           "GTIN, Product Name, Category, Net Content, Net Content Unit of Measure\n")   # SKU is there


def test_catalogue_show_by_gtin_and_an_unknown_one_exits_1(db, dsn):
    ok_json("catalogue", "load", str(SAMPLE), "--dsn", dsn)
    shown = posledger_cli("catalogue", "show", "627701000032", "--dsn", dsn)
    assert shown.returncode == 0, shown.stderr
    assert "sku: OCS-VAPE-05" in shown.stdout and "dried_grams_per_unit: 2" in shown.stdout
    unknown = posledger_cli("catalogue", "show", "NOPE", "--dsn", dsn, "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stderr)["detail"] == {"missing": [{"product": "NOPE"}]}
