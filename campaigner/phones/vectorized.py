"""The column fast path: ``normalize_phones`` gives ``normalize_phone``'s answers for a whole
column, fast enough to preview a million rows."""

# Plain ASCII cells are cleaned with polars string ops, and the steps of ``phonenumbers.parse``
# + ``is_valid_number`` that matter for digit strings (calling code, country code without '+',
# national prefix, region choice, number types) are replayed on whole columns (readings.py),
# rejections with their reasons and ambiguity included. What it cannot settle for sure (other
# cell shapes, prefix transform rules, dialling prefixes) goes through the scalar path, cached.
# Polars compiles a country's patterns on every call (a few ms each), so countries with few rows
# in a call are validated in Python instead (about 1 µs a number): the larger the call, the
# cheaper each number.

from __future__ import annotations

import polars as pl

from campaigner.phones.metadata import MetadataTables, metadata_tables
from campaigner.phones.readings import (
    INVALID,
    VALID,
    add_reasons,
    check_validity,
    read_international,
    read_national,
)
from campaigner.phones.reasons import AMBIGUOUS_HINT, NATIONAL, NO_NUMBER, PhoneIssue
from campaigner.phones.scalar import (
    Ambiguity,
    Ambiguous,
    check_ambiguity,
    check_region,
    normalize_cell,
    resolve,
)

__all__ = ("normalize_phones",)

# Cells cleaned by polars; the rest go through clean. A '+' may only precede the digits;
# "123.0" (a float cell written as text) needs clean's digits-lost check, a leading '-' and
# anything shaped like a date its own reason (clean decides exactly).
_FAST_LANE = r"^[ (]*\+?[0-9 ().\-]*[0-9][0-9 ().\-]*$"
_FAST_ASIDE = (
    r"^ *[0-9]+\.0 *$|^[ (]*-"
    r"|^ *[0-9]{4}[-.][0-9]{1,2}[-.][0-9]{1,2} *$|^ *[0-9]{1,2}[-.][0-9]{1,2}[-.][0-9]{2,4} *$"
)
_FAST_SEPARATORS = r"[ ().\-]"


def normalize_phones(
    values: pl.Series, default_region: str | None, ambiguous: Ambiguity = "reject"
) -> pl.DataFrame:
    """``normalize_phone`` for a column: a frame of ``e164`` and ``phone_error`` (one is null),
    and, for ambiguous numbers only, both readings: ``region_reading`` (national number of
    the default region) and ``country_code_reading``, whatever ``ambiguous`` chose.

    Same length and order as ``values``; never raises on cell contents.
    """
    check_ambiguity(ambiguous)
    region = check_region(default_region)
    raw = values if values.dtype == pl.String else values.cast(pl.String, strict=False)
    fast = pl.col("raw").str.contains(_FAST_LANE) & ~pl.col("raw").str.contains(_FAST_ASIDE)
    work = (
        pl.DataFrame({"raw": raw}, schema={"raw": pl.String})
        .with_row_index("i")
        .with_columns(key=pl.when(fast).then(pl.col("raw").str.replace_all(_FAST_SEPARATORS, "")))
    )
    tables = metadata_tables()
    if tables is None or (region is not None and region not in tables.regions):
        work = work.with_columns(
            e164=pl.lit(None, pl.String),
            error=pl.lit(None, pl.String),
            region_reading=pl.lit(None, pl.String),
            country_code_reading=pl.lit(None, pl.String),
        )
    else:
        work = _read_fast_lane(work, region, tables)
    work = work.with_columns(
        error=pl.when(pl.col("raw").is_null()).then(pl.lit(NO_NUMBER)).otherwise("error")
    )
    # Whatever the columns could not settle: one cached call per row.
    todo = work.filter(pl.col("e164").is_null() & pl.col("error").is_null())
    columns = {
        "e164": work.get_column("e164").clone(),
        "phone_error": work.get_column("error").clone(),
        **{name: work.get_column(name).clone() for name in _READINGS},
    }
    if todo.height:
        answers = [
            resolve(key, region) if key is not None else normalize_cell(cell, region)
            for key, cell in zip(todo.get_column("key"), todo.get_column("raw"), strict=True)
        ]
        settled = {
            "e164": [a if isinstance(a, str) else None for a in answers],
            "phone_error": [_reason(a) for a in answers],
            "region_reading": [a.region if isinstance(a, Ambiguous) else None for a in answers],
            "country_code_reading": [
                a.country_code if isinstance(a, Ambiguous) else None for a in answers
            ],
        }
        index = todo.get_column("i")
        for name, values_ in settled.items():
            columns[name].scatter(index, pl.Series(values_, dtype=pl.String))
    result = pl.DataFrame(columns, schema=_RESULT_SCHEMA)
    if ambiguous != "reject":
        chosen = pl.col(f"{ambiguous}_reading")
        result = result.with_columns(
            e164=pl.coalesce(chosen, "e164"),
            phone_error=pl.when(chosen.is_null()).then(pl.col("phone_error")),
        )
    return result.select(*_RESULT_SCHEMA)


def _reason(answer: str | PhoneIssue | Ambiguous) -> str | None:
    if isinstance(answer, Ambiguous):
        return answer.issue.reason
    return answer.reason if isinstance(answer, PhoneIssue) else None


_READINGS = ("region_reading", "country_code_reading")
_RESULT_SCHEMA = {
    "e164": pl.String,
    "phone_error": pl.String,
    "region_reading": pl.String,
    "country_code_reading": pl.String,
}


def _read_fast_lane(work: pl.DataFrame, region: str | None, tables: MetadataTables) -> pl.DataFrame:
    """Settle cleaned numbers (column key) the way ``resolve`` would: adds e164 and error.

    Each reading of a number (``+digits``, national) is replayed on whole columns; rows that
    are not certain (rejections need a reason, ambiguity, steps not replayed) stay null.
    """
    key = pl.col("key")
    work = work.with_columns(
        plus=key.str.starts_with("+"),
        idd=key.str.starts_with("00"),
        zero=key.str.starts_with("0"),
    )
    plus, idd = pl.col("plus"), pl.col("idd")
    trunk = pl.col("zero") & ~idd
    if region is None:
        idd_is_plus = idd
    else:
        # Dialled from a region whose international prefix is 00, "00 44..." reads as "+44...".
        prefix = tables.regions[region].international_prefix
        idd_is_plus = (
            (
                idd & (key.str.extract(f"^({prefix})", 1) == "00") & (key.str.slice(2, 1) != "0")
            ).fill_null(False)
            if prefix
            else pl.lit(False)
        )
    national_too = pl.lit(region is not None)
    work = work.with_columns(
        # +digits; 00 read as +; digits without a trunk 0 (first reading)
        intl=pl.when(plus)
        .then(key.str.slice(1))
        .when(idd)
        .then(key.str.slice(2))
        .when(~trunk)
        .then(key),
        # read as dialled in the default region
        national=pl.when(national_too & ~plus & ~idd_is_plus).then(key),
        error=pl.when(trunk & ~national_too).then(pl.lit(NATIONAL)),
    )
    work = read_international(work, tables)
    work = read_national(work, region, tables)
    work = check_validity(work, tables)
    work = add_reasons(work, tables)
    a_ok, a_bad = pl.col("a_state") == VALID, pl.col("a_state") == INVALID
    b_ok, b_bad = pl.col("b_state") == VALID, pl.col("b_state") == INVALID
    has_a, has_b = pl.col("intl").is_not_null(), pl.col("national").is_not_null()
    same = pl.col("a_e164") == pl.col("b_e164")
    a_first = has_a & ~idd  # 00 dialled from a region: its own reading comes first
    label = pl.col("a_code").replace_strict(tables.labels, default=None, return_dtype=pl.String)
    ambiguous = pl.concat_str(
        pl.lit("ambiguous: valid both as a +"),
        pl.col("a_code").cast(pl.String),
        pl.lit(" ("),
        label,
        pl.lit(f") number and as a {region} national number; {AMBIGUOUS_HINT}"),
    )
    # The same messages as resolve, for rejections whose reasons are known here.
    a_reason, b_reason = pl.col("a_reason"), pl.col("b_reason")
    neither = pl.concat_str(
        pl.lit("not a usable number: with a country code, "),
        a_reason,
        pl.lit(f"; as a {region} number, "),
        b_reason,
    )
    dialled = pl.concat_str(
        pl.lit(f"not a usable number: dialled from {region}, "),
        pl.when(has_b).then(b_reason).otherwise(a_reason),  # "00" is the IDD: one reading
        pl.lit("; with 00 read as +, "),
        a_reason,
    )
    is_ambiguous = a_first & a_ok & has_b & b_ok & ~same
    rejected = (
        pl.when(is_ambiguous)
        .then(ambiguous)
        .when(a_first & has_b & a_bad & b_bad)
        .then(neither)
        .when(a_first & a_bad & ~has_b)
        .then(a_reason)
        .when(idd & pl.lit(region is not None) & a_bad & (b_bad | ~has_b))
        .then(dialled)
        .when(idd & a_bad & ~has_b)
        .then(a_reason)
        .when(~has_a & has_b & b_bad)
        .then(b_reason)
    )
    return work.with_columns(
        error=pl.coalesce("error", rejected),
        e164=pl.when(a_first & a_ok & (~has_b | b_bad | (b_ok & same)))
        .then(pl.col("a_e164"))
        .when(a_first & a_bad & b_ok)
        .then(pl.col("b_e164"))
        .when(~a_first & has_b & b_ok)
        .then(pl.col("b_e164"))
        .when(~a_first & (~has_b | b_bad) & a_ok)
        .then(pl.col("a_e164")),
        region_reading=pl.when(is_ambiguous).then(pl.col("b_e164")),
        country_code_reading=pl.when(is_ambiguous).then(pl.col("a_e164")),
    )
