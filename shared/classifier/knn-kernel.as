// The k-NN search of kdtree.ts as a WebAssembly SIMD kernel, written in AssemblyScript.
//
// Built by `node infra/bin/build-knn-wasm.js` into knn-wasm.ts (the module's bytes, base64), which
// is committed, so running lanemap needs neither AssemblyScript nor a build step; a unit test checks
// that the committed bytes are what this source compiles to. (The extension is .as, not .ts, so the
// project's tsc, eslint and prettier leave this dialect alone; the build script hands it to asc.)
//
// It answers exactly what the JS kernel answers: the same tree (built in JS), the same visiting
// order (nearer child first, the left one on a tie), the same heap (NeighborsHeap._push step for
// step), and bit-identical distances. SIMD lanes never mix terms of one sum: a lane is one point
// (leaf scan) or one child box (bounds), and each lane sums its squares left to right over the
// dimensions as scikit-learn's euclidean_rdist and min_rdist do; f64x2 mul and add round like the
// scalar ones and nothing is fused.
//
// Memory (imported; the host lays it out and passes byte offsets to configure):
//   coords  f64, dimension-major: coordinate j of tree position i at coords + (j * stride + i) * 8,
//           stride >= size + 3 so a leaf's last step of four may read three positions past its end
//   pairs   per internal node n, its two children's boxes as lanes (left child lane 0):
//           lower bounds j at pairs + (n * 2 * dim + j) * 16, upper at pairs + (n * 2 * dim + dim + j) * 16
//   root    the root's box: dim lower then dim upper bounds, f64
//   start, end   per node, i32 (tree positions [start, end)); leaf per node, i32 (1 = leaf)
//   stack (node i32, bound f64), heap (position i32, distance f64), qv (dim splatted query values)

let dim: i32 = 0;
let stride: i32 = 0;
let coords: usize = 0;
let pairs: usize = 0;
let root: usize = 0;
let starts: usize = 0;
let ends: usize = 0;
let leafs: usize = 0;
let stackNode: usize = 0;
let stackBound: usize = 0;
let heapPos: usize = 0;
let heapDist: usize = 0;
let qv: usize = 0;

export function configure(
  dim_: i32,
  stride_: i32,
  coords_: usize,
  pairs_: usize,
  root_: usize,
  starts_: usize,
  ends_: usize,
  leafs_: usize,
  stackNode_: usize,
  stackBound_: usize,
  heapPos_: usize,
  heapDist_: usize,
  qv_: usize,
): void {
  dim = dim_;
  stride = stride_;
  coords = coords_;
  pairs = pairs_;
  root = root_;
  starts = starts_;
  ends = ends_;
  leafs = leafs_;
  stackNode = stackNode_;
  stackBound = stackBound_;
  heapPos = heapPos_;
  heapDist = heapDist_;
  qv = qv_;
}

// NeighborsHeap._push: which of several equal distances is evicted matters, so step for step.
@inline
function push(k: i32, s: f64, pos: i32): void {
  let h: i32 = 0;
  while (true) {
    const c1 = 2 * h + 1;
    const c2 = c1 + 1;
    let sw: i32 = 0;
    if (c1 >= k) break;
    const d1 = load<f64>(heapDist + (<usize>c1 << 3));
    if (c2 >= k) {
      if (d1 > s) sw = c1;
      else break;
    } else {
      const d2 = load<f64>(heapDist + (<usize>c2 << 3));
      if (d1 >= d2) {
        if (s < d1) sw = c1;
        else break;
      } else if (s < d2) sw = c2;
      else break;
    }
    store<f64>(heapDist + (<usize>h << 3), load<f64>(heapDist + (<usize>sw << 3)));
    store<i32>(heapPos + (<usize>h << 2), load<i32>(heapPos + (<usize>sw << 2)));
    h = sw;
  }
  store<f64>(heapDist + (<usize>h << 3), s);
  store<i32>(heapPos + (<usize>h << 2), pos);
}

// The k nearest points of the query at qo (dim f64): on return the heap holds their tree
// positions and squared distances.
@inline
function searchOne(qo: usize, k: i32): void {
  const rowBytes = <usize>stride << 3;
  const half = (dim + 1) >> 1;
  const zero = f64x2.splat(0);
  for (let j: i32 = 0; j < dim; j++) v128.store(qv + (<usize>j << 4), f64x2.splat(load<f64>(qo + (<usize>j << 3))));
  for (let j: i32 = 0; j < k; j++) {
    store<f64>(heapDist + (<usize>j << 3), Infinity);
    store<i32>(heapPos + (<usize>j << 2), 0);
  }
  // The root's bound, as min_rdist: per dimension max(lo - x, x - hi, 0)^2, summed left to right.
  let rootBound: f64 = 0;
  for (let j: i32 = 0; j < dim; j++) {
    const x = load<f64>(qo + (<usize>j << 3));
    let m = load<f64>(root + (<usize>j << 3)) - x;
    if (!(m > 0)) {
      m = x - load<f64>(root + (<usize>(dim + j) << 3));
      if (!(m > 0)) m = 0;
    }
    rootBound += m * m;
  }
  let top: i32 = 0;
  store<i32>(stackNode, 0);
  store<f64>(stackBound, rootBound);
  while (top >= 0) {
    const node = load<i32>(stackNode + (<usize>top << 2));
    const nodeBound = load<f64>(stackBound + (<usize>top << 3));
    top--;
    let worst = load<f64>(heapDist);
    // scikit-learn prunes on bound > worst; its heap rejects dist >= worst, so >= is the same.
    if (nodeBound >= worst) continue;
    if (load<i32>(leafs + (<usize>node << 2)) == 1) {
      const hi = load<i32>(ends + (<usize>node << 2));
      let worstV = f64x2.splat(worst);
      // Four positions per step, i .. i + 3 as two f64x2 lanes pairs: two independent sums in flight.
      for (let i = load<i32>(starts + (<usize>node << 2)); i < hi; i += 4) {
        let p = coords + (<usize>i << 3);
        let x = v128.load(qv);
        let t = f64x2.sub(x, v128.load(p));
        let u = f64x2.sub(x, v128.load(p, 16));
        let acc = f64x2.mul(t, t);
        let acd = f64x2.mul(u, u);
        let j: i32 = 1;
        for (; j < half; j++) {
          p += rowBytes;
          x = v128.load(qv + (<usize>j << 4));
          t = f64x2.sub(x, v128.load(p));
          u = f64x2.sub(x, v128.load(p, 16));
          acc = f64x2.add(acc, f64x2.mul(t, t));
          acd = f64x2.add(acd, f64x2.mul(u, u));
        }
        // Squares only add (and a rounded sum of non-negative terms never decreases): a partial
        // sum at or past the k-th distance rejects the point.
        if (i64x2.all_true(v128.and(f64x2.ge(acc, worstV), f64x2.ge(acd, worstV)))) continue;
        for (; j < dim; j++) {
          p += rowBytes;
          x = v128.load(qv + (<usize>j << 4));
          t = f64x2.sub(x, v128.load(p));
          u = f64x2.sub(x, v128.load(p, 16));
          acc = f64x2.add(acc, f64x2.mul(t, t));
          acd = f64x2.add(acd, f64x2.mul(u, u));
        }
        // In position order, each against the k-th distance as the pushes before it left it.
        const s0 = f64x2.extract_lane(acc, 0);
        if (s0 < worst) {
          push(k, s0, i);
          worst = load<f64>(heapDist);
          worstV = f64x2.splat(worst);
        }
        if (i + 1 >= hi) break;
        const s1 = f64x2.extract_lane(acc, 1);
        if (s1 < worst) {
          push(k, s1, i + 1);
          worst = load<f64>(heapDist);
          worstV = f64x2.splat(worst);
        }
        if (i + 2 >= hi) break;
        const s2 = f64x2.extract_lane(acd, 0);
        if (s2 < worst) {
          push(k, s2, i + 2);
          worst = load<f64>(heapDist);
          worstV = f64x2.splat(worst);
        }
        if (i + 3 >= hi) break;
        const s3 = f64x2.extract_lane(acd, 1);
        if (s3 < worst) {
          push(k, s3, i + 3);
          worst = load<f64>(heapDist);
          worstV = f64x2.splat(worst);
        }
      }
    } else {
      // Both children's bounds at once: lane 0 the left child, lane 1 the right one.
      let b = pairs + ((<usize>node * <usize>dim) << 5);
      let acc = zero;
      for (let j: i32 = 0; j < dim; j++) {
        const x = v128.load(qv + (<usize>j << 4));
        const lo = f64x2.sub(v128.load(b), x);
        const up = f64x2.sub(x, v128.load(b + (<usize>dim << 4)));
        // max(lo - x, x - hi, 0): at most one of the two is positive, since lo <= hi.
        const m = f64x2.max(f64x2.max(lo, up), zero);
        acc = f64x2.add(acc, f64x2.mul(m, m));
        b += 16;
      }
      const b1 = f64x2.extract_lane(acc, 0);
      const b2 = f64x2.extract_lane(acc, 1);
      const c1 = 2 * node + 1;
      const c2 = c1 + 1;
      // Nearer child on top of the stack so it is searched first; the left one on a tie. A child
      // whose bound already reaches the k-th distance would be pruned when popped: not pushed.
      if (b1 <= b2) {
        if (b2 < worst) {
          top++;
          store<i32>(stackNode + (<usize>top << 2), c2);
          store<f64>(stackBound + (<usize>top << 3), b2);
        }
        if (b1 < worst) {
          top++;
          store<i32>(stackNode + (<usize>top << 2), c1);
          store<f64>(stackBound + (<usize>top << 3), b1);
        }
      } else {
        if (b1 < worst) {
          top++;
          store<i32>(stackNode + (<usize>top << 2), c1);
          store<f64>(stackBound + (<usize>top << 3), b1);
        }
        if (b2 < worst) {
          top++;
          store<i32>(stackNode + (<usize>top << 2), c2);
          store<f64>(stackBound + (<usize>top << 3), b2);
        }
      }
    }
  }
}

// The k nearest of queries order[first .. first + count) (indices into q, point-major f64, dim
// each): query qi's k tree positions (heap order) go to out + (qi * k + j) * 4.
export function neighbours(q: usize, order: usize, first: i32, count: i32, out: usize, k: i32): void {
  for (let n = first; n < first + count; n++) {
    const qi = load<i32>(order + (<usize>n << 2));
    searchOne(q + ((<usize>qi * <usize>dim) << 3), k);
    const o = out + ((<usize>qi * <usize>k) << 2);
    for (let j: i32 = 0; j < k; j++) store<i32>(o + (<usize>j << 2), load<i32>(heapPos + (<usize>j << 2)));
  }
}

// Majority votes of the k nearest of queries order[first .. first + count), as KnnEngine.predict:
// labels (u8) per tree position, class ids 1 .. classTop - 1, the smallest id on a tie in votes.
// Query qi's class goes to classes + qi (u8) and its vote share, rounded to f32 as a Float32Array
// store rounds it, to confidence + qi * 4. votes is scratch for classTop i32.
export function classify(
  q: usize,
  order: usize,
  first: i32,
  count: i32,
  k: i32,
  labels: usize,
  classTop: i32,
  votes: usize,
  classes: usize,
  confidence: usize,
): void {
  for (let n = first; n < first + count; n++) {
    const qi = load<i32>(order + (<usize>n << 2));
    searchOne(q + ((<usize>qi * <usize>dim) << 3), k);
    memory.fill(votes, 0, <usize>classTop << 2);
    for (let j: i32 = 0; j < k; j++) {
      const at = votes + (<usize>load<u8>(labels + <usize>load<i32>(heapPos + (<usize>j << 2))) << 2);
      store<i32>(at, load<i32>(at) + 1);
    }
    let best: i32 = 1;
    let bestVotes = load<i32>(votes + 4);
    for (let c: i32 = 2; c < classTop; c++) {
      const v = load<i32>(votes + (<usize>c << 2));
      if (v > bestVotes) {
        best = c;
        bestVotes = v;
      }
    }
    store<u8>(classes + <usize>qi, <u8>best);
    store<f32>(confidence + (<usize>qi << 2), <f32>(<f64>bestVotes / <f64>k));
  }
}

// Morton keys of count queries (point-major f64 at q, dim each), as order.ts computes them: cell
// c = floor((x - lo[j]) * scale[j]) clamped to 0 .. cells - 1 (NaN to 0), then the two 26-bit key
// halves as ORs of the per-dimension spread tables (i32, cells per dimension).
export function mortonKeys(
  q: usize,
  count: i32,
  lo: usize,
  scale: usize,
  cells: i32,
  spreadLo: usize,
  spreadHi: usize,
  hiKey: usize,
  loKey: usize,
): void {
  for (let i: i32 = 0; i < count; i++) {
    const o = q + ((<usize>i * <usize>dim) << 3);
    let high: i32 = 0;
    let low: i32 = 0;
    for (let j: i32 = 0; j < dim; j++) {
      const c = Math.floor((load<f64>(o + (<usize>j << 3)) - load<f64>(lo + (<usize>j << 3))) * load<f64>(scale + (<usize>j << 3)));
      const cell: i32 = c >= 0 ? (c < <f64>cells ? <i32>c : cells - 1) : 0;
      const at = (<usize>(j * cells + cell)) << 2;
      high |= load<i32>(spreadHi + at);
      low |= load<i32>(spreadLo + at);
    }
    store<i32>(hiKey + (<usize>i << 2), high);
    store<i32>(loKey + (<usize>i << 2), low);
  }
}

// order.ts's radix sort: the stable permutation sorting count keys (loKey low half, hiKey high
// half) in four 13-bit counting passes, least significant first; written to order (spare and
// counts, 8192 i32, are scratch).
export function radixOrder(count: i32, hiKey: usize, loKey: usize, order: usize, spare: usize, counts: usize): void {
  for (let i: i32 = 0; i < count; i++) store<i32>(order + (<usize>i << 2), i);
  let from = order;
  let to = spare;
  for (let pass: i32 = 0; pass < 4; pass++) {
    const keys = pass < 2 ? loKey : hiKey;
    const shift = (pass & 1) * 13;
    memory.fill(counts, 0, 8192 << 2);
    for (let i: i32 = 0; i < count; i++) {
      const at = counts + (<usize>((load<i32>(keys + (<usize>i << 2)) >>> shift) & 8191) << 2);
      store<i32>(at, load<i32>(at) + 1);
    }
    let sum: i32 = 0;
    for (let r: i32 = 0; r < 8192; r++) {
      const at = counts + (<usize>r << 2);
      const c = load<i32>(at);
      store<i32>(at, sum);
      sum += c;
    }
    for (let i: i32 = 0; i < count; i++) {
      const item = load<i32>(from + (<usize>i << 2));
      const at = counts + (<usize>((load<i32>(keys + (<usize>item << 2)) >>> shift) & 8191) << 2);
      const slot = load<i32>(at);
      store<i32>(at, slot + 1);
      store<i32>(to + (<usize>slot << 2), item);
    }
    const t = from;
    from = to;
    to = t;
  }
}
