/**
 * Abuse limits checked before execution: depth, aliases and directives with graphql-armor's validation
 * rules, tokens with graphql's own lexer. HTTP (Apollo) and graphql-ws run the same checks, so no
 * operation too big to answer ever reaches a resolver — or Exotel. The cost limit, which must count list
 * items and so needs the variables, lives in src/graphql/cost.ts (graphql-armor's weighs a list as one item).
 *
 * A rejection is a BAD_USER_INPUT GatewayError with `extensions.reason` (MAX_DEPTH, MAX_ALIASES,
 * MAX_DIRECTIVES, MAX_TOKENS). Messages name the configured limit outside production, and
 * nothing in production: the client learns which rule fired, not how the document measured.
 */
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, Lexer, Source, TokenKind, type ValidationContext, type ValidationRule } from 'graphql';
import type { Limits } from '../config.js';
import { ErrorCode, GatewayError, maskSuggestions } from '../errors.js';

/** `extensions.reason` of each limit. */
export const LimitReason = {
  MAX_DEPTH: 'MAX_DEPTH',
  MAX_ALIASES: 'MAX_ALIASES',
  MAX_DIRECTIVES: 'MAX_DIRECTIVES',
  MAX_COST: 'MAX_COST',
  MAX_TOKENS: 'MAX_TOKENS',
  MAX_BATCH_SIZE: 'MAX_BATCH_SIZE',
  MAX_LIST_SIZE: 'MAX_LIST_SIZE',
  MAX_RESPONSE_BYTES: 'MAX_RESPONSE_BYTES',
  MAX_BODY_BYTES: 'MAX_BODY_BYTES',
} as const;
export type LimitReason = (typeof LimitReason)[keyof typeof LimitReason];

export interface ArmorOptions {
  limits: Pick<Limits, 'maxDepth' | 'maxAliases' | 'maxDirectives' | 'maxTokens'>;
  /** Production: no numbers in messages and no field suggestions on graphql-ws. */
  production: boolean;
}

export interface Armor {
  /** Validation rules for Apollo (which turns suggestions off itself in production). */
  validationRules: ValidationRule[];
  /** The same rules for graphql-ws (introspection is the INTROSPECTION policy's, src/graphql/introspection.ts). */
  wsValidationRules: ValidationRule[];
  /** A MAX_TOKENS error when `source` has more tokens than allowed, else undefined. Never parses. */
  checkTokens(source: string): GatewayError | undefined;
  /** Production strips "Did you mean …?" hints from messages (they enumerate the schema). */
  maskSuggestions(message: string): string;
}

/** A limit's client-facing error. */
export function limitError(reason: LimitReason, what: string, limit: number, production: boolean): GatewayError {
  const message = production ? `The operation was rejected: ${what}.` : `The operation was rejected: ${what} (limit ${limit}).`;
  return new GatewayError(ErrorCode.BAD_USER_INPUT, message, { reason });
}

/** True when `source` holds more than `max` lexical tokens; syntax errors are left to the parser. */
export function exceedsTokens(source: string, max: number): boolean {
  // Every token is at least one character long.
  if (source.length <= max) return false;
  const lexer = new Lexer(new Source(source));
  let count = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) if (++count > max) return true;
  } catch {
    return false;
  }
  return false;
}

export function createArmor(options: ArmorOptions): Armor {
  const { limits, production } = options;
  // graphql-armor calls onReject with its own error (which names numbers found in the document); the
  // reported error is ours. propagateOnRejection: false keeps armor from throwing out of validate().
  const reject = (reason: LimitReason, what: string, limit: number) => ({
    propagateOnRejection: false,
    onReject: [
      (ctx: ValidationContext | null) => {
        const error = limitError(reason, what, limit, production);
        ctx?.reportError(new GraphQLError(error.message, { originalError: error, extensions: error.extensions }));
      },
    ],
  });
  // Only armor's validation rules are used: its token plugin throws out of Apollo's parsing hook (a 500)
  // and its suggestion mask is Apollo-only, so tokens and suggestions are handled here for both transports.
  const { validationRules } = new ApolloArmor({
    maxDepth: { n: limits.maxDepth, ...reject(LimitReason.MAX_DEPTH, 'the selection is nested too deeply', limits.maxDepth) },
    maxAliases: { n: limits.maxAliases, ...reject(LimitReason.MAX_ALIASES, 'too many aliases', limits.maxAliases) },
    maxDirectives: { n: limits.maxDirectives, ...reject(LimitReason.MAX_DIRECTIVES, 'too many directives', limits.maxDirectives) },
    costLimit: { enabled: false },
    maxTokens: { enabled: false },
    blockFieldSuggestion: { enabled: false },
  }).protect();
  return {
    validationRules,
    wsValidationRules: validationRules,
    checkTokens: (source) =>
      exceedsTokens(source, limits.maxTokens) ? limitError(LimitReason.MAX_TOKENS, 'the document has too many tokens', limits.maxTokens, production) : undefined,
    maskSuggestions: (message) => (production ? maskSuggestions(message) : message),
  };
}
