interface AjvIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
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
    case 'pattern':
    case 'enum':
      return `${path} is not valid${hint ? `: ${hint}` : ` (${issue.message ?? 'bad value'})`}`;
    default:
      return `${path} ${issue.message ?? 'is invalid'}${hint ? ` (${hint})` : ''}`;
  }
}
