/**
 * The cost of an operation, known before anything runs, counting the lists it asks for.
 *
 * graphql-armor's cost limit weighs each field once, however many items its list holds, so one
 * `callsBySid` of 1,000 Sids under 60 aliases looks as cheap as one `call`. Here the cost is the number of
 * values the answer would hold: every field counts once per object it is selected on, and a list field
 * multiplies its selection by the items it returns — the length or value of its slicing argument (`sids`,
 * `numbers`, `first`, `input.messages`), else its assumed size. Both come from the SDL's `@listSize`
 * directive (after IBM's GraphQL cost directive spec), so the schema is the one place a list's size is
 * written. The cost is linear in the multiplier, so a fragment is walked once per operation however often
 * it is spread.
 *
 * The same walk checks every list argument and list input field against its `@maxItems` cap (repeated
 * scalar values count once), so an oversized list is refused with BAD_USER_INPUT naming the field before
 * any resolver — or Exotel — sees it.
 *
 * Variables take part (a `$sids` of 1,000 counts 1,000), so the check runs where variables are known:
 * the HTTP guard (for a batch, the sum of its operations) and graphql-ws's subscribe. They are weighed as
 * execution will see them, coerced with the operation's declared defaults applied (`coerceVariables`): a
 * value written as `$first: Int = 100000` is refused like the same value sent, or written in place.
 */
import {
  getDirectiveValues,
  getNamedType,
  getNullableType,
  getVariableValues,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  getOperationAST,
  Kind,
  OperationTypeNode,
  parse,
  valueFromASTUntyped,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLArgument,
  type GraphQLDirective,
  type GraphQLField,
  type GraphQLInputField,
  type GraphQLInputType,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import { ErrorCode, GatewayError } from '../errors.js';
import { LimitReason } from './armor.js';

/** A list field with no `@listSize` counts this many items (a schema test keeps every list sized). */
export const DEFAULT_LIST_SIZE = 10;

interface ListSize {
  assumedSize: number | undefined;
  slicingArguments: readonly string[];
  sizedFields: readonly string[];
}

/** What the SDL says about sizes, read once per schema. */
interface SizeInfo {
  listSize: GraphQLDirective | undefined;
  maxItems: GraphQLDirective | undefined;
  fields: WeakMap<GraphQLField<unknown, unknown>, ListSize | null>;
  caps: WeakMap<GraphQLArgument | GraphQLInputField, number | null>;
}

const infos = new WeakMap<GraphQLSchema, SizeInfo>();
function sizeInfo(schema: GraphQLSchema): SizeInfo {
  let info = infos.get(schema);
  if (!info) {
    info = { listSize: schema.getDirective('listSize') ?? undefined, maxItems: schema.getDirective('maxItems') ?? undefined, fields: new WeakMap(), caps: new WeakMap() };
    infos.set(schema, info);
  }
  return info;
}

function listSizeOf(info: SizeInfo, field: GraphQLField<unknown, unknown>): ListSize | null {
  let size = info.fields.get(field);
  if (size === undefined) {
    const values = info.listSize && field.astNode ? getDirectiveValues(info.listSize, field.astNode) : undefined;
    size = values
      ? {
          assumedSize: typeof values.assumedSize === 'number' ? values.assumedSize : undefined,
          slicingArguments: (values.slicingArguments as string[] | undefined) ?? [],
          sizedFields: (values.sizedFields as string[] | undefined) ?? [],
        }
      : null;
    info.fields.set(field, size);
  }
  return size;
}

/** The `@maxItems` cap of a list argument or input field, or null. */
export function capOf(schema: GraphQLSchema, input: GraphQLArgument | GraphQLInputField): number | null {
  const info = sizeInfo(schema);
  let cap = info.caps.get(input);
  if (cap === undefined) {
    const values = info.maxItems && input.astNode ? getDirectiveValues(info.maxItems, input.astNode) : undefined;
    cap = typeof values?.max === 'number' ? values.max : null;
    info.caps.set(input, cap);
  }
  return cap;
}

/** The `@listSize` of a field, for the schema test. */
export function listSizeOfField(schema: GraphQLSchema, field: GraphQLField<unknown, unknown>): ListSize | null {
  return listSizeOf(sizeInfo(schema), field);
}

function isListOutput(field: GraphQLField<unknown, unknown>): boolean {
  return isListType(getNullableType(field.type));
}

/** Items a value stands for: a list's length, an integer's value, else nothing known. */
function sizeOfValue(value: unknown): number | undefined {
  if (Array.isArray(value)) return value.length;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  return undefined;
}

/** A value at a dotted path of the arguments, e.g. "input.messages". */
function atPath(args: Record<string, unknown>, path: string): unknown {
  let value: unknown = args;
  for (const part of path.split('.')) {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * Throws BAD_USER_INPUT when a list in `value` (of `type`) holds more than its cap; `cap` applies to
 * `value` itself, input object fields bring their own.
 */
function checkInput(schema: GraphQLSchema, type: GraphQLInputType, value: unknown, cap: number | null, path: string): void {
  if (value === null || value === undefined) return;
  const nullable = isNonNullType(type) ? type.ofType : type;
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    if (cap !== null) {
      // Repeated scalars are answered in place and cost one lookup, so they count once. An object or list
      // in a scalar's slot is no scalar (coercion refuses it) and counts as itself: never serialised, as
      // one nested deeper than the stack would throw.
      const count = isLeafType(getNamedType(nullable)) ? new Set(items).size : items.length;
      if (count > cap) {
        throw new GatewayError(ErrorCode.BAD_USER_INPUT, `${path}: at most ${cap} ${isLeafType(getNamedType(nullable)) ? 'distinct values' : 'items'} (got ${count})`, {
          field: path,
          reason: LimitReason.MAX_LIST_SIZE,
        });
      }
    }
    const itemType = nullable.ofType as GraphQLInputType;
    if (!isLeafType(getNamedType(itemType))) items.forEach((item, i) => checkInput(schema, itemType, item, null, `${path}[${i}]`));
    return;
  }
  if (isInputObjectType(nullable) && typeof value === 'object' && !Array.isArray(value)) {
    for (const field of Object.values(nullable.getFields())) {
      const fieldValue = (value as Record<string, unknown>)[field.name];
      if (fieldValue !== undefined) checkInput(schema, field.type, fieldValue, capOf(schema, field), `${path}.${field.name}`);
    }
  }
}

/** Variable errors reported at most per operation (graphql's own cap; one request can hold many). */
const MAX_VARIABLE_ERRORS = 50;

/**
 * `variables` as execution will see them: coerced to the types `operation` declares, its defaults applied
 * to the variables not sent. Errors (the client's: a wrong type, a required variable missing) stop
 * execution before any resolver, as graphql's own coercion would.
 */
export function coerceVariables(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): ReturnType<typeof getVariableValues> {
  return getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {}, { maxErrors: MAX_VARIABLE_ERRORS });
}

/**
 * The cost of `operation` of `document` with its `variables` coerced (`coerceVariables`: defaults applied).
 * Throws BAD_USER_INPUT (reason MAX_LIST_SIZE) when a list argument is over its cap. Fields the schema does
 * not know cost nothing: validation reports them.
 */
export function operationCost(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, variables: Record<string, unknown>): number {
  const root = schema.getRootType(operation.operation);
  if (!root) return 0;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  const info = sizeInfo(schema);
  // Cost of a fragment per object it is spread on; in progress → 0 (a cycle, which validation refuses).
  const fragmentCosts = new Map<string, number>();

  const argumentsOf = (field: GraphQLField<unknown, unknown>, node: FieldNode): Record<string, unknown> => {
    const args: Record<string, unknown> = {};
    for (const arg of node.arguments ?? []) {
      const definition = field.args.find((a) => a.name === arg.name.value);
      const value = valueFromASTUntyped(arg.value, variables);
      args[arg.name.value] = value;
      if (definition) checkInput(schema, definition.type, value, capOf(schema, definition), arg.name.value);
    }
    return args;
  };

  /** Cost of `selectionSet` on one object of `type`; `sized` gives list sizes set by the parent field. */
  const unitCost = (type: GraphQLNamedType | undefined, selectionSet: SelectionSetNode, sized: ReadonlyMap<string, number> | undefined): number => {
    let total = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        const on = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : type;
        total += unitCost(on ?? undefined, selection.selectionSet, sized);
        continue;
      }
      if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const name = selection.name.value;
        // Sizes set by the parent (a connection's edges and nodes) change a fragment's cost.
        const key = sized ? `${name}\u0000${[...sized].join()}` : name;
        let cost = fragmentCosts.get(key);
        if (cost === undefined) {
          const fragment = fragments.get(name);
          fragmentCosts.set(key, 0);
          cost = fragment ? unitCost(schema.getType(fragment.typeCondition.name.value) ?? undefined, fragment.selectionSet, sized) : 0;
          fragmentCosts.set(key, cost);
        }
        total += cost;
        continue;
      }
      const fields = type && 'getFields' in type ? (type.getFields() as Record<string, GraphQLField<unknown, unknown>>) : undefined;
      const field = fields?.[selection.name.value];
      if (!field) {
        total += 1;
        continue;
      }
      const args = argumentsOf(field, selection);
      const listSize = listSizeOf(info, field);
      let slice: number | undefined;
      for (const name of listSize?.slicingArguments ?? []) slice ??= sizeOfValue(atPath(args, name));
      const size = slice ?? listSize?.assumedSize;
      let items = 1;
      let childSized: Map<string, number> | undefined;
      if (listSize?.sizedFields.length) {
        childSized = new Map(listSize.sizedFields.map((f) => [f, size ?? DEFAULT_LIST_SIZE]));
      } else if (isListOutput(field)) {
        items = sized?.get(field.name) ?? size ?? DEFAULT_LIST_SIZE;
      }
      const named = getNamedType(field.type);
      // The field's own value, then its selection once per item.
      total += 1 + (selection.selectionSet ? items * unitCost(named, selection.selectionSet, childSized) : isListOutput(field) ? items : 0);
    }
    return total;
  };

  return unitCost(root, operation.selectionSet, undefined);
}

/** The MAX_COST error: names the limit, the allowed value and what this operation would cost. */
export function costError(cost: number, maxCost: number, what = 'the operation'): GatewayError {
  return new GatewayError(
    ErrorCode.BAD_USER_INPUT,
    `The operation was rejected: ${what} would cost ${cost}, more than MAX_COST allows (${maxCost}). The cost counts every value of the answer, list items included; ask for fewer items or fields, or split the request.`,
    { reason: LimitReason.MAX_COST },
  );
}

/** Parsed documents of the HTTP guard, by text (least recently used dropped first); longer texts are parsed each time. */
const PARSED_CACHE = Object.freeze({ maxEntries: 500, maxTextChars: 10_000 });

/** One operation the cost check weighs. */
export interface CostedOperation {
  query: string | DocumentNode;
  operationName?: string | null | undefined;
  /** Its variables as the client sent them; coerced by the check (`coerceVariables`). */
  variables?: Record<string, unknown> | null | undefined;
  /** Or its variables already coerced by the caller (graphql-ws, which refuses a wrong one first): used as they are. */
  coercedVariables?: Record<string, unknown>;
}

export interface CostCheck {
  /**
   * The error refusing `operations` (one request, or every operation of a batch), or undefined when their
   * total cost is within MAX_COST. Operations that do not parse, or whose variables do not coerce, cost
   * nothing: parsing or coercion answers them with the client's error before any resolver runs.
   */
  check(operations: readonly CostedOperation[]): GatewayError | undefined;
}

export function createCostCheck(schema: GraphQLSchema, maxCost: number): CostCheck {
  // `false`: the text does not parse (lru-cache holds no null).
  const parsed = new LRUCache<string, DocumentNode | false>({ max: PARSED_CACHE.maxEntries });
  const documentOf = (query: string): DocumentNode | null => {
    let document = parsed.get(query);
    if (document === undefined) {
      try {
        document = parse(query);
      } catch {
        document = false;
      }
      if (query.length <= PARSED_CACHE.maxTextChars) parsed.set(query, document);
    }
    return document || null;
  };
  return {
    check(operations) {
      let total = 0;
      for (const op of operations) {
        const document = typeof op.query === 'string' ? documentOf(op.query) : op.query;
        if (!document) continue;
        // An unknown or ambiguous operation name is answered by execution with the client's error.
        const operation = getOperationAST(document, op.operationName ?? undefined);
        if (!operation) continue;
        const variables = op.coercedVariables ?? coerceVariables(schema, operation, op.variables).coerced;
        if (!variables) continue;
        try {
          total += operationCost(schema, document, operation, variables);
        } catch (err) {
          if (err instanceof GatewayError) return err;
          throw err;
        }
      }
      if (total > maxCost) return costError(total, maxCost, operations.length > 1 ? `the batch of ${operations.length} operations` : 'the operation');
      return undefined;
    },
  };
}

/**
 * The MAX_RESPONSE_BYTES error. The cost limit bounds an answer before it is built; this is the backstop
 * for answers whose values are long (texts, URLs) and is applied once the answer is serialised, before
 * a byte of it is sent.
 */
export function responseTooLargeError(maxBytes: number): GatewayError {
  return new GatewayError(
    ErrorCode.BAD_USER_INPUT,
    `The answer was withheld: it is larger than MAX_RESPONSE_BYTES allows (${maxBytes} bytes). Ask for fewer items or fields, or split the request.`,
    { reason: LimitReason.MAX_RESPONSE_BYTES },
  );
}

/**
 * True when the operation `operationName` selects in `document` is a mutation. Its answer is the only
 * account of what was done (a call placed, an SMS sent), so MAX_RESPONSE_BYTES never withholds it: a
 * client told its request was bad could send it again. (Mutation answers are small and capped by cost.)
 */
export function isMutation(document: DocumentNode, operationName?: string | null): boolean {
  return getOperationAST(document, operationName ?? undefined)?.operation === OperationTypeNode.MUTATION;
}

/** `isMutation` for a GraphQL-over-HTTP body (one request or a batch): true when any of them is one. */
export function bodyCarriesMutation(body: unknown): boolean {
  const requests: unknown[] = Array.isArray(body) ? body : [body];
  return requests.some((request) => {
    if (typeof request !== 'object' || request === null) return false;
    const { query, operationName } = request as { query?: unknown; operationName?: unknown };
    if (typeof query !== 'string') return false;
    try {
      return isMutation(parse(query), typeof operationName === 'string' ? operationName : undefined);
    } catch {
      return false;
    }
  });
}

/** True when `text` is longer than `maxBytes` in UTF-8; counts bytes only when the length cannot tell. */
export function exceedsBytes(text: string, maxBytes: number): boolean {
  // A UTF-16 code unit is 1 to 3 UTF-8 bytes.
  if (text.length > maxBytes) return true;
  if (text.length * 3 <= maxBytes) return false;
  return Buffer.byteLength(text) > maxBytes;
}
