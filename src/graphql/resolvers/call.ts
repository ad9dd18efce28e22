/**
 * Fields of Call and CallEvent that are not plain properties of the domain objects: a call's status
 * history and (when the cached call lacks it) its flow from the event log, and an event's call through
 * the per-request loader.
 */
import { ErrorCode, fromStorage, GatewayError } from '../../errors.js';
import type { CallEventResolvers, CallResolvers } from '../../generated/graphql.js';
import { callFromHistory } from '../../live/incoming.js';

export const Call: CallResolvers = {
  async events(call, _args, ctx) {
    // The log holds what the gateway itself saw (callbacks, polls, API answers); a call placed elsewhere
    // and never reported to the gateway has an empty history.
    return fromStorage("The call's status history", () => ctx.storage.events.callHistory(call.accountSid || ctx.exotel.accountSid, call.sid));
  },
  async flow(call, _args, ctx) {
    if (call.flow !== undefined) return call.flow;
    // A call fetched from Exotel knows nothing of its flow; what the flow's requests said is in the log.
    // Incoming calls and calls the API placed into a flow (connectCallToFlow) can have had such requests,
    // and calls of unknown direction; a call a flow dialled out is a leg of another call's flow.
    if (call.direction === 'OUTBOUND_DIAL') return null;
    const history = await fromStorage("The call's flow", () => ctx.storage.events.callHistory(call.accountSid || ctx.exotel.accountSid, call.sid));
    return callFromHistory(history)?.flow ?? null;
  },
};

export const CallEvent: CallEventResolvers = {
  async call(event, _args, ctx) {
    const call = await ctx.loaders.call.load(event.callSid);
    if (!call) throw new GatewayError(ErrorCode.NOT_FOUND, `Exotel has no call ${event.callSid}`);
    return call;
  },
};
