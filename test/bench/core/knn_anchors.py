"""One fresh process of an anchor side of the k-NN benchmark (see knn.ts).

Usage: python3 knn_anchors.py <sklearn|ckdtree|faiss> <dir> <name> <runs> [--out]

Reads a case written by knn-data.ts, builds the index (timed apart), answers all queries once to warm
up on the first tenth of the queries, then all of them `runs` times, and prints one JSON line: build ms, per-run CPU seconds
(time.process_time) and wall seconds. Every side does the whole job lanemap does: the k nearest and
the majority vote, ties to the smallest class id (scikit-learn's rule); `--out` writes the labels (i4).
One thread: the parent sets OMP/OPENBLAS_NUM_THREADS=1, and FAISS is told so as well.
Exits 3 with a message on stderr when the side's package is missing.
"""
import json
import sys
import time

import numpy as np

side, d, name, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = len(sys.argv) > 5 and sys.argv[5] == "--out"
DIM, K = 7, 5
x = np.fromfile(f"{d}/{name}.x.bin", dtype="<f8").reshape(-1, DIM)
y = np.fromfile(f"{d}/{name}.y.bin", dtype="<i4")
q = np.fromfile(f"{d}/{name}.q.bin", dtype="<f8").reshape(-1, DIM)


def vote(idx):
    # Majority over the k labels, the smallest class id on a tie (argmax takes the first maximum).
    labels = y[idx]
    rows = np.arange(labels.shape[0])
    counts = np.zeros((labels.shape[0], int(y.max()) + 1), dtype=np.int32)
    for j in range(labels.shape[1]):
        counts[rows, labels[:, j]] += 1
    return counts.argmax(axis=1).astype("<i4")


try:
    if side == "sklearn":
        from sklearn.neighbors import KNeighborsClassifier

        def build():
            return KNeighborsClassifier(n_neighbors=K, algorithm="kd_tree", n_jobs=1).fit(x, y)

        def predict(m, q=q):
            return m.predict(q).astype("<i4")

    elif side == "ckdtree":
        from scipy.spatial import cKDTree

        def build():
            return cKDTree(x)

        def predict(m, q=q):
            return vote(m.query(q, k=K, workers=1)[1])

    elif side == "faiss":
        import faiss

        faiss.omp_set_num_threads(1)
        # FAISS computes in float32: its neighbours can differ from the float64 sides on near ties.
        def predict(m, q=q):
            return vote(m.search(np.ascontiguousarray(q, dtype=np.float32), K)[1])

        def build():
            index = faiss.IndexFlatL2(DIM)
            index.add(np.ascontiguousarray(x, dtype=np.float32))
            return index

    else:
        sys.exit(f"unknown side {side}")
except ImportError as e:
    print(f"{side}: {e}", file=sys.stderr)
    sys.exit(3)

t0 = time.perf_counter()
model = build()
build_ms = (time.perf_counter() - t0) * 1000
predict(model, q[: len(q) // 10 + 1])
cpu, wall = [], []
for _ in range(runs):
    t0, c0 = time.perf_counter(), time.process_time()
    pred = predict(model)
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
if out:
    pred.tofile(f"{d}/{name}.{side}.bin")
print(json.dumps({"buildMs": build_ms, "cpu": cpu, "wall": wall}))
