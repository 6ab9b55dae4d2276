"""Phone numbers: one table case per rule, column == cell, and parser parity."""

from __future__ import annotations

import random

import phonenumbers
import polars as pl
import pytest
import rphonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigner import phones
from campaigner.phones import PhoneIssue, normalize_phone, normalize_phones

LETTERS = "contains letters: keep only the number (digits, spaces, - . ( ) and a leading +)"
MORE_THAN_ONE = "more than one number: put one number per row"
SCIENTIFIC = (
    "scientific notation: digits were lost in Excel; "
    "format the column as Text and re-enter the numbers"
)
NATIONAL = "national number: add the country code or set default_region"
NO_NUMBER = "no phone number"

# (cell, default_region, E.164 digits or the exact reason)
CASES = [
    # clean-up
    ("+44 7911 123456", None, "447911123456"),
    ("＋８６ １３８ １２３４ ５６７８", None, "8613812345678"),  # full-width
    ("+٨٦١٣٨١٢٣٤٥٦٧٨", None, "8613812345678"),  # Arabic-Indic digits
    ("+۸۶۱۳۸۱۲۳۴۵۶۷۸", None, "8613812345678"),  # Persian (extended Arabic-Indic)
    ("+86\u200b138 1234\u200d5678", None, "8613812345678"),  # zero-width space and joiner
    ("\ufeff+8613812345678", None, "8613812345678"),  # BOM
    ("\u00a0+44 7911 123456\u00a0", None, "447911123456"),  # NBSP around
    ("+44\u00a07911\u00a0123456", None, "447911123456"),  # NBSP inside
    ("\t +44 7911 123456 \n", None, "447911123456"),
    ("+44 7911\u2013123456", None, "447911123456"),  # en dash from Word
    ("tel:+86-138-1234-5678", None, "8613812345678"),
    ("TEL: +8613812345678", None, "8613812345678"),
    ("'+8613812345678", None, "8613812345678"),  # Excel text prefix
    ('="+8613812345678"', None, "8613812345678"),  # Excel formula keeping the text
    ('="07911 123456"', "GB", "447911123456"),
    ("8613812345678.0", None, "8613812345678"),  # a float cell written as text
    ("(+86) 138-1234-5678", None, "8613812345678"),
    ("+44 (0) 7911 123456", None, "447911123456"),
    ("+49 911/1234567", None, "499111234567"),  # '/' inside one number
    # whitelist
    ("+1 800 MICROSOFT", None, LETTERS),
    ("call me +86 138 1234 5678 thanks", None, LETTERS),
    ("+86 138 1234 5678 ext 12", None, LETTERS),
    ("+44 7911 123456; +44 7911 654321", None, MORE_THAN_ONE),
    ("+44 7911 123456, +44 7911 654321", None, MORE_THAN_ONE),
    ("+44 7911 123456 | +44 7911 654321", None, MORE_THAN_ONE),
    ("+44 7911 123456 +44 7911 654321", None, MORE_THAN_ONE),  # a second '+'
    ("+86 138 1234 5678 / +86 139 1234 5678", None, MORE_THAN_ONE),
    ("07911 123456 / 07911 654321", "GB", MORE_THAN_ONE),
    ("8.61381E+12", None, SCIENTIFIC),
    ("1.4E+10", None, SCIENTIFIC),
    ("4.47911e11", None, SCIENTIFIC),
    ("8,61381E+12", None, SCIENTIFIC),  # decimal comma locales
    (
        "8613812345678901.0",
        None,
        "stored as a number and digits were lost; "
        "format the column as Text and re-enter the numbers",
    ),
    ("86+13812345678", None, "the + sign must come first, right before the country code"),
    (
        "+86 138*1234 5678",
        None,
        "unexpected character '*': keep only digits, spaces, - . ( ) and a leading +",
    ),
    ("+", None, "no digits"),
    ("()", None, "no digits"),
    ("", None, NO_NUMBER),
    ("   ", None, NO_NUMBER),
    ("\u200b", None, NO_NUMBER),
    # country: leading +
    ("+8613812345678", "GB", "8613812345678"),  # the region does not matter
    ("+999 1234 5678", None, "unknown country code"),
    # country: leading 00
    ("0044 7911 123456", None, "447911123456"),
    ("0044 7911 123456", "GB", "447911123456"),  # GB dials 00
    ("0044 7911 123456", "US", "447911123456"),  # US dials 011: 00 read as +
    ("011 44 7911 123456", "US", "447911123456"),  # dialled from the US
    (
        "00999 1234 5678",
        "GB",
        "not a usable number: dialled from GB, unknown country code; "
        "with 00 read as +, unknown country code",
    ),
    # country: CAMS style (country code, no +)
    ("8613812345678", None, "8613812345678"),
    ("8613812345678", "CN", "8613812345678"),
    ("447911123456", "GB", "447911123456"),
    ("447911123456", "US", "447911123456"),
    # country: national number without trunk 0 (needs the default region)
    ("4155550123", "US", "14155550123"),
    ("4165550123", "CA", "14165550123"),
    ("89123456789", "RU", "79123456789"),  # RU trunk prefix 8
    ("7911123456", "GB", "447911123456"),  # Excel dropped the 0
    ("4155550123", None, "too short for CH"),
    (
        "4755551234",
        "US",
        "ambiguous: valid both as a +47 (NO) number and as a US national "
        "number; write it with + and the country code",
    ),
    (
        "15012345678",
        "CN",
        "ambiguous: valid both as a +1 (US) number and as a CN national "
        "number; write it with + and the country code",
    ),
    (
        "4155550123",
        "GB",
        "not a usable number: with a country code, too short for CH; "
        "as a GB number, not a valid GB number",
    ),
    # country: national number with trunk 0
    ("07911 123456", "GB", "447911123456"),
    ("07911 123456", None, NATIONAL),
    ("0612345678", "FR", "33612345678"),
    ("06 1234 5678", "IT", "390612345678"),  # Italy keeps its leading 0
    ("030 1234567", "DE", "49301234567"),
    ("0911/1234567", "DE", "499111234567"),
    # validation
    ("+44 7911", None, "too short for GB: the area code may be missing"),
    ("+86 138", None, "too short for CN"),
    ("+86138123456789999", None, "too long for CN"),
    ("+1 555 012 3456", None, "not a valid US number"),  # right length, no such range
    ("+44 12", None, "too short for GB"),
    ("+800 1234 5678", None, "80012345678"),  # non-geographic
    ("+54 9 11 2345 6789", None, "5491123456789"),  # national prefix with transform rule
    ("0", "GB", "not a phone number"),
]


@pytest.mark.parametrize(("cell", "region", "expected"), CASES)
def test_rule(cell: str, region: str | None, expected: str) -> None:
    result = normalize_phone(cell, region)
    if expected.isdigit():
        assert result == expected
    else:
        assert result == PhoneIssue(expected)


@pytest.mark.parametrize("region", [None, "GB", "US", "CN", "DE", "IT"])
def test_column_matches_cells_for_every_case(region: str | None) -> None:
    cells = [cell for cell, _, _ in CASES] + [None]
    assert_column_matches_cells(cells, region)


def test_column_shape_and_types() -> None:
    frame = normalize_phones(pl.Series(["+447911123456", None, "x"]), None)
    assert frame.schema == pl.Schema({"e164": pl.String, "phone_error": pl.String})
    assert frame.rows() == [("447911123456", None), (None, NO_NUMBER), (None, LETTERS)]
    empty = normalize_phones(pl.Series([], dtype=pl.String), "GB")
    assert empty.height == 0
    assert empty.schema == frame.schema


def test_column_of_numbers_is_read_as_text() -> None:
    frame = normalize_phones(pl.Series([8613812345678, None]), None)
    assert frame.get_column("e164").to_list() == ["8613812345678", None]


def test_default_region() -> None:
    assert normalize_phone("07911 123456", "gb") == "447911123456"
    assert normalize_phone("07911 123456", "") == PhoneIssue(NATIONAL)
    with pytest.raises(ValueError, match="UK"):
        normalize_phone("07911 123456", "UK")
    with pytest.raises(ValueError, match="unknown default_region"):
        normalize_phones(pl.Series(["1"]), "XX")


def test_public_names() -> None:
    assert phones.__all__ == ("PhoneIssue", "normalize_phone", "normalize_phones")


# --- column == cell on realistic lists -------------------------------------------------------

REGIONS = ("CN", "US", "GB", "DE", "IN", "BR", "AR", "JP", "IT", "RU", "KZ", "CA", "AU", "FR")


def generated(count: int, seed: int) -> list[str]:
    """Mostly valid numbers of many countries, in every format the rules distinguish."""
    rng = random.Random(seed)
    bases = []
    for region in REGIONS:
        for kind in (
            rphonenumbers.PhoneNumberType.MOBILE,
            rphonenumbers.PhoneNumberType.FIXED_LINE,
        ):
            example = rphonenumbers.example_number_for_type(region, kind)
            if example is not None:
                nsn = rphonenumbers.national_significant_number(example)
                prefix = rphonenumbers.ndd_prefix_for_region(region, True) or ""
                bases.append((example.country_code, nsn, prefix))
    cells = []
    for _ in range(count):
        code, nsn, trunk = rng.choice(bases)
        keep = rng.randint(1, max(1, len(nsn) - 2))
        nsn = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
        if rng.random() < 0.05:  # a digit too many or too few
            nsn = nsn[:-1] if rng.random() < 0.5 else nsn + "7"
        cells.append(
            rng.choice(
                (
                    f"+{code}{nsn}",
                    f"+{code} {nsn[:3]} {nsn[3:]}",
                    f"{code}{nsn}",
                    f"00{code}{nsn}",
                    f"011{code}{nsn}",
                    f"{trunk}{nsn}",
                    nsn,
                    f"({code}) {nsn}",
                    f"0{nsn}",
                )
            )
        )
    return cells


def assert_column_matches_cells(cells: list[str | None], region: str | None) -> None:
    frame = normalize_phones(pl.Series(cells, dtype=pl.String), region)
    assert frame.height == len(cells)
    for cell, row in zip(cells, frame.iter_rows(), strict=True):
        expected = normalize_phone(cell, region) if cell is not None else PhoneIssue(NO_NUMBER)
        if isinstance(expected, str):
            assert row == (expected, None), cell
        else:
            assert row == (None, expected.reason), cell


@pytest.mark.parametrize("region", [None, *REGIONS])
def test_column_matches_cells_on_generated_numbers(region: str | None) -> None:
    assert_column_matches_cells(generated(1500, seed=len(region or "")), region)


@pytest.mark.parametrize("region", [None, "US", "AR", "GB"])
def test_column_matches_cells_when_every_country_uses_polars_regexes(
    region: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small lists check validity in Python; force the polars path that large lists take.
    monkeypatch.setattr(phones, "_REGEX_MIN_ROWS", 1)
    assert_column_matches_cells(generated(1500, seed=7), region)


def test_replayed_validity_matches_phonenumbers() -> None:
    tables = phones._tables()
    assert tables is not None
    rng = random.Random(3)
    checked = 0
    for code, names in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for name in names:
            meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, name)
            for desc in (meta.mobile, meta.fixed_line, meta.toll_free):
                if desc is None or not desc.example_number:
                    continue
                for _ in range(4):
                    keep = rng.randint(0, len(desc.example_number))
                    tail = "".join(rng.choice("0123456789") for _ in desc.example_number[keep:])
                    nsn = desc.example_number[:keep] + tail
                    number = phonenumbers.parse(f"+{code}{nsn}", None)
                    significant = phonenumbers.national_significant_number(number)
                    expected = phonenumbers.is_valid_number(number)
                    assert phones._valid_nsn(tables, code, significant) == expected, nsn
                    checked += 1
    assert checked > 2000


def test_rphonenumbers_agrees_with_phonenumbers() -> None:
    # rphonenumbers 0.1.0 is young and bundles older metadata: parse, E.164 and validity of
    # a few thousand numbers of the main markets must agree with the reference library.
    cells = [cell for cell in generated(4000, seed=11) if cell.startswith("+")]
    assert len(cells) > 500
    for cell in cells:
        results = []
        for library in (phonenumbers, rphonenumbers):
            try:
                number = library.parse(cell, None)
            except library.NumberParseException as exc:
                results.append(("error", exc.error_type))
                continue
            results.append(
                (
                    library.format_number(number, library.PhoneNumberFormat.E164),
                    library.is_possible_number(number),
                    library.is_valid_number(number),
                )
            )
        assert results[0] == results[1], cell


# --- properties ------------------------------------------------------------------------------

phone_like = st.text(alphabet="0123456789 +-.()/0", max_size=20)
cells_strategy = st.lists(st.one_of(st.text(max_size=25), phone_like, st.none()), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cells=cells_strategy, region=st.sampled_from([None, "GB", "US", "DE", "CN"]))
def test_column_never_raises_and_matches_cells(cells: list[str | None], region: str | None) -> None:
    frame = normalize_phones(pl.Series(cells, dtype=pl.String), region)
    assert frame.columns == ["e164", "phone_error"]
    assert frame.height == len(cells)
    for e164, error in frame.iter_rows():
        assert (e164 is None) != (error is None)
    assert_column_matches_cells(cells, region)
