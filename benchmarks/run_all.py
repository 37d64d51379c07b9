"""Run every benchmark (`make bench`): each `bench_*.py` here, figures printed and in JSON.

    python benchmarks/run_all.py [--out bench-output] [--only tile,infer]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--only", default=None, help="comma-separated names, e.g. tile,infer")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    results = {}
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(script.stem, script)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {name} ==", flush=True)
        start = time.perf_counter()
        environ = dict(os.environ)  # e.g. a Dask LocalCluster sets OMP_NUM_THREADS=1 here
        try:
            results[name] = module.main(args.out)
        finally:
            os.environ.clear()
            os.environ.update(environ)
        print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "all.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
