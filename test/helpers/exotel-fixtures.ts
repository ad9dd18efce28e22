/** The recorded Exotel answer shapes of test/fixtures/exotel/ (see its README). */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURE_DIR = join(import.meta.dirname, '..', 'fixtures', 'exotel');

/** One recorded answer: where it comes from, which client operation receives it, and the answer itself. */
export interface Fixture {
  _source: string;
  endpoint: string;
  status: number;
  contentType?: string;
  body: unknown;
}

export function loadFixtures(): Map<string, Fixture> {
  const out = new Map<string, Fixture>();
  for (const file of readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.json')).sort()) {
    out.set(file.replace(/\.json$/, ''), JSON.parse(readFileSync(join(FIXTURE_DIR, file), 'utf8')) as Fixture);
  }
  return out;
}

