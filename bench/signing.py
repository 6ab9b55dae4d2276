"""Signing cost: microseconds per ``sign_request`` on a typical ~300-byte query.

    .venv/bin/python bench/signing.py [--n 2000] [--repeat 5]

Prints the best of ``--repeat`` runs of ``--n`` signatures (and the query's length).
Goal (docs/performance.md#signing): at most about 40 µs per request.
"""

from __future__ import annotations

import argparse
import json
import time

from campaigner.signing import Credentials, canonical_query, sign_request

QUERY = {
    "ChannelType": "whatsapp",
    "Type": "template",
    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
    "Language": "en",
    "From": "8613800000000",
    "To": "+8613900001234",
    "TaskId": "campaign-2026-01-01-run-0001",
    "TemplateParams": json.dumps(
        {"name": "Ana Maria", "order": "A-123456", "amount": "12.50 EUR", "when": "1 Jan"},
        separators=(",", ":"),
    ),
}
CREDENTIALS = Credentials("testAccessKeyId", "testAccessKeySecret")
USER_AGENT = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"


def seconds_per_signature(n: int, repeat: int) -> float:
    """The best of ``repeat`` runs of ``n`` signatures, per signature."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(n):
            sign_request(
                method="POST",
                host="cams.ap-southeast-1.aliyuncs.com",
                query=QUERY,
                credentials=CREDENTIALS,
                date="2026-01-01T00:00:00Z",
                nonce=f"{i:032x}",
                user_agent=USER_AGENT,
            )
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    per = seconds_per_signature(args.n, args.repeat)
    length = len(canonical_query(QUERY))
    print(f"signing: {per * 1e6:.1f} µs per request ({length}-byte query; goal ≤ ~40 µs)")
    print(json.dumps({"us_per_request": round(per * 1e6, 2), "query_bytes": length}))


if __name__ == "__main__":
    main()
