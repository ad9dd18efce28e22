/**
 * Exotel's wire format (Exotel's API docs; docs/exotel-fidelity.md) and the gateway's typed view of it.
 *
 * Two implementations speak the wire types: the real client (src/exotel/) and the built-in simulator
 * (src/simulator/, which imports nothing else from the gateway; this file imports only the dependency-free
 * src/assert-never.ts). The rest of the gateway sees only the domain types and the ExotelApi interface below.
 */
import { assertNever } from '../assert-never.js';

// ───────────────────────────── wire: what Exotel sends and accepts ─────────────────────────────

/** Exotel's local timestamp, Indian wall-clock time with no zone: "YYYY-MM-DD HH:mm:ss" (IST, UTC+05:30). */
export type ExotelDateTime = string;

/** Empty fields come back as "", null or (legacy answers) the string "null"; numbers often as strings. */
export type Loose<T> = T | '' | 'null' | null;

export type WireCallStatus = 'queued' | 'ringing' | 'in-progress' | 'completed' | 'failed' | 'busy' | 'no-answer' | 'canceled';
export type WireDirection = 'inbound' | 'outbound-api' | 'outbound-dial';

export interface WireLeg {
  Leg: { Id: number | string; OnCallDuration: Loose<number | string>; Status: Loose<string> };
}

export interface WireCallDetails {
  ConversationDuration?: Loose<number | string>;
  Leg1Status?: Loose<string>;
  Leg2Status?: Loose<string>;
  Legs?: WireLeg[];
}

export interface WireCall {
  Sid: string;
  ParentCallSid: Loose<string>;
  DateCreated: ExotelDateTime;
  DateUpdated: ExotelDateTime;
  AccountSid: string;
  To: string;
  From: string;
  PhoneNumberSid: Loose<string>;
  Status: WireCallStatus;
  StartTime: Loose<ExotelDateTime>;
  EndTime: Loose<ExotelDateTime>;
  Duration: Loose<number | string>;
  Price: Loose<number | string>;
  Direction: Loose<WireDirection>;
  AnsweredBy: Loose<string>;
  ForwardedFrom: Loose<string>;
  CallerName: Loose<string>;
  Uri: string;
  RecordingUrl: Loose<string>;
  CustomField?: Loose<string>;
  Details?: WireCallDetails;
}

/** `GET Calls/{Sid}.json` and `POST Calls/connect.json`. */
export interface WireCallResponse {
  Call: WireCall;
}

/** `GET Calls.json` (bulk call details). */
export interface WireCallListResponse {
  Metadata: {
    Total: number | string;
    PageSize: number | string;
    FirstPageUri: Loose<string>;
    PrevPageUri: Loose<string>;
    NextPageUri: Loose<string>;
  };
  Calls: WireCall[];
}

export type WireSmsStatus =
  | 'queued'
  | 'sending'
  | 'submitted'
  | 'sent'
  | 'delivered'
  | 'failed'
  | 'failed_dnd'
  | 'failed-dnd'
  | 'expired'
  | 'undelivered';

export interface WireSms {
  Sid: string;
  AccountSid: string;
  From: string;
  To: string;
  DateCreated: ExotelDateTime;
  DateUpdated: ExotelDateTime;
  DateSent: Loose<ExotelDateTime>;
  Body: Loose<string>;
  Direction: Loose<string>;
  Uri: string;
  ApiVersion: Loose<string>;
  Price: Loose<number | string>;
  Status: WireSmsStatus;
  DetailedStatusCode: Loose<number | string>;
  DetailedStatus: Loose<string>;
  CustomId?: Loose<string>;
}

/** `POST Sms/send.json` and `GET SMS/Messages/{Sid}.json`. */
export interface WireSmsResponse {
  SMSMessage: WireSms;
}

/** One item of a `POST Sms/bulksend.json` answer: a message, or that message's error. */
export type WireBulkSmsItem = WireSmsResponse | { RestException: WireRestException['RestException'] & { To?: string } };

/** The short bulksend answer form: only Sid, Status and To per accepted message (docs/exotel-fidelity.md). */
export interface WireBulkSmsShortResponse {
  SMSMessages: Array<{ Sid: string; Status: WireSmsStatus; To: string }>;
}

/** `GET Numbers/{number}.json`. */
export interface WireNumberResponse {
  Numbers: {
    PhoneNumber: string;
    Circle: Loose<string>;
    CircleName: Loose<string>;
    Type: Loose<string>;
    Operator: Loose<string>;
    OperatorName: Loose<string>;
    DND: Loose<'Yes' | 'No' | string>;
  };
}

/** `GET /v2_beta/Accounts/{sid}/IncomingPhoneNumbers` (snake_case, v2 paging). Parse tolerantly. */
export interface WireExoPhone {
  sid: string;
  phone_number: string;
  friendly_name?: Loose<string>;
  capabilities?: Record<string, boolean> | string[] | null;
  region?: Loose<string>;
  [extra: string]: unknown;
}
export interface WireExoPhoneListResponse {
  incoming_phone_numbers: WireExoPhone[];
  page?: number;
  page_size?: number;
  next_page_uri?: Loose<string>;
  [extra: string]: unknown;
}

/** v1 `GET /v1/Accounts/{sid}/IncomingPhoneNumbers.json` (what production integrations read). Parse tolerantly. */
export interface WireV1ExoPhone {
  Sid?: Loose<string>;
  PhoneNumber: string;
  FriendlyName?: Loose<string>;
  Capabilities?: Record<string, boolean> | string[] | null;
  Region?: Loose<string>;
  [extra: string]: unknown;
}
export interface WireV1ExoPhoneListResponse {
  IncomingPhoneNumbers: Array<{ IncomingPhoneNumber: WireV1ExoPhone }>;
  NextPageUri?: Loose<string>;
  [extra: string]: unknown;
}

/** Every Exotel error body. */
export interface WireRestException {
  RestException: { Status: number; Message: string; Code?: number | string };
}

/** Status callback (Exotel → gateway), form-encoded or JSON. Fields after DateUpdated only with StatusCallbackEvents. */
export interface WireCallStatusCallback {
  CallSid: string;
  Status: string;
  RecordingUrl?: Loose<string>;
  DateUpdated?: Loose<ExotelDateTime>;
  EventType?: 'terminal' | 'answered' | string;
  DateCreated?: Loose<ExotelDateTime>;
  To?: Loose<string>;
  From?: Loose<string>;
  PhoneNumberSid?: Loose<string>;
  StartTime?: Loose<ExotelDateTime>;
  EndTime?: Loose<ExotelDateTime>;
  ConversationDuration?: Loose<number | string>;
  Direction?: Loose<string>;
  CallType?: Loose<string>;
  CustomField?: Loose<string>;
  /** JSON: an array of {OnCallDuration, Status}; form: Legs[0][Status]=… */
  Legs?: unknown;
}

/** SMS status callback (terminal states only, form-urlencoded). */
export interface WireSmsStatusCallback {
  SmsSid: string;
  To?: Loose<string>;
  Status: string;
  DetailedStatus?: Loose<string>;
  DetailedStatusCode?: Loose<string | number>;
  DateSent?: Loose<ExotelDateTime>;
  SmsUnits?: Loose<string | number>;
  CustomField?: Loose<string>;
}

// ───────────────────────────── domain: what the gateway works with ─────────────────────────────

/** GraphQL enum values (schema/*.graphql). */
export type CallStatus = 'QUEUED' | 'RINGING' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'BUSY' | 'NO_ANSWER' | 'CANCELED';
export type CallDirection = 'INBOUND' | 'OUTBOUND_API' | 'OUTBOUND_DIAL';
export type SmsStatus = 'QUEUED' | 'SENDING' | 'SUBMITTED' | 'SENT' | 'DELIVERED' | 'FAILED' | 'FAILED_DND' | 'EXPIRED' | 'UNDELIVERED';

/** ISO-8601 with offset, e.g. "2026-11-20T10:00:00+05:30". */
export type IsoDateTime = string;

export interface CallLeg {
  id: number;
  status: CallStatus | null;
  onCallDurationSeconds: number | null;
  /** The leg's phone number (flow requests `Legs[i][Number]`); absent in call details. */
  number?: string | null;
  /** Exotel's leg type (e.g. "single"), from flow requests. */
  type?: string | null;
  /** Caller id shown on this leg, from flow requests. */
  callerId?: string | null;
  /** Why the leg ended, as Exotel's cause code (e.g. "NORMAL_CLEARING"), from flow requests. */
  causeCode?: string | null;
  /** Exotel's cause value for the same (often the Q.850 number, e.g. "16"), from flow requests. */
  cause?: string | null;
}

/**
 * What an incoming-call flow told the gateway about a call: the parameters of Exotel's Passthru and
 * Connect-applet requests (docs/live-status.md, "Incoming calls"), merged over every request of the
 * call. `agentStatus` is the agent's state (Exotel's `Status` there), never the call's.
 */
export interface CallFlow {
  flowId: string | null;
  tenantId: string | null;
  dialWhomNumber: string | null;
  agentEmail: string | null;
  agentStatus: string | null;
  digits: string | null;
  callType: string | null;
  dialCallStatus: CallStatus | null;
  dialCallDurationSeconds: number | null;
  eventType: string | null;
  outgoingPhoneNumber: string | null;
  forwardedFrom: string | null;
  recordingAvailableBy: IsoDateTime | null;
  /** Exotel's `CurrentTime` of the latest request seen. */
  lastRequestAt: IsoDateTime | null;
  /** The legs the flow's Connect applet dialled (`Legs[i]` of flow requests), in order; merged by id. */
  legs: CallLeg[] | null;
}

export interface Call {
  sid: string;
  parentCallSid: string | null;
  accountSid: string;
  from: string;
  to: string;
  phoneNumberSid: string | null;
  status: CallStatus;
  direction: CallDirection | null;
  startTime: IsoDateTime | null;
  endTime: IsoDateTime | null;
  durationSeconds: number | null;
  price: number | null;
  recordingUrl: string | null;
  answeredBy: string | null;
  customField: string | null;
  dateCreated: IsoDateTime;
  dateUpdated: IsoDateTime;
  conversationDurationSeconds: number | null;
  /** null when Exotel gave no Details block. */
  legs: CallLeg[] | null;
  /** Set for calls an incoming-call flow reported (Passthru / Connect-applet requests); absent otherwise. */
  flow?: CallFlow | null;
}

/** A Call's fields that Exotel may leave unset, all unset: what a partial view of a call is completed from. */
export const UNSET_CALL_FIELDS = {
  parentCallSid: null,
  phoneNumberSid: null,
  direction: null,
  startTime: null,
  endTime: null,
  durationSeconds: null,
  price: null,
  recordingUrl: null,
  answeredBy: null,
  customField: null,
  conversationDurationSeconds: null,
  legs: null,
} as const satisfies Partial<Call>;

export interface SmsMessage {
  sid: string;
  accountSid: string;
  from: string;
  to: string;
  body: string | null;
  status: SmsStatus;
  detailedStatus: string | null;
  detailedStatusCode: number | null;
  price: number | null;
  dateCreated: IsoDateTime;
  dateUpdated: IsoDateTime;
  dateSent: IsoDateTime | null;
}

export interface NumberMetadata {
  phoneNumber: string;
  circle: string | null;
  circleName: string | null;
  type: string | null;
  operator: string | null;
  operatorName: string | null;
  dnd: boolean | null;
}

export interface ExoPhone {
  sid: string;
  phoneNumber: string;
  friendlyName: string | null;
  capabilities: string[];
  region: string | null;
}

export interface StatusCallbackOptions {
  /** Where Exotel posts status callbacks. */
  url: string;
  /** StatusCallbackEvents; Exotel knows only these two. */
  events?: Array<'terminal' | 'answered'>;
  /** StatusCallbackContentType: form (Exotel's default) or JSON. */
  contentType?: 'application/json' | 'multipart/form-data';
}

export interface ConnectCallParams {
  from: string;
  to: string;
  callerId: string;
  callType?: 'trans';
  timeLimitSeconds?: number;
  timeOutSeconds?: number;
  waitUrl?: string;
  record?: boolean;
  recordingChannels?: 'single' | 'dual';
  recordingFormat?: 'mp3' | 'mp3-hq';
  customField?: string;
  statusCallback?: StatusCallbackOptions;
}

export interface ConnectFlowParams {
  from: string;
  callerId: string;
  /** Flow (app) id; the client builds Url=http://my.exotel.com/{AccountSid}/exoml/start_voice/{FlowId}. */
  flowId: string;
  callType?: 'trans';
  timeLimitSeconds?: number;
  timeOutSeconds?: number;
  customField?: string;
  statusCallback?: StatusCallbackOptions;
}

export interface CallListQuery {
  /** At most 100 (Exotel bulk call details). */
  sids?: string[];
  /** Inclusive ISO-8601 bounds; converted to Exotel's `DateCreated=gte:…;lte:…` in IST. */
  dateCreatedFrom?: IsoDateTime;
  dateCreatedTo?: IsoDateTime;
  status?: CallStatus[];
  direction?: CallDirection;
  /** Up to 5 numbers each. */
  to?: string[];
  from?: string[];
  sort?: 'asc' | 'desc';
  /** ≤ 100; Exotel's default is 50. */
  pageSize?: number;
  /** Opaque Exotel paging cursors taken from NextPageUri / PrevPageUri. */
  after?: string;
  before?: string;
  details?: boolean;
}

export interface CallPage {
  calls: Call[];
  total: number | null;
  pageSize: number;
  /** Cursor for the next page (the `After` value of NextPageUri), null on the last page. */
  nextAfter: string | null;
  prevBefore: string | null;
}

export interface SendSmsParams {
  from: string;
  to: string;
  body: string;
  encodingType?: 'plain' | 'unicode';
  priority?: 'normal' | 'high';
  dltEntityId?: string;
  dltTemplateId?: string;
  customId?: string;
  statusCallback?: string;
}

export interface SendBulkSmsParams {
  from: string;
  /** At most 100 per request (Exotel). */
  messages: Array<{ to: string; body: string }>;
  encodingType?: 'plain' | 'unicode';
  dltEntityId?: string;
  dltTemplateId?: string;
  statusCallback?: string;
}

export type BulkSmsResult =
  | { ok: true; to: string; sms: SmsMessage }
  | { ok: false; to: string; status: number; message: string; /** Exotel's numeric RestException.Code, when it sent one. */ exotelCode?: number };

export interface RateLimitStatus {
  limitPerMinute: number;
  remaining: number;
  /** ISO-8601: when the oldest request in the window leaves it. */
  resetsAt: IsoDateTime;
  queued: number;
  /** The asking client key's share of the window, requests (null when not asked for a key). */
  myShare: number | null;
  /** Requests of the asking client key in the window now (null when not asked for a key). */
  myUsed: number | null;
}

/** One request's worth of budget, taken ahead of the request (a batch waiting for budget); spent by passing it in RequestOptions. */
export interface BudgetTicket {
  /** Marks the slot as used now; for a ticket that ends up not being passed to a request. */
  settle(): Promise<void>;
}

/** Per-call options of the client. */
export interface RequestOptions {
  /** Where the request spends budget from; the live poller passes 'background' (capped share). */
  priority?: 'foreground' | 'background';
  /** The client key the request is made for: it spends that key's share of the budget (docs/rate-budget.md). */
  client?: string;
  /** Budget already taken for this request (its first attempt); retries take their own. */
  ticket?: BudgetTicket;
  signal?: AbortSignal;
}

/** How a caller waits for budget ahead of a request. */
export interface BudgetWait {
  client?: string;
  signal?: AbortSignal;
  /** Give up at this time (epoch ms), at the latest the queue deadline from now. */
  deadlineAtMs?: number;
}

/** One observed upstream request, for metrics and tests. */
export interface UpstreamRequestEvent {
  endpoint: 'calls.connect' | 'calls.get' | 'calls.list' | 'numbers.get' | 'exophones.list' | 'sms.send' | 'sms.bulksend' | 'sms.get';
  method: 'GET' | 'POST';
  status: number | 'timeout' | 'network-error';
  attempt: number;
  durationMs: number;
}

/**
 * Everything the gateway asks of Exotel. Methods throw GatewayError (src/errors.ts) with the contract
 * codes; lookups of an unknown Sid/number resolve to null rather than throwing.
 */
export interface ExotelApi {
  /** `POST Calls/connect.json` with From/To; the new call is QUEUED (Exotel answers "in-progress" before anyone picked up). Never retried automatically (it may have reached Exotel). */
  connectCall(params: ConnectCallParams, options?: RequestOptions): Promise<Call>;
  /** `POST Calls/connect.json` with Url → a flow. Never retried automatically. */
  connectCallToFlow(params: ConnectFlowParams, options?: RequestOptions): Promise<Call>;
  /** `GET Calls/{Sid}.json`; null for an unknown Sid. */
  getCall(sid: string, options?: RequestOptions & { details?: boolean }): Promise<Call | null>;
  /** `GET Calls.json`; bulk call details by Sid (≤ 100) or by filters, one page. */
  listCalls(query: CallListQuery, options?: RequestOptions): Promise<CallPage>;
  /** `GET Numbers/{number}.json`; null when Exotel does not know the number. */
  getNumberMetadata(number: string, options?: RequestOptions): Promise<NumberMetadata | null>;
  /** `GET /v1/Accounts/{sid}/IncomingPhoneNumbers.json` (v2_beta only when v1 answers 404), every page, de-duplicated by sid. */
  listExoPhones(options?: RequestOptions): Promise<ExoPhone[]>;
  /** `POST Sms/send.json`. Never retried automatically. */
  sendSms(params: SendSmsParams, options?: RequestOptions): Promise<SmsMessage>;
  /** `POST Sms/bulksend.json` with ≤ 100 messages; per-message results in input order. Never retried. */
  sendBulkSms(params: SendBulkSmsParams, options?: RequestOptions): Promise<BulkSmsResult[]>;
  /** `GET SMS/Messages/{Sid}.json`; null for an unknown Sid. */
  getSms(sid: string, options?: RequestOptions): Promise<SmsMessage | null>;
  /** The account's rate budget as the gateway sees it; with a client key, that key's share and use too. */
  rateLimit(client?: string): Promise<RateLimitStatus>;
  /**
   * Waits for one request's worth of budget (the fair queue, deadline, RATE_LIMITED) and hands it over as a
   * ticket for the request to come: a batch waits here while it stays open for more keys.
   */
  waitForBudget(wait: BudgetWait): Promise<BudgetTicket>;
  /** A ticket now if the window has room to spare (at least `keepShare` (0–1) of it left after it), else undefined. */
  trySpareBudget(client: string | undefined, keepShare: number): Promise<BudgetTicket | undefined>;
  /** The account this client speaks for. */
  readonly accountSid: string;
}

/** Terminal call statuses: no further transition follows. */
export const TERMINAL_CALL_STATUSES: ReadonlySet<CallStatus> = new Set(['COMPLETED', 'FAILED', 'BUSY', 'NO_ANSWER', 'CANCELED']);
export const TERMINAL_SMS_STATUSES: ReadonlySet<SmsStatus> = new Set(['DELIVERED', 'FAILED', 'FAILED_DND', 'EXPIRED', 'UNDELIVERED']);

/**
 * Forward-only order of SMS statuses: queued < sending < submitted < sent < a final status. Delivery may
 * show only as `sent` (docs/exotel-fidelity.md), so `sent` is below the final statuses, not one of them.
 */
export function smsStatusRank(status: SmsStatus): number {
  switch (status) {
    case 'QUEUED':
      return 0;
    case 'SENDING':
      return 1;
    case 'SUBMITTED':
      return 2;
    case 'SENT':
      return 3;
    case 'DELIVERED':
    case 'FAILED':
    case 'FAILED_DND':
    case 'EXPIRED':
    case 'UNDELIVERED':
      return 4;
    default:
      return assertNever(status, 'SMS status');
  }
}

/** Forward-only order of call statuses (docs/live-status.md): queued < ringing < in-progress < terminal. The SMS order is above. */
export function callStatusRank(status: CallStatus): number {
  switch (status) {
    case 'QUEUED':
      return 0;
    case 'RINGING':
      return 1;
    case 'IN_PROGRESS':
      return 2;
    case 'COMPLETED':
    case 'FAILED':
    case 'BUSY':
    case 'NO_ANSWER':
    case 'CANCELED':
      return 3;
    default:
      return assertNever(status, 'call status');
  }
}

/** The shared Sid rule (sid.ts), re-exported so the simulator keeps importing only this module. */
export { isExotelSid, SID_PATTERN } from './sid.js';
