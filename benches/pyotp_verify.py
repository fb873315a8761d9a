"""pyotp (the most used TOTP library) on the verification verrou's benches measure: a ±1
window checked for a code that matches none of its steps (every step computed, as verrou
always does). Prints the median time per verification as a `PERF-NS` line for benches/run.

Run by benches/run, which installs pyotp 2.9.0 in target/bench-venv first.
"""

import base64
import os
import statistics
import time

import pyotp

START = 1_795_000_000
ROUNDS = 31
BATCH = 2000


def batch(totp: pyotp.TOTP, first: int) -> float:
    """Nanoseconds per verification over one batch."""
    started = time.perf_counter_ns()
    for i in range(BATCH):
        totp.verify("000000", for_time=START + 30 * (first + i), valid_window=1)
    return (time.perf_counter_ns() - started) / BATCH


def main() -> None:
    secret = base64.b32encode(os.urandom(20)).decode()
    totp = pyotp.TOTP(secret)
    batch(totp, 0)  # warm-up
    times = [batch(totp, BATCH * r) for r in range(ROUNDS)]
    median = statistics.median(times)
    print(f"pyotp 2.9.0: {median:.0f} ns per verification (median of {ROUNDS} batches of {BATCH})")
    print(f"PERF-NS\tpyotp\t{median:.0f}")


if __name__ == "__main__":
    main()
