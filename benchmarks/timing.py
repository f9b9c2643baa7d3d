"""Side-by-side timing: candidates are run interleaved, several rounds, and compared by their medians."""

import statistics
import time


def interleaved(candidates: dict, rounds: int = 5, warmup: int = 1) -> dict:
    """Median seconds per call of each zero-argument callable in ``candidates``, measured in turns."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def verdict(ratio: float, goal: float, higher_is_better: bool = True) -> str:
    ok = ratio >= goal if higher_is_better else ratio <= goal
    return f"{'PASS' if ok else 'MISS'} (goal {'>=' if higher_is_better else '<='} {goal})"
