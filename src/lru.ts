/**
 * A least-recently-used map bounded both by entry count and by a total size the caller states per entry
 * (characters of a document, bytes of a response): the caches in front of GraphQL (documents, warm
 * answers) are keyed by client input, so each must have a hard ceiling on memory, not just on entries.
 */
export interface LruOptions {
  maxEntries: number;
  /** Sum of the sizes of all entries kept. */
  maxTotalSize: number;
}

export class BoundedLru<K, V> {
  // Map insertion order is recency order: a hit is re-inserted at the end, the oldest evicted first.
  private readonly entries = new Map<K, { value: V; size: number }>();
  private total = 0;

  constructor(private readonly options: LruOptions) {
    if (!(options.maxEntries > 0 && options.maxTotalSize > 0)) throw new RangeError('BoundedLru needs positive bounds');
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sum of the sizes of the entries kept. */
  get totalSize(): number {
    return this.total;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Keeps `value`; an entry larger than a tenth of the total budget is not kept at all. */
  set(key: K, value: V, size: number): void {
    this.delete(key);
    if (size > this.options.maxTotalSize / 10) return;
    this.entries.set(key, { value, size });
    this.total += size;
    while (this.entries.size > this.options.maxEntries || this.total > this.options.maxTotalSize) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.total -= entry.size;
  }

  /** Removes `key` only while it still holds `value` (a newer entry may have replaced it meanwhile). */
  deleteIf(key: K, value: V): void {
    if (this.entries.get(key)?.value === value) this.delete(key);
  }
}
