#!/usr/bin/env python3
"""Writes tests/reference/wilcoxon_scipy.json: two-sided Wilcoxon signed-rank
p-values from SciPy for the cases `tests/wilcoxon_scipy.rs` checks our test
against (integer, continuous, tied, zero-difference, large-n, all-zero).

The method mirrors ours (src/listening/stats.rs): zeros dropped (zero_method
"wilcox"); the exact null distribution when at most 50 non-zero differences remain
and there were no zeros and no tied magnitudes, else the normal approximation with
the tie-corrected variance and no continuity correction.

    pip install scipy numpy
    python tests/reference/wilcoxon_fixtures.py     # rewrites the JSON
"""

import json
from pathlib import Path

import numpy as np
import scipy
from scipy.stats import wilcoxon


def ours_exact(d):
    nz = [x for x in d if x != 0]
    mags = [abs(x) for x in nz]
    return len(nz) <= 50 and len(nz) == len(d) and len(set(mags)) == len(mags)


def main():
    rng = np.random.default_rng(20261201)
    cases = {
        "integer untied": [3, -1, 4, 6, -2, 7, 9, 8, 5, 10],
        "integer mostly positive": [1, 2, 3, 4, 5, -6, 7, 8, 9, 11, 12, 13],
        "continuous": [round(float(x), 4) for x in rng.normal(0.4, 1.0, 20)],
        "continuous, 40 units": [round(float(x), 4) for x in rng.normal(-0.2, 1.0, 40)],
        "tied integers": [1, 1, 2, -2, 3, 3, 3, -1, 2, 4, 1, 2],
        "zero differences": [0, 0, 1, 2, -1, 3, 4, 2, 0, 5],
        "zeros and ties from 1..10 scores": [
            int(a) - int(b) for a, b in zip(rng.integers(1, 11, 30), rng.integers(1, 11, 30))
        ],
        "large n, continuous": [round(float(x), 4) for x in rng.normal(0.1, 1.0, 80)],
    }
    out = []
    for name, d in cases.items():
        exact = ours_exact(d)
        res = wilcoxon(
            d,
            zero_method="wilcox",
            correction=False,
            alternative="two-sided",
            method="exact" if exact else "asymptotic",
        )
        out.append(
            {
                "name": name,
                "differences": d,
                "method": "exact" if exact else "normal",
                "p_value": float(res.pvalue),
                "statistic_min_w": float(res.statistic),
            }
        )
    path = Path(__file__).with_name("wilcoxon_scipy.json")
    path.write_text(
        json.dumps({"scipy": scipy.__version__, "cases": out}, indent=1) + "\n"
    )
    print(f"wrote {path} ({len(out)} cases, SciPy {scipy.__version__})")


if __name__ == "__main__":
    main()
