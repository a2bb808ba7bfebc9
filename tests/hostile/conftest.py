"""Helpers of the hostile-input tests: what portowner-dump must print for
awkward bytes, and what ss says. Real processes come from the root
conftest's listen fixture, portowner-dump from lib.dump.
"""

import subprocess

from lib import waits


def utf8_or_fffd(raw: bytes) -> str:
    """What our JSON must show for raw bytes: each byte that does not start
    a well-formed UTF-8 sequence becomes U+FFFD on its own (Python's own
    'replace' merges some runs, so it is not the reference)."""
    out, i = [], 0
    while i < len(raw):
        b = raw[i]
        n = 1 if b < 0x80 else 2 if 0xC2 <= b <= 0xDF else \
            3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        if n:
            try:
                out.append(raw[i:i + n].decode("utf-8", errors="strict"))
                i += n
                continue
            except UnicodeDecodeError:
                pass
        out.append("\ufffd")
        i += 1
    return "".join(out)


# Printable characters that are not: bidi controls and line separators.
UNPRINTABLE = {0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A, 0x202B, 0x202C,
               0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}


def table_escaped(raw: bytes) -> bytes:
    """What the text table must show: a backslash doubled, and each byte of
    a character that is not printable (C0, DEL, C1, the bidi controls
    U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069, the separators
    U+2028, U+2029) and each byte that is not UTF-8 as \\xNN."""
    out, i = [], 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                ch = raw[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        else:
            out.append(b"\\x%02x" % raw[i])
            i += 1
            continue
        seq = raw[i:i + n]
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ord(ch) in UNPRINTABLE:
            out.append(b"".join(b"\\x%02x" % c for c in seq))
        elif ch == "\\":
            out.append(b"\\\\")
        else:
            out.append(seq)
        i += n
    return b"".join(out)


def ss_owner_pids(port):
    """The pids ss lists for the TCP listener on port (users:(...))."""
    # errors="replace": ss prints process names, which may hold any byte.
    out = subprocess.run(["ss", "-tlnpH", f"sport = :{port}"],
                         capture_output=True, text=True, errors="replace",
                         check=True, timeout=waits.timeout(120)).stdout
    pids = []
    for part in out.split("pid=")[1:]:
        pids.append(int(part.split(",", 1)[0]))
    return pids
