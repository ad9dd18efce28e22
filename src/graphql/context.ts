/**
 * What every resolver receives as its third argument. A placeholder the GraphQL wiring extends with the
 * Exotel client, loaders, storage and the caller's identity.
 */
export interface GraphQLContext {
  [key: string]: unknown;
}
