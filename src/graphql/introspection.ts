/**
 * Who may introspect the schema (INTROSPECTION = off | authenticated | on). One policy for HTTP (an Apollo
 * plugin) and graphql-ws (onSubscribe), checked after validation, so the refusal names the variable an
 * operator can change — not Apollo's "pass introspection: true to ApolloServer". A refusal is
 * BAD_USER_INPUT with `extensions.reason: "INTROSPECTION"`, as for the other limits checked before execution.
 */
import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { BREAK, GraphQLError, visit, type DocumentNode } from 'graphql';
import { ANONYMOUS, type Principal } from '../auth.js';
import type { IntrospectionMode } from '../config.js';
import { ErrorCode, GatewayError } from '../errors.js';
import type { GraphQLContext } from './context.js';


/** `extensions.reason` of a refused introspection. */
export const INTROSPECTION_REASON = 'INTROSPECTION';

// `__type(` and `__schema`, not `__typename`, which every client may ask for.
const MENTIONS_INTROSPECTION = /__(schema|type)\b/;

/** True when the document selects `__schema` or `__type` anywhere (fragments included). */
export function selectsSchemaIntrospection(document: DocumentNode, source?: string): boolean {
  if (source !== undefined && !MENTIONS_INTROSPECTION.test(source)) return false;
  let found = false;
  visit(document, {
    Field(node) {
      if (node.name.value === '__schema' || node.name.value === '__type') {
        found = true;
        return BREAK;
      }
      return undefined;
    },
  });
  return found;
}

export interface IntrospectionPolicy {
  readonly mode: IntrospectionMode;
  /** The error for this caller running this document, or undefined when it may. */
  check(document: DocumentNode, principal: Principal | null | undefined, source?: string): GatewayError | undefined;
}

/** `authenticated`: any valid client key may introspect; callers of an open gateway (no keys) may not. */
export function createIntrospectionPolicy(mode: IntrospectionMode): IntrospectionPolicy {
  return {
    mode,
    check(document, principal, source) {
      if (mode === 'on' || !selectsSchemaIntrospection(document, source)) return undefined;
      if (mode === 'authenticated') {
        if (principal && principal !== ANONYMOUS) return undefined;
        return new GatewayError(
          ErrorCode.BAD_USER_INPUT,
          'Introspection needs a valid client key on this gateway (INTROSPECTION=authenticated): send "Authorization: Bearer <secret>". A gateway without client keys (GATEWAY_API_KEYS unset) allows it only with INTROSPECTION=on.',
          { reason: INTROSPECTION_REASON },
        );
      }
      return new GatewayError(
        ErrorCode.BAD_USER_INPUT,
        'Introspection is off on this gateway (INTROSPECTION=off, the default with NODE_ENV=production). Its operator can set INTROSPECTION=authenticated (any valid client key) or INTROSPECTION=on; the schema is also in the repository\'s schema/*.graphql.',
        { reason: INTROSPECTION_REASON },
      );
    },
  };
}

/**
 * HTTP: refuses introspection the policy does not allow with 400, like the other checks made before
 * execution (BAD_USER_INPUT, `extensions.reason` INTROSPECTION).
 */
export function introspectionPlugin(policy: IntrospectionPolicy): ApolloServerPlugin<GraphQLContext> {
  // One listener for every request: it keeps nothing per request.
  const listener: GraphQLRequestListener<GraphQLContext> | undefined =
    policy.mode === 'on'
      ? undefined
      : {
          async didResolveOperation({ document, request, contextValue }) {
            const refused = policy.check(document, contextValue.auth, request.query);
            if (!refused) return;
            throw new GraphQLError(refused.message, { originalError: refused, extensions: { ...refused.extensions, http: { status: 400 } } });
          },
        };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}
