"""libphonenumber metadata as validity rules: phonenumbers' tables read once, as polars expressions
for columns and Python regexes for single numbers (``valid_nsn``, ``invalid_reason``)."""

# rphonenumbers 0.1.0 bundles older metadata (9.0.41) that disagrees with phonenumbers 9.0.43
# on a few ranges (BW, SH, ZW, DK, ...): both the scalar and the column path judge validity
# with these tables, one source of truth that keeps their answers identical.

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import polars as pl

from campaigner.phones.reasons import BAD_LENGTH, LOCAL_ONLY, NOT_VALID, TOO_LONG, TOO_SHORT

__all__ = (
    "MetadataTables",
    "NumberDesc",
    "RegionMeta",
    "invalid_reason",
    "metadata_tables",
    "valid_nsn",
)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class NumberDesc:
    """A PhoneNumberDesc: one of ``lengths`` (None: any length) and a full pattern match."""

    lengths: tuple[int, ...] | None
    pattern: str

    def matches(self, nsn: pl.Expr) -> pl.Expr:
        hit = nsn.str.contains(f"^(?:{self.pattern})$")
        return hit if self.lengths is None else nsn.str.len_bytes().is_in(self.lengths) & hit

    @property
    def lookahead_pattern(self) -> str:
        # Python regex: the whole rest of the text has one of the lengths and matches.
        length = "|".join(rf"\d{{{n}}}" for n in self.lengths or ())
        guard = rf"(?=(?:{length})\Z)" if self.lengths else ""
        return rf"{guard}(?=(?:{self.pattern})\Z)"


@dataclass(frozen=True, slots=True)
class RegionMeta:
    """What parse() reads from one region's metadata, as polars expressions."""

    region: str
    country_code: int
    general_pattern: str
    possible_lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]
    national_prefix: str | None  # national_prefix_for_parsing
    prefix_groups: int  # capturing groups in national_prefix
    simple_prefix: bool  # no transform rule: stripping just drops the matched prefix
    international_prefix: str | None
    leading_digits: str | None
    general: NumberDesc
    types: tuple[NumberDesc, ...]  # number types (mobile, fixed line...), one per length set
    valid_pattern: str  # valid() as one Python regex, for numbers checked one by one

    def valid(self, nsn: pl.Expr) -> pl.Expr:
        # _number_type_helper(...) != UNKNOWN
        typed = pl.lit(False)
        for desc in self.types:
            typed = typed | desc.matches(nsn)
        return self.general.matches(nsn) & typed

    def valid_text(self, nsn: str) -> bool:
        return _compiled(self.valid_pattern).fullmatch(nsn) is not None

    def general_matches(self, nsn: pl.Expr) -> pl.Expr:
        # _match_national_number: the whole number matches the pattern; no length check
        return nsn.str.contains(f"^(?:{self.general_pattern})$")

    def length_ok(self, nsn: pl.Expr) -> pl.Expr:
        # _test_number_length is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH
        length = nsn.str.len_bytes()
        fits = length.is_in(self.possible_lengths) | (length > max(self.possible_lengths))
        return fits & ~length.is_in(self.local_lengths)

    def length_problem(self, length: int) -> str | None:
        # _test_number_length(..., UNKNOWN) as a reason template; None when possible
        if length in self.local_lengths:
            return LOCAL_ONLY
        if length == self.possible_lengths[0] or length in self.possible_lengths:
            return None
        if length < self.possible_lengths[0]:
            return TOO_SHORT
        if length > self.possible_lengths[-1]:
            return TOO_LONG
        return BAD_LENGTH

    def too_long(self, nsn: pl.Expr) -> pl.Expr:
        length = nsn.str.len_bytes()
        return (length > max(self.possible_lengths)) & ~length.is_in(self.local_lengths)


@dataclass(frozen=True, slots=True)
class MetadataTables:
    countries: dict[int, tuple[RegionMeta, ...]]  # calling code -> its regions, main region first
    regions: dict[str, RegionMeta]
    codes: tuple[int, ...]
    # calling code -> quick tests every valid number passes: its regions' lengths and patterns
    lengths: dict[int, tuple[int, ...]]
    screens: dict[int, re.Pattern[str]]
    prefix_patterns: dict[int, str]  # calling code -> "^(?:national prefix)" of its main region
    labels: dict[int, str]  # calling code -> main region, or "+code" when not geographic


@lru_cache(maxsize=1)
def metadata_tables() -> MetadataTables | None:
    """phonenumbers' metadata, read once; None (everything goes to resolve) if unusable."""
    try:
        ref = importlib.import_module("phonenumbers")
        countries = {
            code: tuple(
                _convert(ref.PhoneMetadata.metadata_for_region_or_calling_code(code, name), name)
                for name in names
            )
            for code, names in ref.COUNTRY_CODE_TO_REGION_CODE.items()
        }
    except (ImportError, AttributeError, TypeError, ValueError, re.error):
        return None
    if not all(countries.values()):
        return None
    return MetadataTables(
        countries=countries,
        regions={meta.region: meta for metas in countries.values() for meta in metas},
        codes=tuple(countries),
        lengths={
            code: tuple(sorted({n for meta in metas for n in meta.possible_lengths}))
            for code, metas in countries.items()
        },
        screens={
            code: re.compile("|".join(f"(?:{meta.general_pattern})" for meta in metas))
            for code, metas in countries.items()
        },
        prefix_patterns={
            code: f"^(?:{metas[0].national_prefix})"
            for code, metas in countries.items()
            if metas[0].national_prefix
        },
        labels={
            code: f"+{code}" if metas[0].region == "001" else metas[0].region
            for code, metas in countries.items()
        },
    )


def _convert(raw: Any, region: str) -> RegionMeta:
    general = raw.general_desc
    lengths = tuple(sorted(general.possible_length))
    if not general.national_number_pattern or not lengths or lengths[0] < 0:
        raise ValueError(f"no general description for {region}")
    prefix = raw.national_prefix_for_parsing or None
    by_lengths: dict[tuple[int, ...] | None, list[str]] = {}
    for name in _TYPE_DESCS:
        desc = getattr(raw, name)
        if desc is not None and desc.national_number_pattern:
            lengths_key = tuple(desc.possible_length) if desc.possible_length else None
            by_lengths.setdefault(lengths_key, []).append(desc.national_number_pattern)
    general_desc = NumberDesc(lengths, general.national_number_pattern)
    types = tuple(
        NumberDesc(key, "|".join(f"(?:{p})" for p in patterns))
        for key, patterns in by_lengths.items()
    )
    # Lookaheads give the AND of the general and the type checks in one Python regex.
    typed = "|".join(desc.lookahead_pattern for desc in types) or "(?!)"
    return RegionMeta(
        region=region,
        country_code=raw.country_code,
        general_pattern=general.national_number_pattern,
        possible_lengths=lengths,
        local_lengths=tuple(general.possible_length_local_only or ()),
        national_prefix=prefix,
        prefix_groups=re.compile(prefix).groups if prefix else 0,
        simple_prefix=not raw.national_prefix_transform_rule,
        international_prefix=raw.international_prefix or None,
        leading_digits=raw.leading_digits or None,
        general=general_desc,
        types=types,
        valid_pattern=rf"{general_desc.lookahead_pattern}(?:{typed})\d*",
    )


# The number types _number_type_helper tries; a number is valid if it is one of them.
_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def invalid_reason(tables: MetadataTables, code: int, length: int) -> str:
    """Why a parsed, invalid number is rejected: its length (is_possible_number's verdict,
    from the main region's lengths), or else its range."""
    template = tables.countries[code][0].length_problem(length) or NOT_VALID
    return template.format(tables.labels[code])


def valid_nsn(tables: MetadataTables, code: int, nsn: str) -> bool:
    """phonenumbers.is_valid_number for a calling code and a national significant number."""
    metas = tables.countries[code]
    if len(metas) == 1:
        return metas[0].valid_text(nsn)
    if len(nsn) not in tables.lengths[code] or tables.screens[code].fullmatch(nsn) is None:
        return False  # no region of the code has such a number
    # region_code_for_number: the first region whose leading digits match decides, or else
    # the first region the number is valid for.
    for meta in metas:
        if meta.leading_digits:
            if _compiled(meta.leading_digits).match(nsn):
                return meta.valid_text(nsn)
        elif meta.valid_text(nsn):
            return True
    return False
