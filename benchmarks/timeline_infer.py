"""Where each thread of ``infer`` spends its time: stacks sampled every few milliseconds.

    python benchmarks/timeline_infer.py MODEL SCENE [--device cuda] [--every 0.005]

Runs ``infer`` once to warm up (the bundle's load, CUDA's first use), then again while a
sampler thread records every other thread's innermost geovision frame and innermost frame;
prints each thread's most frequent places and the main thread's timeline in 100 ms steps. On a
GPU it showed which lane the model's thread waited for (reads, writes, encoders).
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from types import FrameType


def describe(frame: FrameType) -> tuple[list[str], str]:
    """(geovision frames innermost first, the innermost frame) as ``file:function:line``."""
    inner = f"{frame.f_code.co_filename.split('/')[-1]}:{frame.f_code.co_name}:{frame.f_lineno}"
    chain: list[str] = []
    f: FrameType | None = frame
    while f is not None:
        name = f.f_code.co_filename
        if "/geovision/" in name:
            chain.append(f"{name.split('/geovision/')[-1]}:{f.f_code.co_name}:{f.f_lineno}")
        f = f.f_back
    return chain, inner


def main() -> None:
    """Parse the arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("scene")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--every", type=float, default=0.005, help="seconds between samples")
    parser.add_argument("--out", default="bench-output/timeline")
    a = parser.parse_args()

    import torch

    from geovision.inference import infer

    if a.device.startswith("cuda"):
        torch.zeros(1, device=a.device)
    kwargs = {"window": 512, "overlap": 0.25, "batch_size": 4, "overwrite": True,
              "quiet": True, "device": a.device}
    infer(a.model, a.scene, f"{a.out}-warm", **kwargs)
    samples: list[tuple[float, int, tuple[list[str], str]]] = []
    stop = threading.Event()

    def sample() -> None:
        me = threading.get_ident()
        while not stop.is_set():
            t = time.perf_counter()
            for tid, frame in sys._current_frames().items():
                if tid != me:
                    samples.append((t, tid, describe(frame)))
            time.sleep(a.every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    infer(a.model, a.scene, a.out, **kwargs)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    print(f"wall {wall:.3f} s, {len(samples)} samples")
    names = {t.ident: t.name for t in threading.enumerate()}
    per: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, tid, (chain, inner) in samples:
        per[tid][f"{chain[0] if chain else '-'} <{inner}>"] += 1
    for tid, counts in per.items():
        total = sum(counts.values())
        print(f"== thread {names.get(tid, tid)} ({total} samples)")
        for place, n in counts.most_common(10):
            print(f"  {n / total:5.1%} {place}")
    main_id = threading.main_thread().ident
    steps: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for t, tid, (chain, inner) in samples:
        if tid == main_id:
            where = chain[0].split(":")[1] if chain else "-"
            steps[int((t - t0) / 0.1)][f"{where}/{inner.split(':')[1]}"] += 1
    for k in sorted(steps):
        print(f"{k * 0.1:5.1f}", ", ".join(f"{n}:{m}" for m, n in steps[k].most_common(3)))


if __name__ == "__main__":
    main()
