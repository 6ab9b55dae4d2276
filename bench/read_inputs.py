"""Reader speed and memory: 1M-row CSVs and a 100k-row XLSX (8 columns each).

    .venv/bin/python bench/read_inputs.py [--rows-csv N] [--rows-xlsx N] [--keep DIR]

Each measurement runs in its own process so peak RSS belongs to that read alone; the
best of ``--repeat`` runs is kept (the machine is shared). Prints one JSON object per
input and a summary line.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

HEADER = ["phone", "name", "city", "code", "amount", "date", "note", "mixed"]
CITIES = ["Beijing", "Shanghai", "Hangzhou", "Zürich"]


def make_csv(path: Path, rows: int, quote_all: bool) -> None:
    rng = random.Random(3)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(HEADER) + "\n")
        for i in range(rows):
            cells = [
                f"+86138{i:08d}",
                f"name {i}",
                rng.choice(CITIES),
                f"C{i % 1000:04d}",
                f"{rng.random() * 1000:.2f}",
                "2025-02-20",
                "hello, world" if i % 10 == 0 else "hello world",
                str(i),
            ]
            if quote_all:
                fh.write(",".join(f'"{c}"' for c in cells) + "\n")
            else:
                fh.write(",".join(f'"{c}"' if "," in c else c for c in cells) + "\n")


def make_xlsx(path: Path, rows: int) -> None:
    """An XLSX laid out as Excel writes it: shared strings, numeric phones, styled dates."""
    rng = random.Random(2)
    strings: dict[str, int] = {}

    def sst(value: str) -> int:
        return strings.setdefault(value, len(strings))

    letters = "ABCDEFGH"
    parts = ['<row r="1">']
    parts += [
        f'<c r="{c}1" t="s"><v>{sst(h)}</v></c>' for c, h in zip(letters, HEADER, strict=True)
    ]
    parts.append("</row>")
    for i in range(rows):
        r = i + 2
        mixed = (
            f'<c r="H{r}"><v>{i}</v></c>'
            if i % 2
            else f'<c r="H{r}" t="s"><v>{sst(f"+86138{i:08d}")}</v></c>'
        )
        parts.append(
            f'<row r="{r}"><c r="A{r}"><v>{8613800000000 + i}</v></c>'
            f'<c r="B{r}" t="s"><v>{sst(f"name {i}")}</v></c>'
            f'<c r="C{r}" t="s"><v>{sst(rng.choice(CITIES))}</v></c>'
            f'<c r="D{r}" t="s"><v>{sst(f"C{i % 1000:04d}")}</v></c>'
            f'<c r="E{r}" s="2"><v>{round(rng.random() * 1000, 2)}</v></c>'
            f'<c r="F{r}" s="1"><v>{45658 + i % 365}</v></c>'
            f'<c r="G{r}" t="s"><v>{sst("hello world")}</v></c>{mixed}</row>'
        )
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg_ns = "http://schemas.openxmlformats.org/package/2006/relationships"
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {ns}>'
        f'<dimension ref="A1:H{rows + 1}"/><sheetData>{"".join(parts)}</sheetData></worksheet>'
    )
    shared = (
        f'<?xml version="1.0" encoding="UTF-8"?><sst {ns} count="{len(strings)}" '
        f'uniqueCount="{len(strings)}">'
        + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        + "</sst>"
    )
    styles = (
        f'<?xml version="1.0" encoding="UTF-8"?><styleSheet {ns}>'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.00"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/></font></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
        '<borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs>'
        '<cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/>'
        '<xf numFmtId="164" applyNumberFormat="1"/></cellXfs></styleSheet>'
    )
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook {ns} xmlns:r="{rel_ns}">'
        '<sheets><sheet name="Recipients" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg_ns}">'
        f'<Relationship Id="rId1" Type="{rel_ns}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{rel_ns}/sharedStrings" Target="sharedStrings.xml"/>'
        f'<Relationship Id="rId3" Type="{rel_ns}/styles" Target="styles.xml"/></Relationships>'
    )
    root_rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg_ns}">'
        f'<Relationship Id="rId1" Type="{rel_ns}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/></Types>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", content_types)
        zf.writestr("_rels/.rels", root_rels)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        zf.writestr("xl/styles.xml", styles)
        zf.writestr("xl/sharedStrings.xml", shared)
        zf.writestr("xl/worksheets/sheet1.xml", sheet)


def measure_one(path: Path) -> dict[str, object]:
    from campaigner.inputs import open_input

    start = time.perf_counter()
    table = open_input(path)
    opened = time.perf_counter()
    rows = 0
    batches = 0
    for batch in table.batches():
        rows += batch.height
        batches += 1
    done = time.perf_counter()
    return {
        "input": path.name,
        "rows": rows,
        "batches": batches,
        "open_s": round(opened - start, 3),
        "batches_s": round(done - opened, 3),
        "total_s": round(done - start, 3),
        "rows_per_s": round(rows / (done - start)),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows-csv", type=int, default=1_000_000)
    parser.add_argument("--rows-xlsx", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the inputs here and keep them")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        inputs = {
            folder / "minimal_quotes.csv": lambda p: make_csv(p, args.rows_csv, False),
            folder / "all_quoted.csv": lambda p: make_csv(p, args.rows_csv, True),
            folder / "excel_like.xlsx": lambda p: make_xlsx(p, args.rows_xlsx),
        }
        results = []
        for path, build in inputs.items():
            if not path.exists():
                build(path)
            runs = []
            for _ in range(max(args.repeat, 1)):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout))
            result = min(runs, key=lambda r: float(r["total_s"]))
            result["runs_total_s"] = [r["total_s"] for r in runs]
            results.append(result)
            print(json.dumps(result))
        print(
            "summary: "
            + "; ".join(
                f"{r['input']} {r['rows']:,} rows in {r['total_s']} s "
                f"({r['rows_per_s']:,} rows/s, peak {r['peak_rss_mib']} MiB)"
                for r in results
            )
        )


if __name__ == "__main__":
    main()
