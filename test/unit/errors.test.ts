import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { ErrorCode, GatewayError, formatError, fromExotelResponse } from '../../src/errors.js';

const body = (status: number, message: string) => JSON.stringify({ RestException: { Status: status, Message: message } });

describe('the error map', () => {
  it.each([
    [400, 'Invalid To number', ErrorCode.BAD_USER_INPUT],
    [401, 'Authentication failed', ErrorCode.UPSTREAM_ERROR],
    [402, 'Plan limit reached', ErrorCode.INSUFFICIENT_BALANCE],
    [403, 'Insufficient balance', ErrorCode.INSUFFICIENT_BALANCE],
    [403, 'IP not allowed', ErrorCode.UPSTREAM_ERROR],
    [404, 'Call not found', ErrorCode.NOT_FOUND],
    [409, 'Concurrent update', ErrorCode.UPSTREAM_ERROR],
    [429, 'Too many requests', ErrorCode.RATE_LIMITED],
    [500, 'Internal error', ErrorCode.UPSTREAM_UNAVAILABLE],
    [503, 'SMS platform busy', ErrorCode.UPSTREAM_UNAVAILABLE],
  ])('maps Exotel HTTP %i (%s) to %s and keeps Exotel\'s message', (status, message, code) => {
    const error = fromExotelResponse(status, body(status, message));
    expect(error.code).toBe(code);
    expect(error.message).toContain(message);
    expect(error.upstreamStatus).toBe(status);
  });

  it('reads the message of the XML variant and survives an empty body', () => {
    expect(fromExotelResponse(400, '<TwilioResponse><RestException><Status>400</Status><Message>Bad From</Message></RestException></TwilioResponse>').message).toContain('Bad From');
    expect(fromExotelResponse(502, '').message).toContain('HTTP 502');
  });

  it('passes on a numeric Code as exotelCode, and leaves a text Code (seen only in unofficial docs) out', () => {
    const xml = fromExotelResponse(503, '<TwilioResponse><RestException><Status>503</Status><Message>Service Unavailable</Message><Code>35008</Code></RestException></TwilioResponse>');
    expect(xml.extensions).toMatchObject({ upstreamStatus: 503, exotelCode: 35008 });
    const text = fromExotelResponse(429, JSON.stringify({ RestException: { Status: 429, Message: 'Rate limit exceeded. Try again in 30 seconds.', Code: 'RATE_LIMIT_EXCEEDED' } }));
    // The contract code and Exotel's message already say what the text code says.
    expect(text.extensions).toMatchObject({ code: 'RATE_LIMITED', upstreamStatus: 429 });
    expect(text.message).toContain('Rate limit exceeded');
    expect(text.extensions).not.toHaveProperty('exotelCode');
  });

  it('gives RATE_LIMITED a retryAfterSeconds, from Retry-After when Exotel sent one', () => {
    expect(fromExotelResponse(429, '', 7).extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 7 });
    expect(fromExotelResponse(429, '').retryAfterSeconds).toBeGreaterThan(0);
  });

  it('formats a GatewayError with its code and nothing internal', () => {
    const original = new GatewayError(ErrorCode.RATE_LIMITED, 'slow down', { retryAfterSeconds: 3, cause: new Error('https://key:token@api.exotel.com') });
    const wrapped = new GraphQLError(original.message, { originalError: original });
    const out = formatError({ message: 'slow down', extensions: { stacktrace: ['at x'] } }, wrapped, { production: true });
    expect(out).toEqual({ message: 'slow down', locations: undefined, path: undefined, extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 3, upstreamStatus: undefined } });
    expect(JSON.stringify(out)).not.toContain('token');
  });

  it('masks unknown errors in production and keeps their message in development', () => {
    const error = new GraphQLError('boom at https://secret.internal', { originalError: new TypeError('boom') });
    expect(formatError({ message: error.message }, error, { production: true })).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(formatError({ message: error.message }, error, { production: false }).extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
  });

  it('reports malformed operations as BAD_USER_INPUT', () => {
    const out = formatError({ message: 'Syntax Error', extensions: { code: 'GRAPHQL_PARSE_FAILED' } }, new GraphQLError('Syntax Error'), { production: true });
    expect(out.extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'GRAPHQL_PARSE_FAILED' });
  });
});
