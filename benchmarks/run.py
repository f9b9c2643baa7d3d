"""``make bench``: every benchmark file, in turn. Each prints its ratios, measured side by side."""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

if __name__ == "__main__":
    only = sys.argv[1:]
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        print(f"\n#### {path.name}")
        runpy.run_path(str(path), run_name="__main__")
