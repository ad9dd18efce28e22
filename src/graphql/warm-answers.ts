/**
 * Warm answers, as an Apollo plugin: a query whose answer is a pure function of Exotel objects the replica
 * holds (src/cache/near.ts) is answered with the result it was answered with last time, without executing,
 * while every object it was built from still has the version it had then. The check reads only this
 * replica's memory, so a warm query costs no round trip to Redis either; it runs after Apollo has
 * authenticated the caller (the context), parsed and validated the document and applied every limit.
 *
 * Which queries qualify is decided from the schema, not from a list that could go stale: the root fields in
 * {@link PURE_ROOT_FIELDS} (they load through the loaders alone), and below them only fields without a
 * resolver of their own (plain properties, enums, scalars). `Call.events` has a resolver (the event log),
 * so a query asking for it always executes. An execution that read any object not held here (it came from
 * the shared cache under a fence, or from Exotel) or that had any error is not kept.
 *
 * Answers are keyed by operation name, document text and variables only: a query reads the same data for
 * every client key (scopes limit mutations, not queries), and a missing or wrong key still fails before
 * this plugin runs.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { BREAK, getNamedType, isObjectType, Kind, TypeInfo, visit, visitWithTypeInfo, type DocumentNode, type GraphQLSchema } from 'graphql';
import { LRUCache } from 'lru-cache';
import { newEntityReads, type EntityReads, type NearEntityCache } from '../cache/near.js';
import type { GraphQLContext } from './context.js';

/** Root fields whose result comes from the loaders alone. */
export const PURE_ROOT_FIELDS: ReadonlySet<string> = new Set(['call', 'callsBySid', 'sms', 'smsBySid', 'numberMetadata', 'numbersMetadata']);

/** Bounds, declared once. */
export const WARM_ANSWERS = Object.freeze({
  /** Answers kept (least recently used dropped first). */
  maxEntries: 5_000,
  /** Characters of all kept answers and their keys together; one over a tenth of it is not kept. */
  maxTotalChars: 16 * 1024 * 1024,
});

/**
 * The variables as key text; undefined for variables nested deeper than the stack can serialise, which are
 * never warm (execution refuses them as bad input).
 */
function variablesKey(variables: Record<string, unknown> | undefined): string | undefined {
  try {
    return JSON.stringify(variables ?? {});
  } catch {
    return undefined;
  }
}

/**
 * The fields below the root that are plain properties: no resolver of their own. Read when the plugin is
 * made, before Apollo wraps the schema's resolvers for plugins that observe fields.
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

interface Kept {
  data: Record<string, unknown>;
  versions: ReadonlyMap<string, number>;
}

export interface WarmAnswers {
  plugin: ApolloServerPlugin<GraphQLContext>;
  /** Answers given without executing, and answers kept (tests, metrics). */
  stats(): { warm: number; kept: number };
}

export function createWarmAnswers(options: { schema: GraphQLSchema; near: NearEntityCache; maxEntries?: number; maxTotalChars?: number }): WarmAnswers {
  const { near } = options;
  const plain = plainFields(options.schema);
  // Apollo hands out the same parsed document for the same text (its document store).
  const verdicts = new WeakMap<DocumentNode, boolean>();
  const maxTotal = options.maxTotalChars ?? WARM_ANSWERS.maxTotalChars;
  const answers = new LRUCache<string, Kept>({
    max: options.maxEntries ?? WARM_ANSWERS.maxEntries,
    maxSize: maxTotal,
    maxEntrySize: Math.floor(maxTotal / 10),
    sizeCalculation: (kept, key) => key.length + JSON.stringify(kept.data).length,
  });
  const counts = { warm: 0, kept: 0 };
  const pure = (document: DocumentNode) => {
    let verdict = verdicts.get(document);
    if (verdict === undefined) verdicts.set(document, (verdict = isPureDocument(options.schema, document, plain)));
    return verdict;
  };

  const plugin: ApolloServerPlugin<GraphQLContext> = {
    async requestDidStart() {
      let key: string | undefined;
      let reads: EntityReads | undefined;
      return {
        async responseForOperation({ operation, document, source, operationName, request, contextValue, response }) {
          // No operation (a wrong or missing operationName): Apollo answers OPERATION_RESOLUTION_FAILURE itself.
          if (operation?.operation !== 'query' || !pure(document)) return null;
          const variables = variablesKey(request.variables);
          if (variables === undefined) return null;
          key = `${operationName ?? ''}\u0000${source}\u0000${variables}`;
          const kept = answers.get(key);
          if (kept && near.current(kept.versions)) {
            counts.warm++;
            return { http: response.http, body: { kind: 'single', singleResult: { data: kept.data } } };
          }
          // Executes: its loaders record the version of every object they read. Loaders that were used before
          // (or by another operation of a batch, which shares them) may hold objects this one would not
          // record: then neither is kept.
          const slot = contextValue.reads;
          reads = newEntityReads();
          if (slot.used || slot.current) {
            if (slot.current) slot.current.missed = true;
            reads.missed = true;
          } else slot.current = reads;
          return null;
        },
        async willSendResponse({ response }) {
          if (!key || !reads || reads.missed || reads.versions.size === 0 || response.body.kind !== 'single') return;
          const { data, errors } = response.body.singleResult;
          if (errors?.length || !data || (response.http.status ?? 200) !== 200) return;
          answers.set(key, { data, versions: reads.versions });
          counts.kept++;
        },
      };
    },
  };
  return { plugin, stats: () => ({ ...counts }) };
}
