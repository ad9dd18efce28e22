/** Simulated SMS: state, wire shape and lifecycle queued → sending → submitted → terminal. */
import type { WireSms, WireSmsStatus } from '../exotel/types.js';
import type { CallbackSender } from './callbacks.js';
import { EPOCH_ZERO_IST, formatIst } from './ist.js';
import { SMS_PROGRESS, SMS_TIMELINE_SECONDS as T, smsOutcomeFor, smsPrice } from './rules.js';
import type { Scheduler } from './scheduler.js';

export interface SmsRecord {
  sid: string;
  accountSid: string;
  from: string;
  to: string;
  body: string;
  encodingType: 'plain' | 'unicode';
  units: number;
  status: WireSmsStatus;
  detailedStatusCode: number;
  detailedStatus: string;
  createdAtMs: number;
  updatedAtMs: number;
  sentAtMs: number | null;
  price: string | null;
  customId: string | null;
  customField: string | null;
  statusCallback: string | null;
}

/** The SMS as Exotel's JSON shows it. */
export function toWireSms(sms: SmsRecord): WireSms & { SmsUnits: number | null } {
  return {
    Sid: sms.sid,
    AccountSid: sms.accountSid,
    From: sms.from,
    To: sms.to,
    DateCreated: formatIst(sms.createdAtMs),
    DateUpdated: formatIst(sms.updatedAtMs),
    DateSent: sms.sentAtMs !== null ? formatIst(sms.sentAtMs) : null,
    Body: sms.body,
    Direction: 'outbound-api',
    Uri: `/v1/Accounts/${sms.accountSid}/SMS/Messages/${sms.sid}.json`,
    ApiVersion: null,
    Price: sms.price,
    Status: sms.status,
    DetailedStatusCode: sms.detailedStatusCode,
    DetailedStatus: sms.detailedStatus,
    CustomId: sms.customId,
    SmsUnits: sms.status === 'sent' || sms.status === 'failed' || sms.status === 'failed-dnd' || sms.status === 'failed_dnd' ? sms.units : null,
  };
}

export interface SmsLifecycleDeps {
  scheduler: Scheduler;
  callbacks: CallbackSender;
  onChange: (sms: SmsRecord) => void;
  /** Exotel spells the DND failure both ways; this is the one the simulator sends. */
  dndSpelling: 'failed-dnd' | 'failed_dnd';
}

/** Schedules the lifecycle of a new SMS; the callback (form-urlencoded) follows the terminal state only. */
export function runSmsLifecycle(sms: SmsRecord, deps: SmsLifecycleDeps): void {
  const set = (status: WireSmsStatus, code: number, detailed: string): void => {
    sms.status = status;
    sms.detailedStatusCode = code;
    sms.detailedStatus = detailed;
    sms.updatedAtMs = Date.now();
  };
  const [, sending, submitted] = SMS_PROGRESS;
  deps.scheduler.afterSim(T.sending, () => {
    set(sending.status, sending.detailedStatusCode, sending.detailedStatus);
    deps.onChange(sms);
  });
  deps.scheduler.afterSim(T.submitted, () => {
    set(submitted.status, submitted.detailedStatusCode, submitted.detailedStatus);
    deps.onChange(sms);
  });
  deps.scheduler.afterSim(T.terminal, () => {
    const outcome = smsOutcomeFor(sms.to);
    const status = outcome.status === 'failed-dnd' ? deps.dndSpelling : outcome.status;
    set(status, outcome.detailedStatusCode, outcome.detailedStatus);
    if (status === 'sent') {
      sms.sentAtMs = sms.updatedAtMs;
      sms.price = smsPrice(sms.units);
    }
    deps.onChange(sms);
    if (sms.statusCallback) {
      deps.callbacks.send({
        kind: 'sms',
        sid: sms.sid,
        url: sms.statusCallback,
        contentType: 'application/x-www-form-urlencoded',
        fields: {
          SmsSid: sms.sid,
          To: sms.to,
          Status: sms.status,
          DetailedStatus: sms.detailedStatus,
          DetailedStatusCode: sms.detailedStatusCode,
          // An SMS never sent has Exotel's "not set" date, epoch zero in IST (docs/exotel-fidelity.md).
          DateSent: sms.sentAtMs !== null ? formatIst(sms.sentAtMs) : EPOCH_ZERO_IST,
          SmsUnits: sms.units,
          CustomField: sms.customField ?? '',
        },
      });
    }
  });
}
