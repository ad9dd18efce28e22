/** The storage contract (storage-contract.ts) against memory and against the real Redis. */
import { createMemoryStorage } from '../../src/storage/memory.js';
import { describeStorageContract } from './storage-contract.js';

describeStorageContract('memory', async (options) => {
  let now = Date.now();
  const storage = createMemoryStorage({ ...options, clock: () => now });
  return {
    storage,
    async elapse(ms) {
      now += ms;
    },
    replica: undefined,
    exactCountRetention: true,
  };
});

