#!/usr/bin/env python3
"""scikit-learn as the independent reference for the contact regression (tests/test_contacts.cpp).

  contact_reference.py PAIRS.csv --c C --out PRED.csv

PAIRS.csv: one pair per line, its features then its label (0/1). The objective of performer's fit,
|w|_1 + |b| + C * sum log(1 + exp(-y (w.x + b))), is fitted twice:
  liblinear: LogisticRegression(l1_ratio=1, solver="liblinear"), whose intercept is penalized like a weight;
  saga:      LogisticRegression(l1_ratio=1, solver="saga", fit_intercept=False) on the features and a column
             of ones (the same objective, another solver).
PRED.csv: a header, then per pair the two predicted contact probabilities.
"""
import argparse
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs")
    ap.add_argument("--c", type=float, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    data = np.loadtxt(a.pairs, delimiter=",", ndmin=2)
    X, y = data[:, :-1], data[:, -1].astype(int)
    lib = LogisticRegression(l1_ratio=1.0, C=a.c, solver="liblinear", tol=1e-10, max_iter=100000).fit(X, y)
    ones = np.hstack([X, np.ones((X.shape[0], 1))])
    saga = LogisticRegression(l1_ratio=1.0, C=a.c, solver="saga", fit_intercept=False, tol=1e-12,
                              max_iter=1000000).fit(ones, y)
    p_lib = lib.predict_proba(X)[:, 1]
    p_saga = saga.predict_proba(ones)[:, 1]
    print("liblinear: w", lib.coef_.ravel(), "b", lib.intercept_, file=sys.stderr)
    print("saga:      w", saga.coef_.ravel(), "iterations", saga.n_iter_, file=sys.stderr)
    np.savetxt(a.out, np.stack([p_lib, p_saga], axis=1), delimiter=",", header="liblinear,saga", comments="",
               fmt="%.17g")


if __name__ == "__main__":
    main()
