/**
 * Subscription resolvers (schema/*.graphql, docs/live-status.md): thin adapters from GraphQL arguments to the live pipeline's feeds
 * (src/live/feed.ts). Arguments are checked before anything is subscribed; errors known at subscribe
 * time (an unknown Sid) come back as a GraphQL error, not a stream that dies.
 */
import { badInput } from '../../errors.js';
import type { SubscriptionResolvers } from '../../generated/graphql.js';
import type { FeedCallEvent, LiveFeed } from '../../live/feed.js';
import { SID_PATTERN, type Call, type SmsMessage } from '../../exotel/types.js';
import type { GraphQLContext } from '../context.js';
import { clearLoaders } from '../loaders.js';

// Event ids are Redis stream ids ("ms-seq"), also in memory.
const EVENT_ID = /^\d{1,20}-\d{1,20}$/;

function checkSid(sid: string, field: string): string {
  // The one Sid rule of the gateway (exotel/sid.ts): the bound keeps junk out of storage keys and logs.
  if (!SID_PATTERN.test(sid)) throw badInput(field, 'not an Exotel Sid');
  return sid;
}

/** Each event of a stream is resolved with fresh call data and histories (see clearLoaders). */
function resolveCallEvent(payload: FeedCallEvent, ctx: GraphQLContext) {
  clearLoaders(ctx.loaders);
  if (payload.call) ctx.loaders.call.prime(payload.event.callSid, payload.call);
  return payload.event;
}

/** The Subscription resolvers over one live feed; passed to createSchema() by server.ts. */
export function createSubscriptionResolvers(feed: LiveFeed): SubscriptionResolvers {
  return {
    callStatusChanged: {
      // The snapshot goes through the subscriber's loader: the same batching, budget share and "no such call" memory as a query.
      subscribe: async (_root, { sid }, ctx: GraphQLContext) => await feed.callStatusChanged(checkSid(sid, 'sid'), (s) => ctx.loaders.call.load(s), ctx.subscriber),
      resolve: (payload: FeedCallEvent, _args: unknown, ctx: GraphQLContext) => resolveCallEvent(payload, ctx),
    },
    callEvents: {
      subscribe: async (_root, { filter, after }, ctx: GraphQLContext) => {
        if (after !== undefined && after !== null && !EVENT_ID.test(after)) throw badInput('after', 'not an event id (use the `id` of a CallEvent)');
        filter?.callSids?.forEach((sid, i) => checkSid(sid, `filter.callSids[${i}]`));
        // The feed's iterator is itself the AsyncIterable graphql-js asks for (no wrapper per subscriber).
        return await feed.callEvents(filter, after, ctx.subscriber);
      },
      resolve: (payload: FeedCallEvent, _args: unknown, ctx: GraphQLContext) => resolveCallEvent(payload, ctx),
    },
    smsStatusChanged: {
      subscribe: async (_root, { sid }, ctx: GraphQLContext) => await feed.smsStatusChanged(checkSid(sid, 'sid'), (s) => ctx.loaders.sms.load(s), ctx.subscriber),
      resolve: (sms: SmsMessage) => sms,
    },
    incomingCalls: {
      subscribe: (_root, _args, ctx: GraphQLContext) => feed.incomingCalls(ctx.subscriber),
      // Each call is announced once, but what its fields loaded must not pile up over the subscription's life.
      resolve: (call: Call, _args: unknown, ctx: GraphQLContext) => {
        clearLoaders(ctx.loaders);
        return call;
      },
    },
  };
}
