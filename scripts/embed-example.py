#!/usr/bin/env python3
"""What protein embeddings from `performer embed` are good for, measured on trembl-sample.

Two checks, each against amino-acid composition (AAC, 20 frequencies) and dipeptide composition (DPC,
400 frequencies), which need no model, and against chance:

1. Nearest neighbours. For every QUERY protein that is not also in DB and whose UniProt name (the header
   words before OS=, "(Fragment)" dropped) is informative and occurs among the DB names, the DB protein
   with the highest cosine similarity (vectors centred on the DB mean) is found; a hit is a neighbour
   with the same name. Reported: top-1 and top-10 hit rates. With --mmseqs (a BLAST-tab file of
   `mmseqs easy-search QUERY DB`), the top alignment hit is scored the same way: what sequence search
   gives.
2. A property from the headers: virus (OS names a virus or phage) against cellular organisms, by L2
   logistic regression on standardized features, 5-fold cross-validation over DB with folds by 50%
   sequence cluster (no cluster in two folds), ROC AUC on each held-out fold (mean and spread).

Needs numpy and h5py only. The logistic regression is a few lines of Newton's method here rather than a
scikit-learn dependency for one README example.

  python3 scripts/embed-example.py --db runs/embed/db.h5 --query runs/embed/query.h5 \
      --db-fasta data/trembl-sample/DB.fasta.gz --query-fasta data/trembl-sample/QUERY.fasta.gz \
      --clusters data/trembl-sample/DB.clusters50.tsv [--mmseqs runs/embed/query-db.m8]
"""
import argparse
import gzip
import re
import sys
import zlib

import h5py
import numpy as np

AMINO = "ACDEFGHIKLMNPQRSTVWY"
UNINFORMATIVE = re.compile(r"uncharacterized|predicted protein|hypothetical protein|^protein$", re.I)


def bare_accession(identifier):
    """"sp|P12345|NAME_HUMAN" -> "P12345"; anything else as it is."""
    parts = identifier.split("|")
    return parts[1] if len(parts) >= 3 else identifier


def read_fasta(path):
    """(accession, name, organism, sequence) per record, in file order."""
    opener = gzip.open if path.endswith(".gz") else open
    out, header, seq = [], None, []

    def flush():
        if header is None:
            return
        first, _, rest = header.partition(" ")
        accession = bare_accession(first)
        name = re.sub(r"\s+OS=.*", "", rest).replace("(Fragment)", "").strip()
        organism = re.search(r"OS=(.*?)(?: [A-Z]{2}=|$)", rest)
        out.append((accession, name, organism.group(1) if organism else "", "".join(seq)))

    with opener(path, "rt") as f:
        for line in f:
            if line.startswith(">"):
                flush()
                header, seq = line[1:].strip(), []
            else:
                seq.append(line.strip())
    flush()
    return out


def load_embeddings(path, records):
    """{'layer_l': [n, d], 'cls_l': [n, d]} from an embed file whose proteins are `records`, in order."""
    with h5py.File(path, "r") as f:
        acc = [a.decode() if isinstance(a, bytes) else a for a in f["proteins/accessions"][()]]
        if acc != [r[0] for r in records]:
            sys.exit(f"{path}: its proteins are not those of the FASTA given with it")
        out = {k: f["per_protein"][k][()] for k in f["per_protein"]}
        if "per_protein_cls" in f:
            out.update({k.replace("layer", "cls"): f["per_protein_cls"][k][()] for k in f["per_protein_cls"]})
        step = int(f.attrs["step"])
    return out, step


def composition(seqs):
    """AAC [n, 20] and DPC [n, 400]: frequencies of residues and of adjacent residue pairs."""
    index = {a: i for i, a in enumerate(AMINO)}
    aac, dpc = np.zeros((len(seqs), 20)), np.zeros((len(seqs), 400))
    for k, s in enumerate(seqs):
        ids = [index[c] for c in s if c in index]
        np.add.at(aac[k], ids, 1)
        pairs = [a * 20 + b for a, b in zip(ids, ids[1:])]
        np.add.at(dpc[k], pairs, 1)
        aac[k] /= max(len(ids), 1)
        dpc[k] /= max(len(pairs), 1)
    return aac, dpc


def unit_rows(x, centre):
    x = x - centre
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def neighbour_hits(db, query, db_names, query_names, k=10):
    """Top-1 and top-k same-name rates of cosine nearest neighbours (centred on the DB mean)."""
    centre = db.mean(axis=0)
    sims = unit_rows(query, centre) @ unit_rows(db, centre).T
    top = np.argsort(-sims, axis=1)[:, :k]
    top1 = np.mean([db_names[t[0]] == n for t, n in zip(top, query_names)])
    topk = np.mean([any(db_names[j] == n for j in t) for t, n in zip(top, query_names)])
    return top1, topk


def logistic_fit(x, y, l2=1.0, iterations=25):
    """L2-regularized logistic regression by Newton's method; x standardized, with a bias column."""
    w = np.zeros(x.shape[1])
    reg = l2 * np.eye(x.shape[1])
    reg[-1, -1] = 0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + reg @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def roc_auc(scores, labels):
    """Mann-Whitney AUC; tied scores get their average rank. NaN without both classes."""
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values, inverse = np.unique(scores, return_inverse=True)
    counts = np.bincount(inverse)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based mean rank of each distinct value
    ranks = average_rank[inverse]
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def cross_validated_auc(x, y, folds):
    """Per-fold ROC AUCs of held-out scores (each fold's model scores only its own fold)."""
    scores, per_fold = np.zeros(len(y)), []
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
        bias = lambda m: np.hstack([m, np.ones((len(m), 1))])
        w = logistic_fit(bias((x[train] - mu) / sd), y[train])
        scores[test] = bias((x[test] - mu) / sd) @ w
        per_fold.append(roc_auc(scores[test], y[test]))
    return np.array(per_fold)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--db-fasta", required=True)
    ap.add_argument("--query-fasta", required=True)
    ap.add_argument("--clusters", required=True, help="representative<TAB>member TSV of DB (folds by cluster)")
    ap.add_argument("--mmseqs", help="BLAST-tab hits of QUERY against DB (mmseqs easy-search)")
    a = ap.parse_args()

    db_rec, q_rec = read_fasta(a.db_fasta), read_fasta(a.query_fasta)
    db_emb, step = load_embeddings(a.db, db_rec)
    q_emb, _ = load_embeddings(a.query, q_rec)
    db_aac, db_dpc = composition([r[3] for r in db_rec])
    q_aac, q_dpc = composition([r[3] for r in q_rec])
    reps = {**{k: (db_emb[k], q_emb[k]) for k in sorted(db_emb)}, "AAC": (db_aac, q_aac), "DPC": (db_dpc, q_dpc)}

    # 1. Nearest neighbours of novel, informatively named QUERY proteins whose name occurs in DB.
    db_names = [r[1] for r in db_rec]
    db_seqs, name_count = {r[3] for r in db_rec}, {}
    for n in db_names:
        name_count[n] = name_count.get(n, 0) + 1
    keep = [i for i, r in enumerate(q_rec)
            if r[3] not in db_seqs and not UNINFORMATIVE.search(r[1]) and name_count.get(r[1], 0) > 0]
    q_names = [q_rec[i][1] for i in keep]
    chance = np.mean([name_count[n] / len(db_rec) for n in q_names])
    print(f"checkpoint step {step}; DB {len(db_rec)} proteins, QUERY {len(q_rec)}")
    print(f"\n1. nearest DB neighbour of {len(keep)} novel QUERY proteins whose name occurs in DB "
          f"(chance of a random DB protein: {chance:.3f})")
    print(f"{'representation':<16}{'dims':>6}{'top-1 same name':>18}{'top-10 any':>12}")
    for k, (d, q) in reps.items():
        top1, top10 = neighbour_hits(d, q[keep], db_names, q_names)
        print(f"{k:<16}{d.shape[1]:>6}{top1:>18.3f}{top10:>12.3f}")
    if a.mmseqs:
        by_acc = {r[0]: r[1] for r in db_rec}
        best = {}
        for line in open(a.mmseqs):
            f = line.split("\t")
            qa, ta = bare_accession(f[0]), bare_accession(f[1])
            if qa not in best or float(f[11]) > best[qa][1]:
                best[qa] = (ta, float(f[11]))
        hits = [best.get(q_rec[i][0]) for i in keep]
        found = sum(h is not None for h in hits)
        same = sum(h is not None and by_acc.get(h[0]) == q_rec[i][1] for h, i in zip(hits, keep))
        print(f"{'mmseqs2 top hit':<16}{'':>6}{same / len(keep):>18.3f}{'':>12}  "
              f"({found} of {len(keep)} have a hit)")

    # 2. Virus or cellular organism, from the sequence's representation.
    y = np.array([1.0 if re.search(r"virus|phage", r[2], re.I) else 0.0 for r in db_rec])
    cluster_of = {}
    for line in open(a.clusters):
        rep, member = (bare_accession(x) for x in line.rstrip("\n").split("\t")[:2])
        cluster_of[member] = rep
    covered = sum(r[0] in cluster_of for r in db_rec)
    if covered < 0.9 * len(db_rec):
        sys.exit(f"{a.clusters}: only {covered} of {len(db_rec)} DB accessions are in it: folds by cluster would "
                 f"leak families; is it the cluster file of {a.db_fasta}?")
    folds = np.array([zlib.crc32(cluster_of.get(r[0], r[0]).encode()) % 5 for r in db_rec])
    print(f"\n2. virus ({int(y.sum())}) or cellular ({int(len(y) - y.sum())}) organism: L2 logistic regression, "
          f"5 folds by 50% cluster, ROC AUC (mean over folds)")
    print(f"{'representation':<16}{'dims':>6}{'AUC':>8}{'sd over folds':>15}{'folds above AAC':>17}")
    lengths = np.log(np.array([[len(r[3])] for r in db_rec], dtype=float))
    aac_folds = cross_validated_auc(db_aac, y, folds)
    for k, d in [*((k, v[0]) for k, v in reps.items()), ("log length", lengths)]:
        per_fold = cross_validated_auc(d.astype(np.float64), y, folds)
        above = int((per_fold > aac_folds).sum())
        print(f"{k:<16}{d.shape[1]:>6}{per_fold.mean():>8.3f}{per_fold.std():>15.3f}{above:>13} of {len(per_fold)}")


if __name__ == "__main__":
    main()
