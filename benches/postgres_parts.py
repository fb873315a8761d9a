#!/usr/bin/env python3
"""Where a PostgreSQL verification's server time goes: pgbench, 16 clients, on a scratch
schema built from verrou's own migrations (`src/store/sql/schema.rs`) and verification
function (`src/store/sql/postgres.rs`), each part against the stores bench's floor (one
`UPDATE ... RETURNING`) in the same run. Needs `pgbench` (Debian's postgresql package) and
the server of VERROU_TEST_POSTGRES_URL. Writes nothing outside the schema, which it drops.

Run: python3 benches/postgres_parts.py [seconds per part, default 8]
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("VERROU_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/test")
SCHEMA = "verrou_parts"
PGBENCH = next(
    (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), "pgbench"
)

USER = "'u' || (:client_id::int + 1)"
STEP = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
PARTS = {
    "floor: one UPDATE ... RETURNING": (
        "UPDATE bench_floor SET n = n + 1 WHERE task = :client_id::int + 1 RETURNING n;"
    ),
    "the factor read": (
        "SELECT factor_id, sealed, algorithm, digits, period, last_step "
        f"FROM verrou_totp_active WHERE user_id = {USER};"
    ),
    "step update + audit insert, one transaction": (
        "BEGIN;\n"
        f"UPDATE verrou_totp_active SET last_step = {STEP} WHERE user_id = {USER};\n"
        "INSERT INTO verrou_audit (at, user_id, client, kind, factor_id, value) "
        f"VALUES (1795000000, {USER}, '192.0.2.1', 'totp_accepted', 'f', 5);\n"
        "COMMIT;"
    ),
    "step update + audit insert, one call": f"SELECT parts_step_audit({USER}, {STEP});",
    "verrou_attempt_totp, an accepted code": (
        f"SELECT * FROM verrou_attempt_totp({USER}, 'f' || (:client_id::int + 1), {STEP}, "
        "'address:192.0.2.' || :client_id::int, 0, 0, 1, 1795000000, "
        f"'account:' || {USER}, 0, 0, 1, 1795000000, "
        f"1795000000, {USER}, '192.0.2.1', 'totp_accepted', 'f', 5, NULL, NULL);"
    ),
}

# The two writes an accepted code cannot do without, as one call and nothing else.
STEP_AUDIT = """
CREATE FUNCTION parts_step_audit(p_user TEXT, p_step BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $parts$
BEGIN
    UPDATE verrou_totp_active SET last_step = p_step WHERE user_id = p_user;
    INSERT INTO verrou_audit (at, user_id, client, kind, factor_id, value)
    VALUES (1795000000, p_user, '192.0.2.1', 'totp_accepted', 'f', 5);
END
$parts$;
"""


def setup_sql() -> str:
    schema = (ROOT / "src/store/sql/schema.rs").read_text()
    postgres = (ROOT / "src/store/sql/postgres.rs").read_text()
    function = re.search(r"(CREATE FUNCTION verrou_attempt_totp.*\$verrou\$;)", postgres, re.S)
    sql = ["SET client_min_messages = warning;",
           f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};",
           f"SET search_path = {SCHEMA};"]
    for ddl in re.findall(r'r"\n(.*?)",', schema, re.S):
        sql.append(ddl.replace("{blob}", "BYTEA").replace(
            "{serial}", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"))
    sql.append(function.group(1))
    sql.append(STEP_AUDIT)
    sql.append("CREATE TABLE bench_floor (task BIGINT PRIMARY KEY, n BIGINT NOT NULL);")
    sql.append("INSERT INTO bench_floor SELECT g, 0 FROM generate_series(1, 16) g;")
    sql.append("INSERT INTO verrou_totp_active SELECT 'u' || g, 'f' || g, '\\x00', 'SHA1', "
               "6, 30, 0, 0 FROM generate_series(1, 16) g;")
    return "\n".join(sql)


def main() -> None:
    seconds = sys.argv[1] if len(sys.argv) > 1 else "8"
    subprocess.run(["psql", URL, "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=terse"], input=setup_sql(),
                   text=True, check=True)
    env = dict(os.environ, PGOPTIONS=f"-c search_path={SCHEMA}")
    try:
        results = {}
        for _ in range(2):
            for name, script in PARTS.items():
                with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
                    f.write(script + "\n")
                    f.flush()
                    out = subprocess.run(
                        [PGBENCH, "-n", "-c", "16", "-j", "2", "-T", seconds, "-M", "prepared",
                         "-f", f.name, URL],
                        env=env, text=True, capture_output=True, check=True).stdout
                tps = float(re.search(r"^tps = ([0-9.]+)", out, re.M).group(1))
                results.setdefault(name, []).append(tps)
        floor = sum(results[next(iter(PARTS))]) / 2
        print(f"pgbench, 16 clients, {seconds} s per part, two passes (tps of each, and the "
              "mean over the floor's mean):")
        for name, runs in results.items():
            ratio = sum(runs) / 2 / floor
            print(f"  {name:48} {runs[0]:8.0f} {runs[1]:8.0f}  {ratio:5.2f} of the floor")
    finally:
        subprocess.run(["psql", URL, "-q", "-c", f"SET client_min_messages = warning; DROP SCHEMA {SCHEMA} CASCADE"],
                       check=True)


if __name__ == "__main__":
    main()
