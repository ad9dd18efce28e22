import { expect } from 'vitest';
import { GatewayError } from '../../src/errors.js';

/** The rejection of `promise`, which must be a GatewayError. */
export async function failure(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayError);
    return error as GatewayError;
  }
  throw new Error('expected the call to fail');
}
