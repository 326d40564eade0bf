#!/usr/bin/env python3
"""Writes the 8x8 digits fixture used by the tests, the README and the benchmarks.

Source: scikit-learn's `load_digits` (1797 images, 8x8, labels 0-9), a copy of the test part of
the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak, 1998),
https://doi.org/10.24432/C50P49, licensed CC BY 4.0.

Features are scaled from 0..16 to [0, 1]. The split is fixed: numpy permutation with seed 0,
the first 80 % (1438 rows) train, the rest (359 rows) test. CSV layout: label, then 64 features,
with a header row.
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "Tests", "PFCTests", "Fixtures")
d = load_digits()
x = d.data / 16.0
y = d.target
perm = np.random.RandomState(0).permutation(len(y))
cut = int(round(0.8 * len(y)))
header = "label," + ",".join(f"p{i}" for i in range(x.shape[1]))
for name, idx in (("digits_train.csv", perm[:cut]), ("digits_test.csv", perm[cut:])):
    with open(os.path.join(out, name), "w") as f:
        f.write(header + "\n")
        for i in idx:
            f.write(str(int(y[i])) + "," + ",".join(f"{v:g}" for v in x[i]) + "\n")
    print(f"wrote {name}: {len(idx)} rows")
