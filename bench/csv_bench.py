"""CSV reading speed: ``warmcheck.readers.csvlog.read_csv`` against plain ``pandas.read_csv``.

Two files: a tall one (200,000 rows x 6 columns) and the bad-input corpus's wide Lightning
``metrics.csv`` (20,003 columns x 50 rows). Best of ``--reps`` for both readers, measured in the same
run, so the ratio is about the code and not the machine.

    python bench/csv_bench.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from warmcheck.readers.csvlog import read_csv

ROOT = Path(__file__).resolve().parent.parent


def best(fn, reps: int) -> float:
    out = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wc-csv-bench-") as tmp:
        rng = np.random.default_rng(0)
        n = 200_000
        tall = Path(tmp) / "tall.csv"
        pd.DataFrame({"step": np.arange(n), **{k: rng.random(n) for k in "abcde"}}).to_csv(tall, index=False)
        subprocess.run([sys.executable, str(ROOT / "tests" / "data" / "make_badinputs.py"), str(Path(tmp) / "bad")],
                       check=True, stdout=subprocess.DEVNULL)
        wide = Path(tmp) / "bad" / "csv_wide" / "metrics.csv"
        for name, path in (("tall 200000x6", tall), ("wide 50x20003", wide)):
            ours = best(lambda p=path: read_csv(str(p)), args.reps)
            plain = best(lambda p=path: pd.read_csv(p), args.reps)
            print(json.dumps({"file": name, "warmcheck_s": round(ours, 3), "pandas_s": round(plain, 3),
                              "ratio": round(ours / plain, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
