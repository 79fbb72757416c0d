import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;

/**
 * The validator compiler of both HTTP APIs. Query strings, params and headers
 * are text, so they are coerced ("5" → 5); bodies are JSON and are not, so
 * `{"email": 7}` is a 400 instead of silently becoming "7".
 */
export function createValidatorCompiler(): (route: { schema: object; httpPart?: string }) => (data: unknown) => boolean {
  const base: Options = { removeAdditional: false, useDefaults: true, allErrors: false, verbose: true, strict: false };
  const strict = new Ajv({ ...base, coerceTypes: false });
  const coercing = new Ajv({ ...base, coerceTypes: 'array' });
  addFormats(strict);
  addFormats(coercing);
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema) as (data: unknown) => boolean;
}
