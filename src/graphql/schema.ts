/**
 * The executable schema, built once per gateway and shared by HTTP (Apollo) and graphql-ws, so both
 * transports run exactly the same types and resolvers.
 */
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import type { Resolvers } from '../generated/graphql.js';
import { resolvers } from './resolvers/index.js';
import { loadTypeDefs } from './schema-sdl.js';

/**
 * schema/*.graphql with every resolver. `extra` adds resolvers owned elsewhere — the live pipeline's
 * `Subscription` — merged type by type over the defaults.
 */
export function createSchema(extra: Resolvers = {}): GraphQLSchema {
  const merged: Resolvers = { ...resolvers };
  for (const [type, fields] of Object.entries(extra) as Array<[keyof Resolvers, unknown]>) {
    const base = merged[type];
    // Scalars are objects too; only plain field maps are merged, anything else replaces.
    (merged as Record<string, unknown>)[type] =
      base && typeof base === 'object' && !('serialize' in base) && fields && typeof fields === 'object' ? { ...base, ...fields } : fields;
  }
  return makeExecutableSchema({
    typeDefs: loadTypeDefs(),
    // The generated Resolvers type is stricter than graphql-tools' IResolvers; the shapes match.
    resolvers: merged as Record<string, never>,
    // Catches a resolver for a field the SDL does not have (a typo would otherwise be ignored silently).
    resolverValidationOptions: { requireResolversToMatchSchema: 'error' },
  });
}
