"""Writes the README's performance table from the PERF lines the benches printed.

    python3 benches/table.py LOG_DIR README.md SECONDS

Each bench prints `PERF<TAB>id<TAB>ratio<TAB>target` (target `<= x`, `>= x` or `a to b`);
verrou's and pyotp's times per verification come as `PERF-NS<TAB>name<TAB>ns` and make the
pyotp row. The table replaces what is between the two markers in README.md.
"""

import pathlib
import platform
import re
import sys
import time

MEASURES = {
    "verify_floor": "Verification in memory (±1 window, step compare-and-set, audit record) / 3 raw HMAC-SHA-1 with key set-up",
    "verify_totp_rs": "Verification in memory / totp-rs `check` of an invalid code (its whole ±1 window)",
    "pyotp": "pyotp `verify` of an invalid code (±1 window) / verrou's verification: how many times faster verrou is",
    "store_sqlite": "Verifications/s, 16 users, SQLite `synchronous=FULL` / floor `BEGIN IMMEDIATE; UPDATE … RETURNING; COMMIT`/s",
    "store_postgres": "Verifications/s, 16 users, PostgreSQL over two pools / floor one `UPDATE … RETURNING`/s",
    "authenticate": "`authenticate` (cookie → session, bound cookie checked), SQLite / one primary-key read",
    "proof": "DBSC/WebCrypto proof verification / one bare P-256 ECDSA verification",
    "recovery": "Recovery-code attempt, 10 codes stored / one argon2id verification (19 MiB, t=2)",
    "portal_flows_sqlite": "Example portal, sign-in flows/s (password + TOTP over the JSON API, 64 clients), SQLite / argon2id verifications/s of the machine",
    "portal_flows_postgres": "Example portal, the same on two instances sharing PostgreSQL / argon2id verifications/s",
    "portal_views": "Example portal, job-seeker page views/s with a second-factor session (64 clients) / the same page served without verrou",
    "portal_memory": "Example portal process, peak RSS under 500 concurrent recovery-code attempts / idle RSS + cores × 19 MiB (the argon2 gate's bound)",
    "recovery_lookup": "Wrong recovery code, unknown lookup / known lookup (64 MiB, t=3): no timing tells which exist",
}
BEGIN = "<!-- benches/run: begin -->"
END = "<!-- benches/run: end -->"


def meets(ratio: float, target: str) -> bool:
    if target.startswith("<="):
        return ratio <= float(target[2:])
    if target.startswith(">="):
        return ratio >= float(target[2:])
    low, high = (float(x) for x in target.split(" to "))
    return low <= ratio <= high


def main() -> None:
    logs, readme, seconds = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    rows, times = {}, {}
    for log in sorted(logs.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if parts[0] == "PERF" and len(parts) == 4:
                rows[parts[1]] = (float(parts[2]), parts[3])
            elif parts[0] == "PERF-NS" and len(parts) == 3:
                times[parts[1]] = float(parts[2])
    if "verify" in times and "pyotp" in times:
        rows["pyotp"] = (times["pyotp"] / times["verify"], ">= 40")
    lines = ["| measure | ratio | target | verdict |", "|---|---|---|---|"]
    for key, label in MEASURES.items():
        if key in rows:
            ratio, target = rows[key]
            verdict = "met" if meets(ratio, target) else "**missed**"
            lines.append(f"| {label} | {ratio:.2f} | {target} | {verdict} |")
        else:
            lines.append(f"| {label} | not measured in this run | | |")
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os
    lines.append("")
    lines.append(
        f"Written by `benches/run` on {time.strftime('%Y-%m-%d', time.gmtime())}: "
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"the run took {seconds // 60} min {seconds % 60} s."
    )
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
