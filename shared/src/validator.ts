import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { FACT_KEY_FORMAT, isFactKey } from './facts.js';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;

/**
 * The validator compiler of both HTTP APIs. Query strings, params and headers
 * are text, so they are coerced ("5" → 5); bodies are JSON and are not, so
 * `{"email": 7}` is a 400 instead of silently becoming "7".
 */
export function createValidatorCompiler(): (route: { schema: object; httpPart?: string }) => (data: unknown) => boolean {
  // `unicode: false`: lengths count UTF-16 units, as TypeBox's checks on the agent, the SDK and in
  // validateOps do; Ajv's default (code points) let a value the server took fail every agent's parse.
  // Ajv calls that option deprecated (it still honours it); its warning is the one line of Ajv's we drop.
  const logger = { log: console.log, error: console.error, warn: (...a: unknown[]) => (String(a[0]).includes('option unicode') ? undefined : console.warn(...a)) };
  const base: Options = { removeAdditional: false, useDefaults: true, allErrors: false, verbose: true, strict: false, unicode: false, logger };
  const strict = new Ajv({ ...base, coerceTypes: false });
  const coercing = new Ajv({ ...base, coerceTypes: 'array' });
  addFormats(strict);
  addFormats(coercing);
  for (const ajv of [strict, coercing]) ajv.addFormat(FACT_KEY_FORMAT, { type: 'string', validate: isFactKey });
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema) as (data: unknown) => boolean;
}
