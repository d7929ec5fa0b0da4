/**
 * A least-recently-used cache bounded by a weight budget (bytes, for decoded rasters), with loads
 * de-duplicated: concurrent requests for one missing key share one load, so a burst of point
 * queries on a cold tile reads its BLOB from DuckDB once.
 */
export class LruCache<V> {
  // A Map iterates in insertion order; re-inserting on every hit keeps the oldest entry first.
  private readonly entries = new Map<string, { value: V; weight: number }>();
  private readonly loading = new Map<string, Promise<V>>();
  private totalWeight = 0;
  private hitCount = 0;
  private missCount = 0;
  readonly budget: number;
  private readonly weigh: (value: V) => number;

  /** `budget` is the largest total weight kept; `weigh` gives one value's weight. */
  constructor(budget: number, weigh: (value: V) => number) {
    this.budget = budget;
    this.weigh = weigh;
  }

  /** The cached value, marking it most recently used. */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  /** Stores a value; one heavier than the whole budget is not kept. */
  set(key: string, value: V): void {
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.totalWeight -= old.weight;
    }
    const weight = this.weigh(value);
    if (weight > this.budget) return;
    this.entries.set(key, { value, weight });
    this.totalWeight += weight;
    for (const [k, e] of this.entries) {
      if (this.totalWeight <= this.budget) break;
      this.entries.delete(k);
      this.totalWeight -= e.weight;
    }
  }

  /** The cached value or the result of `load`, shared by every caller asking while it runs. */
  async getOrLoad(key: string, load: () => Promise<V>): Promise<V> {
    const hit = this.get(key);
    if (hit !== undefined) {
      this.hitCount++;
      return hit;
    }
    this.missCount++;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const p = load().then(
      (v) => {
        this.loading.delete(key);
        this.set(key, v);
        return v;
      },
      (err: unknown) => {
        this.loading.delete(key);
        throw err;
      },
    );
    this.loading.set(key, p);
    return p;
  }

  /** Drops every key starting with `prefix` (a closed view's rasters). */
  deletePrefix(prefix: string): void {
    for (const [k, e] of this.entries) {
      if (!k.startsWith(prefix)) continue;
      this.entries.delete(k);
      this.totalWeight -= e.weight;
    }
  }

  /** Entries, total weight, hits and misses (for /metrics). */
  stats(): { entries: number; weight: number; hits: number; misses: number } {
    return {
      entries: this.entries.size,
      weight: this.totalWeight,
      hits: this.hitCount,
      misses: this.missCount,
    };
  }
}
