import { FactsyncError } from './errors.js';
import { FACT_KEY_FORMAT, factKeyProblem } from './facts.js';

interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  /** The value that failed (Ajv's `verbose`). */
  data?: unknown;
  parentSchema?: { description?: string };
}

/**
 * Turns the first schema violation into one sentence that names the field and,
 * where the schema describes the accepted form, says how to fix it, e.g.
 * `body.ops[0].type "User" does not match: lower-case letter, then up to 63 of a-z 0-9 _`.
 */
export function describeValidationError(error: { message: string; validation?: unknown; validationContext?: string }): string {
  const issues = (error.validation as AjvIssue[] | undefined) ?? [];
  // For a union, Ajv reports each branch's complaint and then anyOf; the union's description says it best.
  const issue = issues.find((i) => i.keyword === 'anyOf' && i.parentSchema?.description) ?? issues[0];
  const where = error.validationContext ?? 'request';
  if (!issue) return error.message;
  const path = `${where}${issue.instancePath.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replaceAll('/', '.')}`;
  const hint = issue.parentSchema?.description;
  switch (issue.keyword) {
    case 'required':
      return `${path} is missing required field "${String(issue.params.missingProperty)}"`;
    case 'additionalProperties':
      return `${path} has unknown field "${String(issue.params.additionalProperty)}"`;
    case 'anyOf':
      return `${path} must be ${hint ?? 'one of the accepted forms'}`;
    case 'format':
      if (issue.params.format === FACT_KEY_FORMAT && typeof issue.data === 'string') return `${path} ${factKeyProblem(issue.data) ?? 'is not a key'}`;
      return `${path} ${issue.message ?? 'is invalid'}${hint ? ` (${hint})` : ''}`;
    case 'pattern':
    case 'enum':
      return `${path} is not valid${hint ? `: ${hint}` : ` (${issue.message ?? 'bad value'})`}`;
    default:
      return `${path} ${issue.message ?? 'is invalid'}${hint ? ` (${hint})` : ''}`;
  }
}

/** What an HTTP framework error carries (Fastify's FastifyError, structurally). */
export interface FrameworkError {
  message: string;
  code?: string;
  statusCode?: number;
  validation?: unknown;
  validationContext?: string;
}

/**
 * Every error of the server's and the agent's HTTP APIs leaves as
 * `{error, message}` with the status its code carries; framework errors are
 * translated here, once, with a sentence that says how to fix the request
 * (never the framework's own shape, and never an echo of the whole URL).
 */
export function toFactsyncError(error: FrameworkError, bodyLimitVar = 'BODY_LIMIT_BYTES'): FactsyncError {
  if (error instanceof FactsyncError) return error;
  if (error.validation) return new FactsyncError('invalid_request', describeValidationError(error));
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FactsyncError('payload_too_large', `${error.message}; split the write or raise ${bodyLimitVar}`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new FactsyncError('unsupported_media_type', 'send the body as JSON with Content-Type: application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new FactsyncError('invalid_request', 'the body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new FactsyncError('invalid_request', `the body is not valid JSON: ${error.message}`);
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new FactsyncError('uri_too_long', 'a path parameter is too long: keys are at most 512 bytes of UTF-8');
    default:
      break;
  }
  const status = error.statusCode ?? 500;
  if (status === 413) return new FactsyncError('payload_too_large', error.message);
  if (status === 415) return new FactsyncError('unsupported_media_type', 'send the body as JSON with Content-Type: application/json');
  if (status >= 400 && status < 500) return new FactsyncError(status === 404 ? 'not_found' : 'invalid_request', error.message);
  return new FactsyncError('internal', 'internal error; the details are in the log');
}
