/**
 * Just enough multipart/form-data for Exotel's status callbacks: text fields only, the whole body already
 * in memory (it is capped by the route's body limit). Files, if any, are skipped. A body that does not
 * follow the format yields undefined rather than a partial record.
 */

/** The `boundary` parameter of a multipart Content-Type, or undefined. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  const m = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType ?? '');
  return m?.[1] ?? m?.[2];
}

/** Text fields of a multipart body; undefined when it is not well-formed multipart. */
export function parseMultipartFields(body: Buffer, boundary: string): Record<string, string> | undefined {
  const text = body.toString('utf8');
  const delimiter = `--${boundary}`;
  const parts = text.split(delimiter);
  // Before the first delimiter is a preamble; after the last comes "--" (the close delimiter).
  if (parts.length < 2 || !parts.at(-1)!.startsWith('--')) return undefined;
  const fields: Record<string, string> = {};
  for (const raw of parts.slice(1, -1)) {
    const part = raw.replace(/^\r?\n/, '');
    const split = part.search(/\r?\n\r?\n/);
    if (split < 0) return undefined;
    const headers = part.slice(0, split);
    const value = part.slice(split).replace(/^\r?\n\r?\n/, '').replace(/\r?\n$/, '');
    const disposition = /content-disposition:\s*form-data;([^\r\n]*)/i.exec(headers)?.[1];
    if (!disposition) return undefined;
    if (/filename\*?=/i.test(disposition)) continue;
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1] ?? /\bname=([^;\s]+)/i.exec(disposition)?.[1];
    if (name === undefined) return undefined;
    fields[name] = value;
  }
  return fields;
}
