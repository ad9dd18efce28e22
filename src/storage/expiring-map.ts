/** A Map whose entries expire on an injected clock; expired entries are swept lazily, so it stays bounded by TTL. */
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expiresAtMs: number }>();
  private nextSweepAtMs = 0;

  constructor(
    private readonly clock: () => number,
    /** How often (at most) a write walks the whole map to drop expired entries, ms. */
    private readonly sweepEveryMs = 10_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.clock() >= entry.expiresAtMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    const now = this.clock();
    this.sweep(now);
    this.entries.set(key, { value, expiresAtMs: now + ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAtMs) return;
    this.nextSweepAtMs = now + this.sweepEveryMs;
    for (const [key, entry] of this.entries) if (now >= entry.expiresAtMs) this.entries.delete(key);
  }
}
