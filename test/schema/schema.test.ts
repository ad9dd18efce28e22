import { describe, expect, it } from 'vitest';
import {
  buildSchema,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isObjectType,
  isScalarType,
  isUnionType,
  type GraphQLNamedType,
  type GraphQLSchema,
} from 'graphql';
import { loadTypeDefs, schemaDir } from '../../src/graphql/schema-sdl.js';
import type { CallDirection, CallStatus, SmsStatus } from '../../src/exotel/types.js';
import type { EventSource } from '../../src/storage/types.js';

const schema: GraphQLSchema = buildSchema(loadTypeDefs());

/** The public contract (schema/*.graphql; extend only, never rename): type → field → argument names. */
const CONTRACT: Record<string, Record<string, string[]>> = {
  Query: {
    call: ['sid'],
    callsBySid: ['sids'],
    calls: ['filter', 'first', 'after'],
    sms: ['sid'],
    smsBySid: ['sids'],
    numberMetadata: ['number'],
    numbersMetadata: ['numbers'],
    exophones: [],
    rateLimit: [],
    gateway: [],
  },
  Mutation: { connectCall: ['input'], connectCallToFlow: ['input'], sendSms: ['input'], sendBulkSms: ['input'] },
  Subscription: { callStatusChanged: ['sid'], callEvents: ['filter', 'after'], smsStatusChanged: ['sid'], incomingCalls: [] },
};

/** Fields every object or input type must have, with their exact GraphQL type. */
const FIELDS: Record<string, Record<string, string>> = {
  Call: {
    sid: 'ID!', parentCallSid: 'ID', from: 'String!', to: 'String!', phoneNumberSid: 'String', status: 'CallStatus!',
    direction: 'CallDirection', startTime: 'DateTime', endTime: 'DateTime', durationSeconds: 'Int', price: 'Float',
    recordingUrl: 'String', answeredBy: 'String', customField: 'String', dateCreated: 'DateTime!', dateUpdated: 'DateTime!',
    legs: '[CallLeg!]', events: '[CallEvent!]!',
  },
  CallLeg: { id: 'Int!', status: 'CallStatus', onCallDurationSeconds: 'Int' },
  CallEvent: { id: 'ID!', callSid: 'ID!', status: 'CallStatus!', at: 'DateTime!', source: 'EventSource!', call: 'Call!' },
  SmsMessage: {
    sid: 'ID!', from: 'String!', to: 'String!', body: 'String', status: 'SmsStatus!', detailedStatus: 'String',
    detailedStatusCode: 'Int', price: 'Float', dateCreated: 'DateTime!', dateSent: 'DateTime',
  },
  NumberMetadata: {
    phoneNumber: 'String!', circle: 'String', circleName: 'String', type: 'String', operator: 'String', operatorName: 'String', dnd: 'Boolean',
  },
  ExoPhone: { sid: 'ID!', phoneNumber: 'String!', friendlyName: 'String', capabilities: '[String!]', region: 'String' },
  RateLimitStatus: { limitPerMinute: 'Int!', remaining: 'Int!', resetsAt: 'DateTime!', queued: 'Int!' },
  GatewayInfo: { mode: 'GatewayMode!', version: 'String!' },
  CallConnection: { edges: '[CallEdge!]!', nodes: '[Call!]!', pageInfo: 'PageInfo!', totalCount: 'Int' },
  CallEdge: { cursor: 'String!', node: 'Call!' },
  PageInfo: { hasNextPage: 'Boolean!', endCursor: 'String', hasPreviousPage: 'Boolean!', startCursor: 'String' },
  ConnectCallPayload: { call: 'Call!', idempotencyKey: 'String', replayed: 'Boolean!' },
  SendSmsPayload: { sms: 'SmsMessage!', idempotencyKey: 'String', replayed: 'Boolean!' },
  SendBulkSmsPayload: { messages: '[SmsMessage]!', errors: '[BulkSmsError!]!', idempotencyKey: 'String', replayed: 'Boolean!' },
  BulkSmsError: { index: 'Int!', to: 'String!', code: 'String!', message: 'String!' },
  ConnectCallInput: {
    from: 'String!', to: 'String!', callerId: 'String!', timeLimit: 'Int', timeOut: 'Int', record: 'Boolean', customField: 'String', idempotencyKey: 'String',
  },
  ConnectCallToFlowInput: {
    from: 'String!', callerId: 'String!', flowId: 'ID!', customField: 'String', timeLimit: 'Int', timeOut: 'Int', idempotencyKey: 'String',
  },
  SendSmsInput: { from: 'String!', to: 'String!', body: 'String!', dltTemplateId: 'String', dltEntityId: 'String', idempotencyKey: 'String' },
  SendBulkSmsInput: { from: 'String!', messages: '[BulkSmsMessageInput!]!', idempotencyKey: 'String' },
  BulkSmsMessageInput: { to: 'String!', body: 'String!' },
  CallFilter: {
    dateCreatedFrom: 'DateTime', dateCreatedTo: 'DateTime', status: '[CallStatus!]', direction: 'CallDirection', from: '[String!]', to: '[String!]', sort: 'SortOrder',
  },
  CallEventFilter: { callSids: '[ID!]', statuses: '[CallStatus!]', sources: '[EventSource!]' },
};

// Records keyed by the domain unions: the compiler makes these complete, the test makes the schema match.
const CALL_STATUS: Record<CallStatus, true> = { QUEUED: true, RINGING: true, IN_PROGRESS: true, COMPLETED: true, FAILED: true, BUSY: true, NO_ANSWER: true, CANCELED: true };
const CALL_DIRECTION: Record<CallDirection, true> = { INBOUND: true, OUTBOUND_API: true, OUTBOUND_DIAL: true };
const SMS_STATUS: Record<SmsStatus, true> = {
  QUEUED: true, SENDING: true, SUBMITTED: true, SENT: true, DELIVERED: true, FAILED: true, FAILED_DND: true, EXPIRED: true, UNDELIVERED: true,
};
const EVENT_SOURCE: Record<EventSource, true> = { WEBHOOK: true, POLL: true, API: true, SNAPSHOT: true };

function fieldsOf(type: GraphQLNamedType | undefined) {
  if (isObjectType(type) || isInputObjectType(type) || isInterfaceType(type)) return type.getFields();
  throw new Error(`${String(type)} is not a type with fields`);
}

function objectFields(type: GraphQLNamedType | null | undefined) {
  if (isObjectType(type)) return type.getFields();
  throw new Error(`${String(type)} is not an object type`);
}

function enumValues(name: string): string[] {
  const type = schema.getType(name);
  if (!isEnumType(type)) throw new Error(`${name} is not an enum`);
  return type.getValues().map((v) => v.name).sort();
}

describe('schema/*.graphql', () => {
  it('is found next to the sources and builds into a valid schema with all three roots', () => {
    expect(schemaDir()).toMatch(/schema$/);
    expect(schema.getQueryType()?.name).toBe('Query');
    expect(schema.getMutationType()?.name).toBe('Mutation');
    expect(schema.getSubscriptionType()?.name).toBe('Subscription');
    expect(isScalarType(schema.getType('DateTime'))).toBe(true);
  });

  it('has every root operation of the contract with exactly its argument names', () => {
    for (const [root, ops] of Object.entries(CONTRACT)) {
      const fields = objectFields(schema.getType(root));
      for (const [op, args] of Object.entries(ops)) {
        expect(fields[op], `${root}.${op}`).toBeDefined();
        expect(fields[op]!.args.map((a) => a.name), `${root}.${op} arguments`).toEqual(args);
      }
    }
  });

  it('has the contract return and argument types of the root operations', () => {
    const q = objectFields(schema.getQueryType());
    expect(String(q.call!.type)).toBe('Call');
    expect(String(q.call!.args[0]!.type)).toBe('ID!');
    expect(String(q.callsBySid!.type)).toBe('[Call]!');
    expect(String(q.calls!.type)).toBe('CallConnection!');
    expect(q.calls!.args.map((a) => String(a.type))).toEqual(['CallFilter', 'Int', 'String']);
    expect(String(q.smsBySid!.type)).toBe('[SmsMessage]!');
    expect(String(q.numbersMetadata!.type)).toBe('[NumberMetadata]!');
    expect(String(q.exophones!.type)).toBe('[ExoPhone!]!');
    expect(String(q.rateLimit!.type)).toBe('RateLimitStatus!');
    const m = objectFields(schema.getMutationType());
    expect(String(m.connectCall!.type)).toBe('ConnectCallPayload!');
    expect(String(m.connectCallToFlow!.type)).toBe('ConnectCallPayload!');
    expect(String(m.sendSms!.type)).toBe('SendSmsPayload!');
    expect(String(m.sendBulkSms!.type)).toBe('SendBulkSmsPayload!');
    const s = objectFields(schema.getSubscriptionType());
    expect(String(s.callStatusChanged!.type)).toBe('CallEvent!');
    expect(String(s.callEvents!.type)).toBe('CallEvent!');
    expect(s.callEvents!.args.map((a) => String(a.type))).toEqual(['CallEventFilter', 'ID']);
    expect(String(s.smsStatusChanged!.type)).toBe('SmsMessage!');
    expect(String(s.incomingCalls!.type)).toBe('Call!');
  });

  it.each(Object.entries(FIELDS))('type %s has the contract fields with their types', (typeName, fields) => {
    const actual = fieldsOf(schema.getType(typeName));
    for (const [field, type] of Object.entries(fields)) {
      expect(actual[field], `${typeName}.${field}`).toBeDefined();
      expect(String(actual[field]!.type), `${typeName}.${field}`).toBe(type);
    }
  });

  it('has enums whose values are exactly the domain unions', () => {
    expect(enumValues('CallStatus')).toEqual(Object.keys(CALL_STATUS).sort());
    expect(enumValues('CallDirection')).toEqual(Object.keys(CALL_DIRECTION).sort());
    expect(enumValues('SmsStatus')).toEqual(Object.keys(SMS_STATUS).sort());
    expect(enumValues('EventSource')).toEqual(Object.keys(EVENT_SOURCE).sort());
    expect(enumValues('GatewayMode')).toEqual(['LIVE', 'SIMULATOR']);
    expect(enumValues('SortOrder')).toEqual(['ASC', 'DESC']);
  });

  it('describes every type, field, argument, enum value and input field (GraphiQL shows them)', () => {
    const missing: string[] = [];
    const need = (where: string, description: string | null | undefined) => {
      if (!description?.trim()) missing.push(where);
    };
    for (const type of Object.values(schema.getTypeMap())) {
      if (type.name.startsWith('__') || ['String', 'Int', 'Float', 'Boolean', 'ID'].includes(type.name)) continue;
      need(type.name, type.description);
      if (isEnumType(type)) for (const v of type.getValues()) need(`${type.name}.${v.name}`, v.description);
      if (isObjectType(type) || isInputObjectType(type) || isInterfaceType(type)) {
        for (const field of Object.values(type.getFields())) {
          need(`${type.name}.${field.name}`, field.description);
          if ('args' in field) for (const arg of field.args) need(`${type.name}.${field.name}(${arg.name})`, arg.description);
        }
      }
      if (isUnionType(type)) need(type.name, type.description);
    }
    expect(missing).toEqual([]);
  });
});
