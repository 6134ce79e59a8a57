"""Hostile access-log input for robustness tests: every kind of garbage a log pipeline meets."""

from __future__ import annotations

import json
import random

INJECTIONS = [
    "' OR 1=1--",
    '"; DROP TABLE verdicts; --',
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "${jndi:ldap://x/a}",
    "../../../../etc/passwd",
    "%00%0d%0aSet-Cookie:x",
    "\u202e\u0000\ufeff",
    "{{7*7}}",
]
GOOD = {
    "ts": 1_793_491_200.0,
    "ip": "198.51.100.7",
    "method": "GET",
    "path": "/api/v1/items/1",
    "status": 200,
    "host": "shop.example.com",
    "bytes": 10,
    "ua": "Mozilla/5.0",
    "latency_ms": 3.0,
}


def hostile_lines(n: int = 10_000, seed: int = 1) -> list[bytes]:
    """``n`` lines, most of them bad in a different way, some of them good (with hostile content)."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    for i in range(n):
        kind = i % 12
        rec = dict(GOOD, ts=GOOD["ts"] + i * 0.01)
        if kind == 0:
            out.append(rnd.randbytes(rnd.randint(1, 300)).replace(b"\n", b" "))  # random bytes
        elif kind == 1:
            out.append(b'{"ip": "' + b"A" * rnd.randint(70_000, 200_000) + b'"}')  # huge line
        elif kind == 2:
            depth = rnd.randint(50, 5000)
            out.append(b"[" * depth + b"]" * depth)  # deep JSON
        elif kind == 3:
            field = rnd.choice(["ts", "ip", "method", "path", "status", "bytes", "latency_ms", "ua", "host"])
            rec[field] = rnd.choice([[], {}, {"$gt": ""}, True, None, 1e308, -1, "NaN", [1, [2, [3]]]])
            out.append(json.dumps(rec).encode())  # wrong types
        elif kind == 4:
            for f in ("path", "ua", "host", "referer", "session", "xff"):
                rec[f] = "/" + rnd.choice(INJECTIONS) if f == "path" else rnd.choice(INJECTIONS)
            out.append(json.dumps(rec).encode())  # injection strings everywhere: a valid record
        elif kind == 5:
            out.append(json.dumps(rec).encode()[: -rnd.randint(1, 20)])  # truncated JSON
        elif kind == 6:
            out.append(b'{"ip": "\xff\xfe\xc3\x28", "ts": 1}')  # invalid UTF-8
        elif kind == 7:
            rec["ts"] = rnd.choice([-1e18, 1e18, 0, "9999-99-99T99:99:99Z", "yesterday", 253402300800])
            out.append(json.dumps(rec).encode())  # absurd timestamps
        elif kind == 8:
            rec["ip"] = rnd.choice(["2001:db8::7", "::ffff:198.51.100.9", "fe80::1%eth0", "2001:DB8:0:0::1"])
            out.append(json.dumps(rec).encode())  # IPv6 forms
        elif kind == 9:
            rec["ip"] = rnd.choice(["999.1.1.1", "1.2.3", "localhost", "", "1.2.3.4.5", "::::", "' OR 1=1"])
            out.append(json.dumps(rec).encode())  # bad IPs
        elif kind == 10:
            out.append(rnd.choice([b"", b"   ", b"null", b"[]", b'"x"', b"{}", b"\x00\x00"]))
        else:
            out.append(json.dumps(rec).encode())  # good
    return out
