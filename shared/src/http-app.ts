import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FactsyncError } from './errors.js';
import { describeJsonError } from './json-position.js';
import { toFactsyncError } from './validation-errors.js';
import { RouteTable } from './route-hints.js';
import { createValidatorCompiler } from './validator.js';
import { DEFAULT_CONNECTION_LIMITS, guardConnections, isHealthPath, overLimit, type ConnectionLimits } from './connection-guard.js';

export { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './connection-guard.js';

/** A fastify app whose routes take their types from their TypeBox schemas. */
export type TypedApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface HttpAppOptions {
  log: FastifyBaseLogger;
  bodyLimit: number;
  /** The variable that raises the body limit, named in a 413's message. */
  bodyLimitVar: string;
  /** `bearer`: every route but health and metrics takes `Authorization: Bearer <token>`. */
  openapi: { title: string; description: string; bearer?: boolean };
  /** Called for every error answer before it is sent (metrics, logging, headers). */
  onError?: (e: FactsyncError, error: FastifyError, req: FastifyRequest, reply: FastifyReply) => void;
  requestIdHeader?: string;
  forceCloseConnections?: boolean;
  /** Serve HTTPS (and so WSS) with these options (key, cert, and for mutual TLS ca + requestCert). */
  https?: import('node:https').ServerOptions;
  /** Connection counts and HTTP timeouts (invariant 10); defaults when absent. */
  limits?: ConnectionLimits;
}

/**
 * The one app builder of the server and the agent: the validator compiler,
 * JSON-only bodies (an empty one is no body), errors in factsync's
 * `{error, message}` shape (framework errors too, before any route), a 404
 * that names the method and path, and the OpenAPI document with its UI at
 * `/docs`.
 */
export async function createHttpApp(o: HttpAppOptions): Promise<TypedApp> {
  const app = Fastify({
    loggerInstance: o.log,
    bodyLimit: o.bodyLimit,
    // Keys are up to 512 characters, and URL-encoding may triple them (Fastify's default is 100).
    routerOptions: { maxParamLength: 8192 },
    // Errors the router raises before any hook (a parameter too long) leave in our shape too.
    frameworkErrors: (error, _req, reply) => {
      const e = toFactsyncError(error, o.bodyLimitVar);
      // The reply's types are route-generic; this one answers before any route is known.
      void (reply as unknown as { status(n: number): { send(b: unknown): unknown } }).status(e.status).send(e.toJSON());
    },
    // Per-request lines would drown the lines that matter (writes log their own, with env and version).
    logController: new LogController({ disableRequestLogging: true }),
    ...(o.requestIdHeader ? { requestIdHeader: o.requestIdHeader } : {}),
    ...(o.forceCloseConnections !== undefined ? { forceCloseConnections: o.forceCloseConnections } : {}),
    // The routes do not depend on the transport: an HTTPS app is typed as the plain one.
    ...(o.https ? { https: o.https } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as TypedApp;
  app.setValidatorCompiler(createValidatorCompiler());
  guardConnections(app.server, o.limits ?? DEFAULT_CONNECTION_LIMITS);
  // A connection past a limit is answered, not dropped: health checks pass, everything else hears why.
  app.addHook('onRequest', async (req, reply) => {
    const why = overLimit(req.raw.socket);
    if (why === undefined || isHealthPath(req.url)) return;
    void reply.header('connection', 'close').header('retry-after', '1');
    throw new FactsyncError('too_many_connections', `${why}: close idle connections or spread them over more replicas; health checks are still served`);
  });
  // Bodies are JSON only: a text/plain body would otherwise reach the schema as a string ("body must be object").
  app.removeContentTypeParser('text/plain');
  // An empty JSON body is no body: the Permit SDKs send DELETEs with Content-Type: application/json and nothing after it.
  const json = app.getDefaultJsonParser('error', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') return done(null, undefined);
    json(req, body as string, (error, value) => {
      if (!error) return done(null, value);
      // One sentence with where it broke (the default parser's message says neither).
      let detail: string;
      try {
        JSON.parse(body as string);
        // Valid JSON that the parser still refused: it holds a key that would reach Object.prototype.
        return done(new FactsyncError('invalid_request', 'the body has a property named "__proto__" (or "constructor" holding "prototype"), which is refused against prototype pollution; rename it (keys, users and tenants may be called so: only object property names may not)'), undefined);
      } catch (e) {
        detail = describeJsonError(body as string, (e as Error).message);
      }
      done(new FactsyncError('invalid_request', `the body is not valid JSON (${detail}); send one JSON value, e.g. {"ops": [...]}`), undefined);
    });
  });
  await app.register(swagger, {
    openapi: {
      info: { title: o.openapi.title, version: '1', description: o.openapi.description },
      ...(o.openapi.bearer ? { components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }, security: [{ bearer: [] }] } : {}),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const e = toFactsyncError(error, o.bodyLimitVar);
    if (e.code === 'internal') req.log.error({ err: error }, 'unhandled error');
    o.onError?.(e, error, req, reply);
    return reply.status(e.status).send(e.toJSON());
  });
  // A wrong method is a 405 with Allow; an unknown path names the nearest route.
  const routes = new RouteTable();
  app.addHook('onRoute', (r) => {
    for (const m of ([] as string[]).concat(r.method)) routes.add(m, r.url);
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const methods = routes.methodsFor(path);
    if (methods.length > 0) {
      const other = routes.nearest(req.method, path, true);
      const alt = other ? `, or ${req.method} ${other.url}` : '';
      return reply.status(405).header('allow', methods.join(', '))
        .send(new FactsyncError('method_not_allowed', `${req.method} is not served at ${path}: use ${methods.join(' or ')}${alt}`).toJSON());
    }
    const near = routes.nearest(req.method, path);
    const hint = near ? `; did you mean ${near.methods.includes(req.method) ? req.method : near.methods[0]} ${near.url}?` : '';
    return reply.status(404).send(new FactsyncError('not_found', `no route ${req.method} ${path}${hint} (the API is at /docs)`).toJSON());
  });
  return app as unknown as TypedApp;
}
