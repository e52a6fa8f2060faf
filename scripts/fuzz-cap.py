#!/usr/bin/env python3
"""Picks at most CAP inputs of a libFuzzer merge (its -merge_control_file) that cover the most
coverage features, greedily (the input adding most new features first), and copies them into
OUT_DIR: how scripts/fuzz.sh keeps a committed corpus to a few hundred files.

Usage: scripts/fuzz-cap.py CONTROL_FILE CAP OUT_DIR
"""

import heapq
import pathlib
import shutil
import sys


def main():
    control, cap, out = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
    lines = pathlib.Path(control).read_text().split("\n")
    count = int(lines[0])
    names = lines[2 : 2 + count]
    features = {}
    for line in lines[2 + count :]:
        if line.startswith("FT "):
            fields = line.split()
            features[int(fields[1])] = set(map(int, fields[2:]))
    everything = set().union(*features.values()) if features else set()
    # Lazy greedy: a gain only shrinks as coverage grows, so a stale top entry is recomputed.
    heap = [(-len(f), i) for i, f in features.items()]
    heapq.heapify(heap)
    covered, chosen = set(), []
    while heap and len(chosen) < cap:
        gain, i = heapq.heappop(heap)
        fresh = len(features[i] - covered)
        if fresh == 0:
            continue
        if fresh < -gain:
            heapq.heappush(heap, (-fresh, i))
            continue
        chosen.append(i)
        covered |= features[i]
    out.mkdir(parents=True, exist_ok=True)
    for i in chosen:
        shutil.copy(names[i], out / pathlib.Path(names[i]).name)
    share = 100 * len(covered) / max(len(everything), 1)
    print(
        f"kept {len(chosen)} of {len(features)} inputs, "
        f"{len(covered)} of {len(everything)} edges ({share:.1f}%)"
    )


if __name__ == "__main__":
    main()
