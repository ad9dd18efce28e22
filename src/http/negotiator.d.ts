/** The part of negotiator (a dependency of Apollo Server, used as Apollo uses it) the gateway calls; it ships no types. */
declare module 'negotiator' {
  export default class Negotiator {
    constructor(request: { headers: { accept?: string } });
    /** The most preferred of `available` the Accept header allows, or undefined when it allows none. */
    mediaType(available?: string[]): string | undefined;
  }
}
