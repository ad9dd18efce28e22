/**
 * Warm responses of the HTTP fast path (fast-path.ts): a query whose answer is a pure function of cached
 * Exotel objects is answered with the bytes it was answered with last time, as long as every one of those
 * objects is still the one in the cache.
 *
 * Correct by construction rather than by invalidation: the memory cache hands out the same frozen object
 * until the entry is written again or expires (storage/cache.ts), so "every object read is still the very
 * object in the cache" means "executing again would read the same data and give the same bytes". A hit
 * re-reads those keys (one cache read per kind, as a normal execution would) and compares identities; a
 * callback that updated the call, a refresh from Exotel or an expiry all make it a miss. Backends that
 * deserialise a fresh object per read (Redis) would never validate, so the gateway turns this off there.
 *
 * Which queries qualify is decided from the schema, not from a list that could go stale: the root fields
 * in {@link PURE_ROOT_FIELDS} (they only load through the loaders), and below them only fields without a
 * resolver of their own (plain properties, enums, scalars). `Call.events` (the event log) has a resolver,
 * so a query that asks for it is never kept. An execution that missed the cache for any key (it asked
 * Exotel), or had any error, is not kept either.
 */
import { getNamedType, isObjectType, Kind, TypeInfo, visit, visitWithTypeInfo, BREAK, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { EntityCache } from '../cache/entities.js';
import type { Call, NumberMetadata, SmsMessage } from '../exotel/types.js';
import { BoundedLru } from '../lru.js';

/** Root fields whose result comes from the loaders alone. */
export const PURE_ROOT_FIELDS: ReadonlySet<string> = new Set(['call', 'callsBySid', 'sms', 'smsBySid', 'numberMetadata', 'numbersMetadata']);

/** Defaults, declared once. */
export const RESPONSE_CACHE_DEFAULTS = Object.freeze({
  /** Responses kept (least recently used evicted first). */
  maxEntries: 5_000,
  /** Characters of all kept responses together (a response over a tenth of it is not kept). */
  maxTotalChars: 16 * 1024 * 1024,
});

/** The cached objects one execution read, recorded by the loaders (loaders.ts). */
export interface EntityReads {
  calls: Map<string, Call | null>;
  sms: Map<string, SmsMessage | null>;
  numbers: Map<string, NumberMetadata | null>;
  /** Some key was not in the cache (or the cache failed): the answer came, at least partly, from Exotel. */
  missed: boolean;
}

export function newEntityReads(): EntityReads {
  return { calls: new Map(), sms: new Map(), numbers: new Map(), missed: false };
}

interface Entry {
  body: string;
  reads: EntityReads;
}

export interface ResponseCache {
  /** Whether answers to `document` may be kept at all (memoised per document object). */
  eligible(document: DocumentNode): boolean;
  /** The kept answer for `key`, if every object it was built from is still the one cached. */
  get(key: string): Promise<string | undefined>;
  /** Keeps `body` for `key` unless the execution missed the cache or the body is too large. */
  put(key: string, body: string, reads: EntityReads): void;
  readonly size: number;
}

export interface ResponseCacheOptions {
  schema: GraphQLSchema;
  cache: EntityCache;
  maxEntries?: number;
  maxTotalChars?: number;
}

/**
 * The fields below the root that are plain properties: no resolver of their own. Read once, when the
 * gateway starts: Apollo later wraps every resolver of the schema it serves in place (for its plugins'
 * willResolveField), after which every field would seem to have one.
 */
export function plainFields(schema: GraphQLSchema): ReadonlySet<string> {
  const plain = new Set<string>();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) if (field.resolve === undefined) plain.add(`${type.name}.${field.name}`);
  }
  return plain;
}

/** True when every field `document` selects is a pure root field, or a plain field below one. */
export function isPureDocument(schema: GraphQLSchema, document: DocumentNode, plain: ReadonlySet<string> = plainFields(schema)): boolean {
  const typeInfo = new TypeInfo(schema);
  const queryType = schema.getQueryType();
  let pure = true;
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition(node) {
        if (node.operation !== 'query') {
          pure = false;
          return BREAK;
        }
        return undefined;
      },
      Field(node) {
        if (node.name.value === '__typename') return undefined;
        const parent = typeInfo.getParentType();
        const named = parent ? getNamedType(parent) : undefined;
        const ok =
          named !== undefined &&
          isObjectType(named) &&
          (named === queryType ? PURE_ROOT_FIELDS.has(node.name.value) : plain.has(`${named.name}.${node.name.value}`));
        if (!ok) {
          pure = false;
          return BREAK;
        }
        return undefined;
      },
    }),
  );
  return pure && document.definitions.every((d) => d.kind === Kind.OPERATION_DEFINITION || d.kind === Kind.FRAGMENT_DEFINITION);
}

async function stillCached<V>(reads: Map<string, V>, read: (keys: readonly string[]) => Promise<Array<V | undefined>>): Promise<boolean> {
  if (reads.size === 0) return true;
  const keys = [...reads.keys()];
  const now = await read(keys);
  return keys.every((key, i) => now[i] === reads.get(key));
}

export function createResponseCache(options: ResponseCacheOptions): ResponseCache {
  const { cache } = options;
  const plain = plainFields(options.schema);
  const verdicts = new WeakMap<DocumentNode, boolean>();
  const entries = new BoundedLru<string, Entry>({
    maxEntries: options.maxEntries ?? RESPONSE_CACHE_DEFAULTS.maxEntries,
    maxTotalSize: options.maxTotalChars ?? RESPONSE_CACHE_DEFAULTS.maxTotalChars,
  });

  return {
    get size() {
      return entries.size;
    },
    eligible(document) {
      let verdict = verdicts.get(document);
      if (verdict === undefined) verdicts.set(document, (verdict = isPureDocument(options.schema, document, plain)));
      return verdict;
    },
    async get(key) {
      const entry = entries.get(key);
      if (!entry) return undefined;
      const { reads } = entry;
      let valid: boolean;
      try {
        const [calls, sms, numbers] = await Promise.all([
          stillCached(reads.calls, (k) => cache.getCalls(k)),
          stillCached(reads.sms, (k) => cache.getSms(k)),
          stillCached(reads.numbers, (k) => cache.getNumbers(k)),
        ]);
        valid = calls && sms && numbers;
      } catch {
        valid = false;
      }
      if (valid) return entry.body;
      // Stale: dropped, so it holds no object the main cache has let go of (unless a newer answer replaced it).
      entries.deleteIf(key, entry);
      return undefined;
    },
    put(key, body, reads) {
      if (reads.missed) return;
      entries.set(key, { body, reads }, body.length + key.length);
    },
  };
}
