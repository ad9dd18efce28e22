/**
 * Fields of Call and CallEvent that are not plain properties of the domain objects: a call's status
 * history and (when the cached call lacks it) its flow from the event log, and an event's call through
 * the per-request loader. Both Call fields read the history through the request's loader, so asking for
 * both reads it once; each says what could not be read when storage fails.
 */
import { ErrorCode, fromStorage, GatewayError } from '../../errors.js';
import type { Call as CallObject } from '../../exotel/types.js';
import type { CallEventResolvers, CallResolvers } from '../../generated/graphql.js';
import { callFromHistory } from '../../live/incoming.js';
import type { GraphQLContext } from '../context.js';

const historyOf = (call: CallObject, ctx: GraphQLContext) => ctx.loaders.callHistory.load({ accountSid: call.accountSid || ctx.exotel.accountSid, sid: call.sid });

export const Call: CallResolvers = {
  async events(call, _args, ctx) {
    // The log holds what the gateway itself saw (callbacks, polls, API answers); a call placed elsewhere
    // and never reported to the gateway has an empty history.
    return fromStorage("The call's status history", () => historyOf(call, ctx));
  },
  async flow(call, _args, ctx) {
    if (call.flow !== undefined) return call.flow;
    // A call fetched from Exotel knows nothing of its flow; what the flow's requests said is in the log.
    // Incoming calls and calls the API placed into a flow (connectCallToFlow) can have had such requests,
    // and calls of unknown direction; a call a flow dialled out is a leg of another call's flow.
    if (call.direction === 'OUTBOUND_DIAL') return null;
    return callFromHistory(await fromStorage("The call's flow", () => historyOf(call, ctx)))?.flow ?? null;
  },
};

export const CallEvent: CallEventResolvers = {
  async call(event, _args, ctx) {
    const call = await ctx.loaders.call.load(event.callSid);
    if (!call) throw new GatewayError(ErrorCode.NOT_FOUND, `Exotel has no call ${event.callSid}`);
    return call;
  },
};
