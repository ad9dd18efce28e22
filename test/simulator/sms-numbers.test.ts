/** SMS lifecycle and callbacks, number metadata and ExoPhones of the simulator. */
import { describe, expect, it } from 'vitest';
import { numberMetadata, SEEDED_EXOPHONES, SMS_OUTCOME_BY_LAST_DIGIT, smsOutcomeFor } from '../../src/simulator/index.js';
import { api, startReceiver, startSim } from './helpers.js';

describe('simulator SMS', () => {
  it.each([
    ['09876543210', 'sent', 'DELIVERED_TO_HANDSET', 20005],
    ['09876543217', 'failed-dnd', 'FAILED_REJECTED_DND', 23005],
    ['09876543218', 'failed', 'FAILED_INVALID_DESTINATION_NUMBER', 23010],
  ] as const)('an SMS to %s moves queued → sending → submitted → %s and posts one form callback', async (to, status, detailed, code) => {
    expect(smsOutcomeFor(to).status).toBe(status);
    const sim = await startSim();
    const rx = await startReceiver();
    // Subscribed before sending: the first transition may come before the answer is read.
    const changes: Array<{ sid: string; status: string }> = [];
    sim.sms.onChange((s) => changes.push({ sid: s.Sid, status: s.Status }));
    const res = await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: to, Body: 'Your OTP is 1234', StatusCallback: rx.url, CustomField: 'otp-1', DltEntityId: '1101', DltTemplateId: '1107', Priority: 'high' } });
    expect(res.status).toBe(200);
    const sms = res.body.SMSMessage;
    expect(sms).toMatchObject({ To: to, From: 'EXOSIM', Status: 'queued', DetailedStatusCode: 21010, DetailedStatus: 'PENDING_TO_OPERATOR', DateSent: null, Direction: 'outbound-api' });
    expect(sms.Sid).toMatch(/^[0-9a-f]{31}[g-z]$/);
    const [cb] = await rx.waitFor(1);
    expect(changes.filter((c) => c.sid === sms.Sid).map((c) => c.status)).toEqual(['sending', 'submitted', status]);
    expect(cb!.contentType).toBe('application/x-www-form-urlencoded');
    expect(cb!.fields).toMatchObject({ SmsSid: sms.Sid, To: to, Status: status, DetailedStatus: detailed, DetailedStatusCode: String(code), SmsUnits: '1', CustomField: 'otp-1' });
    if (status === 'sent') expect(cb!.fields.DateSent).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    // Never sent: Exotel's "not set" date, epoch zero in IST.
    else expect(cb!.fields.DateSent).toBe('1970-01-01 05:30:00');
    const details = await api(sim, `SMS/Messages/${sms.Sid}.json`);
    expect(details.body.SMSMessage).toMatchObject({ Sid: sms.Sid, Status: status, DetailedStatusCode: code });
  });

  it('spells the DND failure failed_dnd when configured', async () => {
    const sim = await startSim({ smsDndStatus: 'failed_dnd' });
    const res = await api(sim, 'Sms/send.json', { form: { From: 'EXOSIM', To: '09876543217', Body: 'x' } });
    const done = await sim.sms.waitFor(res.body.SMSMessage.Sid, (s) => s.Status !== 'queued' && s.Status !== 'sending' && s.Status !== 'submitted');
    expect(done.Status).toBe('failed_dnd');
    expect(Object.keys(SMS_OUTCOME_BY_LAST_DIGIT)).toContain('7');
  });

  it('bulk-sends the same body to a To list, with a RestException in the slot of a bad number', async () => {
    const sim = await startSim();
    const res = await api(sim, 'Sms/bulksend.json', { form: [['From', 'EXOSIM'], ['Body', 'Sale!'], ['To', '09876543210'], ['To', 'not-a-number'], ['To', '+919876543211']] });
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(3);
    expect(res.body[0].SMSMessage).toMatchObject({ To: '09876543210', Body: 'Sale!', Status: 'queued' });
    expect(res.body[1].RestException).toMatchObject({ Status: 400, To: 'not-a-number' });
    expect(res.body[1].RestException.Message).toMatch(/Invalid Recipient/);
    expect(res.body[2].SMSMessage.To).toBe('09876543211');
  });

  it('bulk-sends different bodies with Messages[i][To]/[Body] in index order', async () => {
    const sim = await startSim();
    const res = await api(sim, 'Sms/bulksend.json', {
      form: [['From', 'EXOSIM'], ['Messages[1][To]', '09876543211'], ['Messages[1][Body]', 'second'], ['Messages[0][To]', '09876543210'], ['Messages[0][Body]', 'first']],
    });
    expect(res.status).toBe(200);
    expect(res.body.map((m: any) => [m.SMSMessage.To, m.SMSMessage.Body])).toEqual([['09876543210', 'first'], ['09876543211', 'second']]);
  });

  it('seeds a few SMS that can be looked up', async () => {
    const sim = await startSim();
    const seeded = sim.sms.list();
    expect(seeded.length).toBeGreaterThanOrEqual(3);
    const res = await api(sim, `SMS/Messages/${seeded[0]!.Sid}.json`);
    expect(res.status).toBe(200);
    expect(res.body.SMSMessage.Sid).toBe(seeded[0]!.Sid);
  });
});

describe('simulator number metadata', () => {
  it('answers the documented deterministic metadata in every accepted spelling', async () => {
    const sim = await startSim();
    for (const spelling of ['+919876543217', '919876543217', '09876543217', '9876543217']) {
      const res = await api(sim, `Numbers/${encodeURIComponent(spelling)}.json`);
      expect(res.status).toBe(200);
      expect(res.body.Numbers).toEqual(numberMetadata('9876543217'));
    }
    const mobile = (await api(sim, 'Numbers/09876543217.json')).body.Numbers;
    expect(mobile).toMatchObject({ PhoneNumber: '+919876543217', Type: 'Mobile', DND: 'Yes' });
    expect(mobile.Circle).toMatch(/^[A-Z]{2}$/);
    expect((await api(sim, 'Numbers/09876543210.json')).body.Numbers.DND).toBe('No');
    const landline = (await api(sim, 'Numbers/08039591111.json')).body.Numbers;
    expect(landline).toMatchObject({ Type: 'Landline', Circle: 'KA', CircleName: 'Karnataka Telecom Circle', DND: 'No' });
    expect((await api(sim, 'Numbers/01140845678.json')).body.Numbers).toMatchObject({ Circle: 'DL', Operator: 'MT' });
  });
});

describe('simulator ExoPhones (v1)', () => {
  it('lists them as production integrations read them, IncomingPhoneNumbers[].IncomingPhoneNumber, paged by NextPageUri', async () => {
    const sim = await startSim();
    const all = await api(sim, 'IncomingPhoneNumbers.json');
    expect(all.status).toBe(200);
    expect(Object.keys(all.body)).toEqual(['IncomingPhoneNumbers']);
    expect(all.body.IncomingPhoneNumbers.map((p: any) => p.IncomingPhoneNumber.PhoneNumber)).toEqual(SEEDED_EXOPHONES.map((p) => p.phone_number));
    const pages: string[][] = [];
    let next: string | undefined = 'IncomingPhoneNumbers.json?PageSize=3';
    while (next) {
      const page: { status: number; body: any } = await api(sim, next);
      pages.push(page.body.IncomingPhoneNumbers.map((p: any) => p.IncomingPhoneNumber.Sid));
      next = page.body.NextPageUri ? String(page.body.NextPageUri).replace(`/v1/Accounts/${sim.accountSid}/`, '') : undefined;
    }
    expect(pages.map((p) => p.length)).toEqual([3, SEEDED_EXOPHONES.length - 3]);
    expect(pages.flat()).toEqual(SEEDED_EXOPHONES.map((p) => p.sid));
  });
});

describe('simulator ExoPhones (v2_beta)', () => {
  it('lists the seeded ExoPhones in snake_case with page/page_size/next_page_uri', async () => {
    const sim = await startSim();
    const all = await api(sim, `/v2_beta/Accounts/${sim.accountSid}/IncomingPhoneNumbers`);
    expect(all.status).toBe(200);
    expect(all.body.incoming_phone_numbers).toHaveLength(SEEDED_EXOPHONES.length);
    expect(SEEDED_EXOPHONES.length).toBeGreaterThanOrEqual(3);
    expect(all.body.incoming_phone_numbers[0]).toMatchObject({ sid: expect.any(String), phone_number: expect.stringMatching(/^\+91\d{10}$/), friendly_name: expect.any(String), capabilities: { voice: expect.any(Boolean), sms: expect.any(Boolean) } });
    expect(all.body.next_page_uri).toBeNull();

    const collected: string[] = [];
    let next: string | null = `/v2_beta/Accounts/${sim.accountSid}/IncomingPhoneNumbers?page_size=3`;
    while (next) {
      const page: { status: number; body: any } = await api(sim, next);
      // Like Exotel: the echoed page size is 50 whatever was asked, and the next URI names another host.
      expect(page.body.page_size).toBe(50);
      expect(page.body.incoming_phone_numbers.length).toBeLessThanOrEqual(3);
      collected.push(...page.body.incoming_phone_numbers.map((p: any) => p.sid));
      next = page.body.next_page_uri;
      if (next) {
        expect(next).toMatch(/^http:\/\/twilix\.exotel\.com\/v2_beta\//);
        const url = new URL(next);
        next = `${url.pathname}${url.search}`;
      }
    }
    expect(collected).toEqual(SEEDED_EXOPHONES.map((p) => p.sid));
    expect((await api(sim, `/v2_beta/Accounts/${sim.accountSid}/IncomingPhoneNumbers`, { auth: null })).status).toBe(401);
  });
});
