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
from campaigner.phones import PhoneIssue, metadata, normalize_phone, normalize_phones, readings

LETTERS = "contains letters: keep only the number (digits, spaces, - . ( ) and a leading +)"
MORE_THAN_ONE = "more than one number: put one number per row"
SCIENTIFIC = (
    "scientific notation: digits were lost in Excel; "
    "format the column as Text and re-enter the numbers"
)
NATIONAL = "national number: add the country code or set default_region"
NO_NUMBER = "no phone number"
MINUS = "starts with '-': remove the minus sign (a phone number is not a negative number)"
DATE = "looks like a date, not a phone number"
TIME = "looks like a time, not a phone number"
AMBIGUOUS_CN = (
    "ambiguous: valid both as a +1 (US) number and as a CN national "
    "number; write it with + and the country code"
)

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
    # a sign is never dropped: the cell may be a negative number or a formula gone wrong
    ("-8613800000011", None, MINUS),
    ("-8613800000011", "CN", MINUS),
    (" -44 7911 123456", "GB", MINUS),
    ("\u2212447911123456", None, MINUS),  # Unicode minus sign
    ("-", None, "no digits"),  # a placeholder dash is just empty
    # dates and times: their digits are no phone number, whatever they happen to parse as
    ("2024-03-01", "EG", DATE),
    ("2024-03-01", None, DATE),
    ("2024/3/1", "CN", DATE),
    ("01/03/2024", "GB", DATE),
    ("1.3.2024", "DE", DATE),
    ("01-03-2024", "US", DATE),
    ("3/1/24", "US", DATE),
    ("2024-03-01T00:00:00", "EG", DATE),
    ("2024-03-01 10:30:00", None, DATE),
    ("3/1/2024 10:30 AM", "US", DATE),
    ("10:30:00", "GB", TIME),
    (
        "2024-13-45",
        "EG",
        "not a usable number: with a country code, too short for EG: the area "
        "code may be missing; as a EG number, not a valid EG number",
    ),  # no such date
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
    assert frame.schema == pl.Schema(
        {
            "e164": pl.String,
            "phone_error": pl.String,
            "region_reading": pl.String,
            "country_code_reading": pl.String,
        }
    )
    assert frame.rows() == [
        ("447911123456", None, None, None),
        (None, NO_NUMBER, None, None),
        (None, LETTERS, None, None),
    ]
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
    assert phones.__all__ == (
        "AMBIGUITY_CHOICES",
        "Ambiguity",
        "PhoneIssue",
        "normalize_phone",
        "normalize_phones",
    )


# CN mobiles written without 86 whose digits are also a valid +1 number (150, 170, 180 are
# NANP area codes), next to numbers that are not ambiguous.
AMBIGUOUS_CELLS = ["15012345678", "17012345678", "18012345678", "13812345678", "+1 501 234 5678"]


@pytest.mark.parametrize(
    ("ambiguous", "expected"),
    [
        ("reject", [AMBIGUOUS_CN] * 3 + ["8613812345678", "15012345678"]),
        (
            "region",
            ["8615012345678", "8617012345678", "8618012345678", "8613812345678", "15012345678"],
        ),
        (
            "country_code",
            ["15012345678", "17012345678", "18012345678", "8613812345678", "15012345678"],
        ),
    ],
)
def test_ambiguous_choice(ambiguous: phones.Ambiguity, expected: list[str]) -> None:
    got = [normalize_phone(cell, "CN", ambiguous) for cell in AMBIGUOUS_CELLS]
    assert [g if isinstance(g, str) else g.reason for g in got] == expected
    frame = normalize_phones(pl.Series(AMBIGUOUS_CELLS), "CN", ambiguous)
    assert [e or r for e, r in frame.select("e164", "phone_error").rows()] == expected
    # Both readings are reported whatever the choice, for ambiguous numbers only.
    assert frame.select("region_reading", "country_code_reading").rows() == [
        ("8615012345678", "15012345678"),
        ("8617012345678", "17012345678"),
        ("8618012345678", "18012345678"),
        (None, None),
        (None, None),
    ]


def test_unknown_ambiguous_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ambiguous choice"):
        normalize_phone("15012345678", "CN", "guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown ambiguous choice"):
        normalize_phones(pl.Series(["1"]), "CN", "guess")  # type: ignore[arg-type]


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


def assert_column_matches_cells(
    cells: list[str | None], region: str | None, ambiguous: phones.Ambiguity = "reject"
) -> None:
    frame = normalize_phones(pl.Series(cells, dtype=pl.String), region, ambiguous)
    assert frame.height == len(cells)
    for cell, row in zip(cells, frame.iter_rows(), strict=True):
        if cell is None:
            assert row == (None, NO_NUMBER, None, None)
            continue
        expected = normalize_phone(cell, region, ambiguous)
        if isinstance(expected, str):
            assert row[:2] == (expected, None), cell
        else:
            assert row[:2] == (None, expected.reason), cell
        # Only an ambiguous number reads differently under the two choices.
        readings = tuple(normalize_phone(cell, region, c) for c in ("region", "country_code"))
        assert row[2:] == (readings if readings[0] != readings[1] else (None, None)), cell


@pytest.mark.parametrize("region", [None, *REGIONS])
def test_column_matches_cells_on_generated_numbers(region: str | None) -> None:
    assert_column_matches_cells(generated(1500, seed=len(region or "")), region)


@pytest.mark.parametrize("ambiguous", ["region", "country_code"])
@pytest.mark.parametrize("region", ["CN", "US", "GB"])
def test_column_matches_cells_for_each_ambiguous_choice(
    region: str, ambiguous: phones.Ambiguity
) -> None:
    cells = generated(1500, seed=5) + AMBIGUOUS_CELLS + [cell for cell, _, _ in CASES]
    assert_column_matches_cells(cells, region, ambiguous)


@pytest.mark.parametrize("region", [None, "US", "AR", "GB"])
def test_column_matches_cells_when_every_country_uses_polars_regexes(
    region: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small lists check validity in Python; force the polars path that large lists take.
    monkeypatch.setattr(readings, "REGEX_MIN_ROWS", 1)
    assert_column_matches_cells(generated(1500, seed=7), region)


def test_replayed_validity_matches_phonenumbers() -> None:
    tables = metadata.metadata_tables()
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
                    assert metadata.valid_nsn(tables, code, significant) == expected, nsn
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
# Shapes near the date and minus rules: signs, 4-2-2 and 2-2-4 digit groups, times.
date_like = st.builds(
    "{}{}{}{}{}{}{}".format,
    st.sampled_from(["", " ", "-", "+", "("]),
    st.integers(0, 2100).map(str),
    st.sampled_from(["-", "/", ".", " "]),
    st.integers(0, 40).map(str),
    st.sampled_from(["-", "/", ".", ":"]),
    st.integers(0, 2100).map(str),
    st.sampled_from(["", "T10:30:00", " 10:30", " 9:05 PM", "Z", " "]),
)
cells_strategy = st.lists(
    st.one_of(st.text(max_size=25), phone_like, date_like, st.none()), max_size=30
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cells=cells_strategy,
    region=st.sampled_from([None, "GB", "US", "DE", "CN", "EG"]),
    ambiguous=st.sampled_from(phones.AMBIGUITY_CHOICES),
)
def test_column_never_raises_and_matches_cells(
    cells: list[str | None], region: str | None, ambiguous: phones.Ambiguity
) -> None:
    frame = normalize_phones(pl.Series(cells, dtype=pl.String), region, ambiguous)
    assert frame.columns == ["e164", "phone_error", "region_reading", "country_code_reading"]
    assert frame.height == len(cells)
    for e164, error, _, _ in frame.iter_rows():
        assert (e164 is None) != (error is None)
    assert_column_matches_cells(cells, region, ambiguous)
