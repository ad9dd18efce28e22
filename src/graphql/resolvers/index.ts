/**
 * Every resolver of the schema in one map, typed by the generated `Resolvers` so a field added to the
 * SDL without its resolver, or a resolver returning the wrong shape, breaks the build. Fields that are
 * plain properties of the domain objects (src/exotel/types.ts) need no resolver.
 */
import type { Resolvers } from '../../generated/graphql.js';
import { Call, CallEvent } from './call.js';
import { Mutation } from './mutation.js';
import { Query } from './query.js';
import { DateTimeScalar } from './scalars.js';

/** Query, Mutation and type resolvers; the live pipeline adds `Subscription` (resolvers/subscription.ts). */
export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  Query,
  Mutation,
  Call,
  CallEvent,
};
