"""Summarise a py-spy ``--format raw`` profile (collapsed stacks: ``frame;frame;... count``): the
functions with the most samples on-CPU at the top of the stack (self) and anywhere in it
(inclusive, each stack counted once per function). Usage: python benchmarks/pyspy_summary.py
FILE [--top 20]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def summarise(text: str, top: int = 20) -> list[str]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for row in text.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return ["(no samples)"]
    out = [f"{total} samples; self (top of stack):"]
    out += [f"  {n / total:6.1%}  {frame[:150]}" for frame, n in own.most_common(top)]
    out.append("inclusive (anywhere in the stack):")
    out += [f"  {n / total:6.1%}  {frame[:150]}" for frame, n in inclusive.most_common(top)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    print("\n".join(summarise(args.file.read_text(), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
