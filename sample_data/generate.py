"""Regenerate the sample recipient lists (deterministic): python sample_data/generate.py

About 1,000 realistic rows with the damage real spreadsheets have: numbers typed as
numbers (numeric XLSX cells, Excel's scientific notation in the CSV), national numbers
without a country code, duplicates, a missing template value, stray spaces, and a few
numbers that cannot be sent at all.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import openpyxl
import phonenumbers

HERE = Path(__file__).resolve().parent
ROWS = 1000
FIRST = "ana bruno chen dewi elif farah george hana ivan jun kofi lena mateo nadia omar priya quang rosa sami tomas uma vera wei ximena yusuf zara".split()
LAST = "tan lim wong santos silva kumar ng lee ong chua garcia smith nguyen rahman costa".split()
CITIES = ["Singapore", "Shanghai", "Jakarta", "São Paulo", "London", "Kuala Lumpur", "Beijing"]
# (country calling code, national mobile pattern generator)
COUNTRIES = [
    ("86", lambda r: "1" + r.choice("3456789") + "".join(r.choice("0123456789") for _ in range(9))),
    ("65", lambda r: r.choice("89") + "".join(r.choice("0123456789") for _ in range(7))),
    ("62", lambda r: "81" + "".join(r.choice("0123456789") for _ in range(8))),
    ("55", lambda r: "119" + "".join(r.choice("0123456789") for _ in range(8))),
    ("44", lambda r: "7" + r.choice("45789") + "".join(r.choice("0123456789") for _ in range(8))),
]


def _valid_number(r: random.Random) -> tuple[str, str]:
    while True:
        cc, gen = r.choice(COUNTRIES)
        national = gen(r)
        number = phonenumbers.parse("+" + cc + national)
        if phonenumbers.is_valid_number(number):
            return cc, national


def _spelled(r: random.Random, cc: str, national: str) -> str:
    """The many ways people type the same number."""
    style = r.random()
    if cc == "86" and style < 0.15:
        return national  # no country code: needs default_region = "CN"
    if style < 0.45:
        return cc + national  # the CAMS style
    if style < 0.65:
        return f"+{cc} {national[:3]} {national[3:7]} {national[7:]}"
    if style < 0.75:
        return f"(+{cc}) {national[:4]}-{national[4:]}"
    if style < 0.82:
        return f"00{cc}{national}"
    if style < 0.88:
        return f"  +{cc}{national}  "  # stray spaces
    return f"+{cc}-{national}"


def rows() -> list[dict[str, object]]:
    r = random.Random(20261125)
    out: list[dict[str, object]] = []
    for i in range(ROWS):
        cc, national = _valid_number(r)
        phone: object = _spelled(r, cc, national)
        roll = r.random()
        if roll < 0.015:
            phone = f"{float(cc + national):.5E}"  # how Excel shows a long number: 8.61381E+12
        elif roll < 0.02:
            phone = "call " + cc + national
        elif roll < 0.025:
            phone = cc + national[:4]  # too short
        elif roll < 0.12:
            phone = int(cc + national)  # typed as a number
        first = r.choice(FIRST)
        if r.random() < 0.05:
            first = f" {first} "
        coupon = "" if r.random() < 0.02 else f"SPRING-{r.randrange(10000, 99999)}"
        out.append(
            {
                "phone": phone,
                "first_name": first,
                "last_name": r.choice(LAST).title(),
                "coupon": coupon,
                "city": r.choice(CITIES),
                "language": r.choice(["en", "en", "en", "zh_CN", "id"]),
            }
        )
        if i % 40 == 7 and out:  # the same person twice, typed differently
            again = dict(out[r.randrange(len(out))])
            out.append(again)
    return out[:ROWS]


def main() -> None:
    data = rows()
    header = list(data[0])
    with (HERE / "recipients.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: str(v) for k, v in row.items()} for row in data)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "recipients"
    sheet.append(header)
    for row in data:
        sheet.append([row[k] for k in header])
    book.save(HERE / "recipients.xlsx")


if __name__ == "__main__":
    main()
