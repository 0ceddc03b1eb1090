"""Barcode scans (issue 15): posledger_private.gs1_parse reads a scanned GS1 element string - human-readable
with parentheses, raw with FNC1 (chr(29)) ending variable-length fields, or a plain GTIN - into the fields of
a sale line, or names what is wrong with it, and never raises. A Python formatter is the property tests'
oracle."""

import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import add_stock, catalogue, record_sale, sale_payload
from posledger import BatchBlocked, InvalidSale

GS = chr(29)  # FNC1 as scanners transmit it
SET_82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
GTIN_14 = "00012345678905"
FULL = {"gtin": GTIN_14, "batch_lot": "LOT42", "expiry_date": "2027-12-31", "packaged_on_date": "2025-09-01",
        "serial": "SER1"}


def parse_all(db, scans):
    """gs1_parse of many scans in one round trip, in order."""
    rows = db.execute("SELECT posledger_private.gs1_parse(s) FROM unnest(%s::text[]) WITH ORDINALITY u(s, n)"
                      " ORDER BY n", [scans]).fetchall()
    db.commit()
    return [row[0] for row in rows]


def check_digit(body):
    """The GS1 mod-10 check digit of the digits before it: weights 3, 1, 3 ... from the right."""
    return str(-sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body))) % 10)


# The oracle: a record as gs1_parse returns it, and the element strings that say it.

KEYS = {"01": "gtin", "10": "batch_lot", "13": "packaged_on_date", "17": "expiry_date", "21": "serial"}


def yymmdd(iso, last_as_00):
    day = datetime.date.fromisoformat(iso)
    last = (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1) - datetime.timedelta(days=1)
    return day.strftime("%y%m") + ("00" if last_as_00 and day == last else day.strftime("%d"))


def elements(record, order, last_as_00):
    """[(ai, value)] of a record, its AIs in the given order; a last day of a month maybe as DD 00."""
    return [(ai, yymmdd(record[KEYS[ai]], last_as_00) if ai in ("13", "17") else record[KEYS[ai]])
            for ai in order if KEYS[ai] in record]


def bracketed(pairs):
    return "".join(f"({ai}){value}" for ai, value in pairs)


def raw(pairs, fnc1_after_fixed=False):
    """A variable-length field ends at FNC1 unless it is the last; a fixed-length one may be followed by one."""
    return "".join(ai + value + (GS if n < len(pairs) - 1 and (ai in ("10", "21") or fnc1_after_fixed) else "")
                   for n, (ai, value) in enumerate(pairs))


gtins = st.sampled_from([8, 12, 13, 14]).flatmap(
    lambda length: st.text("0123456789", min_size=length - 1, max_size=length - 1)).map(lambda b: b + check_digit(b))
dates = st.dates(datetime.date(2000, 1, 1), datetime.date(2099, 12, 31)).map(datetime.date.isoformat)
set_82_text = st.text(SET_82, min_size=1, max_size=20)
prefixes = st.sampled_from(["", "]C1", "]d2", "]Q3", "]e0", GS, "]C1" + GS])


@st.composite
def records(draw):
    """(the GTIN as printed on the product, the record gs1_parse should return)."""
    gtin = draw(gtins)
    record = {"gtin": gtin.zfill(14)}
    for key, values in (("batch_lot", set_82_text), ("expiry_date", dates), ("packaged_on_date", dates),
                        ("serial", set_82_text)):
        if draw(st.booleans()):
            record[key] = draw(values)
    return gtin, record


# Examples: each form, each AI.

def test_a_scan_in_either_form_gives_its_fields_whatever_the_order_of_its_ais(db):
    scans = {
        "(01)00012345678905(10)LOT42(17)271231(13)250901(21)SER1": FULL,
        "(21)SER1(13)250901(17)271231(10)LOT42(01)00012345678905": FULL,
        f"0100012345678905" f"10LOT42{GS}" "17271231" "13250901" "21SER1": FULL,
        f"21SER1{GS}13250901" f"10LOT42{GS}" "0100012345678905" "17271231": FULL,
        "(01)00012345678905": {"gtin": GTIN_14},
        "0100012345678905": {"gtin": GTIN_14},
        "(10)LOT-7/B(01)00012345678905": {"gtin": GTIN_14, "batch_lot": "LOT-7/B"},
        f"0100012345678905{GS}17271231{GS}": {"gtin": GTIN_14, "expiry_date": "2027-12-31"},  # stray FNC1s
        # Set 82 allows parentheses in a lot; only the raw form can carry them.
        "0100012345678905" "10LOT(A)": {"gtin": GTIN_14, "batch_lot": "LOT(A)"},
        "(01)00012345678905(21)" + "S" * 20: {"gtin": GTIN_14, "serial": "S" * 20},
        "(01)00012345678905(10)" + SET_82[7:27]: {"gtin": GTIN_14, "batch_lot": SET_82[7:27]},
        "0100012345678905" "10" + SET_82[:20]: {"gtin": GTIN_14, "batch_lot": SET_82[:20]},
        "(01)00012345678905(13)991231(17)000101": {"gtin": GTIN_14, "packaged_on_date": "2099-12-31",
                                                   "expiry_date": "2000-01-01"},  # the century is always 20
        "(01)00012345678905\r\n": {"gtin": GTIN_14},  # a keyboard-wedge scanner's Enter
    }
    assert dict(zip(scans, parse_all(db, list(scans)), strict=True)) == scans


def test_day_00_is_the_last_day_of_its_month(db):
    scans = {"(01)00012345678905(17)270200": "2027-02-28", "(01)00012345678905(17)280200": "2028-02-29",
             "(01)00012345678905(17)250400": "2025-04-30", "(01)00012345678905(17)251200": "2025-12-31"}
    assert [p["expiry_date"] for p in parse_all(db, list(scans))] == list(scans.values())
    assert parse_all(db, ["(13)250600(01)00012345678905"]) == [{"gtin": GTIN_14, "packaged_on_date": "2025-06-30"}]


def test_symbology_identifiers_and_a_leading_fnc1_are_dropped(db):
    forms = ["(01)00012345678905(10)LOT42", f"0100012345678905{GS}10LOT42", f"10LOT42{GS}0100012345678905"]
    scans = [prefix + scan for prefix in ["]C1", "]d2", "]Q3", "]e0", "]J1", GS, "]d2" + GS] for scan in forms]
    assert parse_all(db, scans) == [{"gtin": GTIN_14, "batch_lot": "LOT42"}] * len(scans)


def test_a_plain_gtin_is_a_product_without_a_batch_padded_to_14_digits(db):
    scans = {"96385074": "00000096385074", "036000291452": "00036000291452", "4006381333931": "04006381333931",
             GTIN_14: GTIN_14, "]E04006381333931": "04006381333931", "]E496385074": "00000096385074",
             " 036000291452\n": "00036000291452"}
    assert parse_all(db, list(scans)) == [{"gtin": gtin} for gtin in scans.values()]


def test_dates_are_iso_whatever_the_sessions_datestyle(db):
    db.execute("SET DateStyle = 'SQL, DMY'")
    assert parse_all(db, ["(01)00012345678905(17)271231"]) == [{"gtin": GTIN_14, "expiry_date": "2027-12-31"}]


def test_the_parser_is_immutable(db):
    assert db.execute("SELECT provolatile FROM pg_proc WHERE oid = 'posledger_private.gs1_parse(text)'::regprocedure"
                      ).fetchone() == ("i",)


def test_every_kind_of_bad_scan_gets_a_problem_naming_it(db):
    ok = "(01)00012345678905"
    problems = {
        "": "empty scan",
        " \r\n": "empty scan",
        "]C1": "empty scan",
        "(01)00012345678906": "check digit wrong in GTIN 00012345678906",
        "0100012345678906": "check digit wrong in GTIN 00012345678906",
        "036000291453": "check digit wrong in GTIN 036000291453",
        "96385075": "check digit wrong in GTIN 96385075",
        ok + "(3103)000123": "unsupported AI (3103): only (01), (10), (13), (17) and (21) are read",
        ok + "()": "unsupported AI (): only (01), (10), (13), (17) and (21) are read",
        "0100012345678905" "3103000123":
            'unsupported AI at "3103000123": only (01), (10), (13), (17) and (21) are read',
        ok + "(10)A(10)B": "repeated AI (10)",
        f"10A{GS}0100012345678905{GS}10B": "repeated AI (10)",
        ok + "(17)271231(17)271231": "repeated AI (17)",
        "(01)0001234567890": 'AI (01) must be 14 digits, not "0001234567890"',
        "(01)000123456789050": 'AI (01) must be 14 digits, not "000123456789050"',
        "(01)4006381333931": 'AI (01) must be 14 digits, not "4006381333931"',
        "(17)2712" + ok: 'AI (17) must be 6 digits, not "2712"',
        "0100012345678905" "172712": 'AI (17) must be 6 digits, not "2712"',
        ok + "(13)25O901": 'AI (13) must be 6 digits, not "25O901"',
        ok + "(17)271301": 'AI (17) is not a date YYMMDD: "271301"',
        ok + "(17)270001": 'AI (17) is not a date YYMMDD: "270001"',
        ok + "(13)250230": 'AI (13) is not a date YYMMDD: "250230"',
        ok + "(13)270229": 'AI (13) is not a date YYMMDD: "270229"',
        ok + "(17)251232": 'AI (17) is not a date YYMMDD: "251232"',
        ok + "(10)" + "L" * 21: "AI (10) is longer than 20 characters",
        "0100012345678905" "21" + "S" * 21: "AI (21) is longer than 20 characters",
        ok + "(21)SER 1": 'AI (21) has characters outside GS1 set 82: " "',
        ok + "(10)LÖT#1": 'AI (10) has characters outside GS1 set 82: "Ö#"',
        ok + "(10)": "AI (10) is empty",
        f"0100012345678905" f"10{GS}17271231": "AI (10) is empty",
        "(10)LOT42(17)271231": "no GTIN: the scan has no AI (01)",
        f"10LOT42{GS}17271231": "no GTIN: the scan has no AI (01)",
        ok + ")junk": 'unparsed text ")junk"',
        ok + "(10": 'unparsed text "(10"',
        "0100012345678905" "ABC": 'unparsed text "ABC"',
        "0100012345678905" "1": 'unparsed text "1"',
        "hello": 'unparsed text "hello"',
        "]X9" + ok: 'unsupported symbology identifier "]X9"',
    }
    assert dict(zip(problems, parse_all(db, list(problems)), strict=True)) == {
        scan: {"problem": problem} for scan, problem in problems.items()}


# Properties.

def test_any_record_formatted_in_either_form_parses_back_to_itself(db):
    @PROPERTY
    @given(records(), st.permutations(list(KEYS)), st.booleans(), prefixes, st.booleans())
    def check(printed, order, last_as_00, prefix, fnc1_after_fixed):
        gtin, record = printed
        pairs = elements(record, order, last_as_00)
        scans = [prefix + raw(pairs, fnc1_after_fixed)]
        if not any(c in value for _, value in pairs for c in "()"):
            scans.append(prefix + bracketed(pairs))
        if len(record) == 1:
            scans.append(prefix + gtin)
        assert parse_all(db, scans) == [record] * len(scans)

    check()


def test_a_wrong_check_digit_is_always_refused_naming_the_gtin(db):
    @PROPERTY
    @given(records(), st.integers(1, 9), st.permutations(list(KEYS)), prefixes)
    def check(printed, shift, order, prefix):
        gtin, record = printed
        wrong = gtin[:-1] + str((int(gtin[-1]) + shift) % 10)
        pairs = [(ai, wrong.zfill(14) if ai == "01" else value) for ai, value in elements(record, order, False)]
        scans = [prefix + raw(pairs), prefix + wrong]
        if not any(c in value for _, value in pairs for c in "()"):
            scans.append(prefix + bracketed(pairs))
        assert parse_all(db, scans) == [{"problem": f"check digit wrong in GTIN {wrong.zfill(14)}"},
                                        {"problem": f"check digit wrong in GTIN {wrong}"},
                                        {"problem": f"check digit wrong in GTIN {wrong.zfill(14)}"}][:len(scans)]

    check()


# Text PostgreSQL can hold (no NUL) and psycopg can send (no lone surrogates); and text made of the pieces of
# element strings, which reaches further into the parser than random characters do.
any_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
pieces = st.lists(st.sampled_from(["(01)", "(10)", "(13)", "(17)", "(21)", "(", ")", "01", "10", "13", "17", "21",
                                   GS, "]C1", "]E0", "00012345678905", "4006381333931", "271231", "270200", "271301",
                                   "LOT", "0", "9", " ", "é", "\r\n", "-"]), max_size=12).map("".join)


def test_no_text_makes_the_parser_raise(db):
    @PROPERTY
    @given(st.lists(any_text | pieces, min_size=1, max_size=25))
    def check(scans):
        for parsed in parse_all(db, scans):
            assert set(parsed) == {"problem"} or (
                len(parsed["gtin"]) == 14 and set(parsed) <= set(KEYS.values())), parsed

    check()


# Scans at the till: record_pos_sale reads the scan, finds the sku through the catalogue's GTINs and the batch
# through the lot, and refuses a bad scan with IV400 naming what is wrong.

PRE_ROLL_GTIN = "00627701000018"   # GTIN-13 0627701000018, padded


@pytest.fixture
def scanning_store(db, store):
    catalogue(db, "PRE-ROLL", "dried", net_content=1, net_unit="g")
    db.execute("INSERT INTO product_gtins (gtin, sku) VALUES (%s, 'PRE-ROLL')", [PRE_ROLL_GTIN])
    db.commit()
    add_stock(db, store, "PRE-ROLL", 5, "LOT-OLD", "2025-01-01")
    add_stock(db, store, "PRE-ROLL", 5, "LOT-NEW", "2025-06-01")
    return store


def scanned(store, scan, quantity=1, **line):
    return sale_payload(store, {"scan": scan, "quantity": quantity, **line})


def test_a_scan_names_the_product_and_its_lot(db, scanning_store):
    result = record_sale(db, scanned(scanning_store, f"(01){PRE_ROLL_GTIN}(10)LOT-NEW(21)SERIAL-1"))
    assert [(u["sku"], u["batch"]) for u in result["inventory_updates"]["successful"]] == [("PRE-ROLL", "LOT-NEW")]
    raw = record_sale(db, scanned(scanning_store, f"]C101{PRE_ROLL_GTIN}10LOT-OLD{GS}21SERIAL-2"))
    assert [u["batch"] for u in raw["inventory_updates"]["successful"]] == ["LOT-OLD"]


def test_a_plain_gtin_names_the_product_and_fefo_picks_the_batch(db, scanning_store):
    result = record_sale(db, scanned(scanning_store, "0627701000018", 6))
    assert [(u["batch"], u["quantity_deducted"]) for u in result["inventory_updates"]["successful"]] == [
        ("LOT-OLD", 5), ("LOT-NEW", 1)]


def test_bad_scans_are_refused_naming_what_is_wrong_and_nothing_changes(db, scanning_store):
    with pytest.raises(InvalidSale) as refused:
        record_sale(db, sale_payload(scanning_store, {"scan": "0627701000019", "quantity": 1},
                                     {"scan": "(01)00012345678905", "quantity": 1},
                                     {"scan": f"(01){PRE_ROLL_GTIN}(99)X", "quantity": 1}))
    assert refused.value.detail["problems"] == [
        {"field": "items[0].scan", "problem": "is not a usable GS1 barcode: check digit wrong in GTIN 0627701000019"},
        {"field": "items[2].scan", "problem": "is not a usable GS1 barcode: unsupported AI (99): only (01), (10), (13),"
                                              " (17) and (21) are read"}]
    with pytest.raises(InvalidSale) as unknown:
        record_sale(db, scanned(scanning_store, "(01)00012345678905"))
    assert unknown.value.detail["problems"] == [
        {"field": "items[0].scan", "problem": "names GTIN 00012345678905, which is not in the catalogue"}]
    with pytest.raises(InvalidSale) as contradicted:
        record_sale(db, scanned(scanning_store, f"(01){PRE_ROLL_GTIN}(10)LOT-NEW", product={"sku": "OTHER"},
                                batch={"batch_lot": "LOT-OLD"}))
    assert [p["field"] for p in contradicted.value.detail["problems"]] == ["items[0].product.sku",
                                                                            "items[0].batch.batch_lot"]
    assert db.execute("SELECT count(*) FROM pos_orders").fetchone() == (0,)


def test_a_scan_that_says_expired_is_refused_and_one_that_says_when_teaches_the_batch(db, scanning_store):
    today = db.execute("SELECT posledger_private.store_today(s) FROM stores s WHERE id = %s",
                       [scanning_store]).fetchone()[0]
    db.commit()
    past, later = (today + datetime.timedelta(days=d) for d in (-1, 400))
    with pytest.raises(BatchBlocked) as refused:
        record_sale(db, scanned(scanning_store, f"(01){PRE_ROLL_GTIN}(10)LOT-NEW(17){past:%y%m%d}"))
    assert refused.value.detail["blocked"] == [
        {"sku": "PRE-ROLL", "batch": "LOT-NEW", "status": "expired", "expiry_date": past.isoformat()}]
    record_sale(db, scanned(scanning_store, f"(01){PRE_ROLL_GTIN}(10)LOT-NEW(17){later:%y%m%d}"))
    assert db.execute("SELECT batch_lot, expiry_date FROM ocs_inventory ORDER BY id").fetchall() == [
        ("LOT-OLD", None), ("LOT-NEW", later)]


def test_a_retry_of_a_scanned_sale_replays_after_the_catalogue_dropped_its_gtin(db, scanning_store):
    sale = scanned(scanning_store, f"(01){PRE_ROLL_GTIN}(10)LOT-NEW")
    first = record_sale(db, sale)
    db.execute("DELETE FROM product_gtins")   # the catalogue no longer knows the barcode
    db.commit()
    assert record_sale(db, sale) == {**first, "replayed": True}
    with pytest.raises(InvalidSale):   # a new sale of it is refused
        record_sale(db, scanned(scanning_store, f"(01){PRE_ROLL_GTIN}(10)LOT-NEW"))
