"""Readings on whole columns: ``parse()`` and ``is_valid_number`` replayed with polars for the
``+digits`` reading (columns ``a_*``) and the national reading (columns ``b_*``) of each number."""

from __future__ import annotations

import polars as pl

from campaigner.phones.metadata import MetadataTables, RegionMeta, invalid_reason, valid_nsn

__all__ = (
    "CHECK",
    "INVALID",
    "REGEX_MIN_ROWS",
    "VALID",
    "add_reasons",
    "check_validity",
    "read_international",
    "read_national",
)

# Reading states: 0 invalid, 1 valid, 2 still to validate, null unknown (left to resolve).
INVALID, VALID, CHECK = 0, 1, 2


def add_reasons(work: pl.DataFrame, tables: MetadataTables) -> pl.DataFrame:
    """{prefix}_reason: why an invalid reading is rejected, as the scalar path words it.

    Only where parse() cannot have raised (a national number of 2 to 17 digits); the rest is
    left to resolve. Reasons depend on (calling code, length) only: computed once per pair.
    """
    for prefix in ("a", "b"):
        state, code, nsn = f"{prefix}_state", f"{prefix}_code", f"{prefix}_nsn"
        rows = work.filter(
            (pl.col(state) == INVALID) & pl.col(nsn).str.len_bytes().is_between(2, 17)
        ).select("i", code=code, length=pl.col(nsn).str.len_bytes().cast(pl.Int32))
        pairs = rows.select("code", "length").unique()
        reasons = [
            invalid_reason(tables, country, length)
            for country, length in zip(
                pairs.get_column("code").to_list(),
                pairs.get_column("length").to_list(),
                strict=True,
            )
        ]
        pairs = pairs.with_columns(reason=pl.Series(reasons, dtype=pl.String))
        rows = rows.join(pairs, on=["code", "length"], how="left")
        column = pl.Series(f"{prefix}_reason", [None] * work.height, dtype=pl.String)
        column.scatter(rows.get_column("i"), rows.get_column("reason"))
        work = work.with_columns(column)
    return work


def read_international(work: pl.DataFrame, tables: MetadataTables) -> pl.DataFrame:
    """Replay ``parse("+" + intl)`` up to validation: a_state, a_code, a_nsn."""
    digits = pl.col("intl")
    # too short after the '+', or no calling code (none starts with 0): parse() raises
    work = work.with_columns(
        head=digits.str.slice(0, 3).cast(pl.Int32, strict=False),
        hopeless=(digits.str.len_bytes() <= 2) | digits.str.starts_with("0"),
    )
    # Calling codes are prefix-free: at most one of the 1-3 digit heads is a code.
    heads = [pl.col("head") // divisor for divisor in (100, 10, 1)]
    work = work.with_columns(
        a_code=pl.when(~pl.col("hopeless")).then(
            pl.coalesce([pl.when(head.is_in(tables.codes)).then(head) for head in heads])
        )
    ).with_columns(
        a_nsn=digits.str.slice(pl.col("a_code").cast(pl.String).str.len_bytes()),
        a_state=pl.when(digits.is_null())
        .then(pl.lit(None, pl.Int8))
        .when(pl.col("a_code").is_null())
        .then(pl.lit(INVALID, pl.Int8))
        .otherwise(pl.lit(CHECK, pl.Int8)),
    )
    # Few numbers start with their country's national prefix; replay those per country.
    prefix = pl.col("a_code").replace_strict(
        tables.prefix_patterns, default=None, return_dtype=pl.String
    )
    hits = work.filter(
        (pl.col("a_state") == CHECK)
        & pl.col("a_nsn").str.contains(prefix, strict=False).fill_null(False)
    )
    for (code_value,), group in hits.group_by("a_code"):
        main = tables.countries[int(str(code_value))][0]
        work = _scatter(work, _strip_national_prefix(group.select("i", nsn="a_nsn"), main), "a")
    return work


def read_national(work: pl.DataFrame, region: str | None, tables: MetadataTables) -> pl.DataFrame:
    """Replay ``parse(national, region)`` up to validation: b_state, b_code, b_nsn."""
    if region is None:
        return work.with_columns(
            b_state=pl.lit(None, pl.Int8),
            b_code=pl.lit(None, pl.Int32),
            b_nsn=pl.lit(None, pl.String),
        )
    meta = tables.regions[region]
    main = tables.countries[meta.country_code][0]
    digits = pl.col("national")
    unknown = pl.lit(False)
    if meta.international_prefix:  # dialled with the region's own IDD: not replayed here
        unknown = digits.str.contains(f"^(?:{meta.international_prefix})")
    work = work.with_columns(
        b_code=pl.when(digits.is_not_null()).then(pl.lit(meta.country_code, pl.Int32)),
        b_nsn=digits,
        b_state=pl.when(digits.is_null() | unknown)
        .then(pl.lit(None, pl.Int8))
        .otherwise(pl.lit(CHECK, pl.Int8)),
    )
    # _maybe_extract_country_code: a leading country code of the region is dropped when the
    # number is not viable (or too long) with it and viable without it.
    code = str(meta.country_code)
    after = pl.col("nsn").str.slice(len(code))
    starting = work.filter((pl.col("b_state") == CHECK) & digits.str.starts_with(code)).select(
        "i", nsn=digits
    )
    inner = (
        after.str.contains(f"^(?:{meta.national_prefix})")
        if meta.national_prefix
        else pl.lit(False)
    )
    starting = starting.select(
        "i",
        nsn=after,
        state=pl.when(inner).then(pl.lit(None, pl.Int8)).otherwise(pl.lit(CHECK, pl.Int8)),
        drop=(~meta.general_matches(pl.col("nsn")) & meta.general_matches(after))
        | meta.too_long(pl.col("nsn")),
    ).filter(pl.col("drop") | pl.col("state").is_null())
    work = _scatter(work, starting, "b")
    dropped = starting.filter(pl.col("state") == CHECK).get_column("i")
    # Once it has read a country code, parse() continues with the main region's metadata.
    todo = work.filter(pl.col("b_state") == CHECK)
    is_dropped = pl.col("i").is_in(dropped.implode())
    for group, parsing in (
        (todo.filter(is_dropped), main),
        (todo.filter(~is_dropped), meta),
    ):
        stripped = _strip_national_prefix(group.select("i", nsn="b_nsn"), parsing)
        work = _scatter(work, stripped, "b")
    return work


def _strip_national_prefix(frame: pl.DataFrame, meta: RegionMeta) -> pl.DataFrame:
    """parse()'s national-prefix step for rows (i, nsn) read with ``meta``.

    Returns the rows it concerns: i, nsn, state (null where a transform rule applies).
    """
    empty = pl.DataFrame(schema={"i": pl.UInt32, "nsn": pl.String, "state": pl.Int8})
    if not meta.national_prefix or frame.height == 0:
        return empty
    pattern = f"^({meta.national_prefix})"
    nsn = pl.col("nsn")
    hits = frame.with_columns(matched=nsn.str.extract(pattern, 1)).filter(
        pl.col("matched").is_not_null()
    )
    if not meta.simple_prefix:
        # The transform rule applies only when the pattern's last group took part.
        transformed = nsn.str.extract(pattern, 1 + meta.prefix_groups).is_not_null()
        if meta.prefix_groups == 0:
            transformed = pl.lit(True)
        hits = hits.with_columns(transformed=transformed)
        left = hits.filter(pl.col("transformed")).select("i", "nsn", state=pl.lit(None, pl.Int8))
        hits = hits.filter(~pl.col("transformed"))
    else:
        left = empty
    if hits.height == 0:
        return left
    stripped = nsn.str.slice(pl.col("matched").str.len_bytes())
    # Stripping must not spoil a viable number; parse() then keeps the stripped number only
    # if its length is plausible.
    strip = ~(meta.general_matches(nsn) & ~meta.general_matches(stripped))
    done = hits.select(
        "i",
        nsn=pl.when(strip & meta.length_ok(stripped)).then(stripped).otherwise(nsn),
        state=pl.lit(CHECK, pl.Int8),
    )
    return pl.concat([left, done])


def _scatter(work: pl.DataFrame, rows: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Write rows (i, nsn, state) into the {prefix}_nsn and {prefix}_state columns."""
    if rows.height == 0:
        return work
    index = rows.get_column("i")
    columns = []
    for name in ("nsn", "state"):
        column = work.get_column(f"{prefix}_{name}").clone()
        column.scatter(index, rows.get_column(name))
        columns.append(column)
    return work.with_columns(columns)


# Below this many rows of one country, validating in Python beats compiling its patterns.
REGEX_MIN_ROWS = 6000


def check_validity(work: pl.DataFrame, tables: MetadataTables) -> pl.DataFrame:
    """Turn reading state 2 into 1 (valid) or 0, and add {prefix}_e164 columns."""
    for prefix in ("a", "b"):
        state, code, nsn = f"{prefix}_state", f"{prefix}_code", f"{prefix}_nsn"
        e164 = (pl.col(code).cast(pl.String) + pl.col(nsn)).alias(f"{prefix}_e164")
        work = work.with_columns(e164)
        if prefix == "b":  # the same number as the first reading (CAMS style in its region)
            copy = (
                (pl.col(state) == CHECK)
                & (pl.col("a_e164") == pl.col("b_e164"))
                & pl.col("a_state").is_in((VALID, INVALID))
            )
            work = work.with_columns(
                pl.when(copy).then(pl.col("a_state")).otherwise(pl.col(state)).alias(state)
            )
        todo = work.filter(pl.col(state) == CHECK).select("i", code=code, nsn=nsn)
        if todo.height == 0:
            continue
        # Compiling a country's patterns for polars costs milliseconds: worth it only for
        # countries with many rows. The others are checked one by one.
        counts = todo.group_by("code").len()
        many = counts.filter(pl.col("len") >= REGEX_MIN_ROWS).get_column("code")
        few = todo.filter(~pl.col("code").is_in(many.implode()))
        checked = [
            few.select(
                "i",
                valid=pl.Series(
                    [
                        valid_nsn(tables, country, number)
                        for country, number in zip(
                            few.get_column("code").to_list(),
                            few.get_column("nsn").to_list(),
                            strict=True,
                        )
                    ],
                    dtype=pl.Boolean,
                ),
            )
        ]
        for (country,), group in todo.filter(pl.col("code").is_in(many.implode())).group_by("code"):
            metas = tables.countries[int(str(country))]
            checked.append(_valid_column(group.select("i", "nsn"), metas, tables))
        done = pl.concat(checked)
        column = work.get_column(state).clone()
        column.scatter(done.get_column("i"), done.get_column("valid").cast(pl.Int8))
        work = work.with_columns(column)
    return work


def _valid_column(
    frame: pl.DataFrame, metas: tuple[RegionMeta, ...], tables: MetadataTables
) -> pl.DataFrame:
    """valid_nsn on a column (i, nsn) of one calling code: columns i, valid."""
    nsn = pl.col("nsn")
    done: list[pl.DataFrame] = []
    rest = frame
    if len(metas) > 1:  # screen before trying region after region
        code = metas[0].country_code
        rest = frame.with_columns(
            valid=nsn.str.len_bytes().is_in(tables.lengths[code])
            & nsn.str.contains(f"^(?:{tables.screens[code].pattern})$")
        )
        done.append(rest.filter(~pl.col("valid")))
        rest = rest.filter(pl.col("valid")).select("i", "nsn")
    for meta in metas:
        if rest.height == 0:
            break
        if meta.leading_digits:  # this region decides for every number it prefixes
            rest = rest.with_columns(chosen=nsn.str.contains(f"^(?:{meta.leading_digits})"))
            done.append(_valid_rows(rest.filter(pl.col("chosen")), meta))
            rest = rest.filter(~pl.col("chosen")).select("i", "nsn")
        else:  # this region decides for the numbers valid in it
            checked = _valid_rows(rest, meta)
            done.append(checked.filter(pl.col("valid")).select("i", "valid"))
            rest = checked.filter(~pl.col("valid")).select("i", "nsn")
    done.append(rest.select("i", valid=pl.lit(False)))
    return pl.concat([part.select("i", "valid") for part in done])


def _valid_rows(frame: pl.DataFrame, meta: RegionMeta) -> pl.DataFrame:
    """Rows (i, nsn) with valid = the number is valid in ``meta``'s region."""
    if frame.height == 0:
        return frame.select("i", "nsn", valid=pl.lit(False))
    length_ok = pl.col("nsn").str.len_bytes().is_in(meta.possible_lengths)
    frame = frame.select("i", "nsn").with_columns(length_ok=length_ok)
    # Regexes are the costly part: run them only on numbers of a possible length.
    plausible = frame.filter(pl.col("length_ok")).select(
        "i", "nsn", valid=meta.valid(pl.col("nsn"))
    )
    hopeless = frame.filter(~pl.col("length_ok")).select("i", "nsn", valid=pl.lit(False))
    return pl.concat([plausible, hopeless])
