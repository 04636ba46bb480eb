// The GraphQL API of oneScreen, as the screen uses it. One error type: ApiError(code, message, requestId).
// The bearer token lives in sessionStorage at most (never localStorage, never the URL).

const TOKEN_KEY = "onescreen.token";

export class ApiError extends Error {
  constructor(code, message, {status = 0, requestId = null, extensions = {}} = {}) {
    super(message || code);
    this.code = code;
    this.status = status;
    this.requestId = requestId;
    this.extensions = extensions;
  }
}

export const session = {
  get token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set token(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage refused (privacy mode): the token then lives in memory only
    }
  },
};

const hashes = new Map();  // query text -> sha256 hex (automatic persisted queries)

async function sha256(text) {
  if (!hashes.has(text)) {
    if (!globalThis.crypto?.subtle) return null;  // not a secure context: send the query text
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    hashes.set(text, Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return hashes.get(text);
}

async function post(token, payload) {
  try {
    return await fetch("/graphql", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": `Bearer ${token}`},
      body: JSON.stringify(payload),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError("NETWORK", "network error");
  }
}

/** POST /graphql. Returns `data`; throws ApiError for HTTP errors and for errors of the root fields asked.

    Sends the query's sha256 first (Apollo-style automatic persisted queries, which a server restricted to
    registered queries requires) and the full text only when the server does not know the hash yet. */
export async function gql(token, query, variables = {}) {
  const hash = await sha256(query);
  const operationName = /^\s*(?:query|mutation)\s+(\w+)/.exec(query)?.[1];
  const extensions = hash ? {persistedQuery: {version: 1, sha256Hash: hash}} : undefined;
  let response = await post(token, hash ? {operationName, variables, extensions} : {query, operationName, variables});
  if (hash && response.status === 200) {
    const probe = await response.clone().json().catch(() => null);
    if (probe?.errors?.[0]?.extensions?.code === "PERSISTED_QUERY_NOT_FOUND") {
      response = await post(token, {query, operationName, variables, extensions});
    }
  }
  const requestId = response.headers.get("X-Request-Id");
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const first = body && Array.isArray(body.errors) && body.errors.length ? body.errors[0] : null;
  const code = first?.extensions?.code;
  const rid = body?.extensions?.requestId || requestId;
  if (response.status === 401) {
    throw new ApiError("UNAUTHENTICATED", first?.message, {status: 401, requestId: rid});
  }
  if (!response.ok && !(response.status === 400 && body?.errors)) {
    throw new ApiError(code || "HTTP", first?.message || response.statusText,
                       {status: response.status, requestId: rid, extensions: first?.extensions || {}});
  }
  const data = body?.data || null;
  if (first && (!data || Object.values(data).some((v) => v === null))) {
    throw new ApiError(code || "DEFAULT", first.message,
                       {status: response.status, requestId: rid, extensions: first.extensions || {}});
  }
  if (!data) throw new ApiError("DEFAULT", "empty response", {status: response.status, requestId: rid});
  Object.defineProperty(data, "requestId", {value: rid, enumerable: false});
  return data;
}

/** Demo mode only: the demo users for the sign-in picker, or null when the server is not in demo mode. */
export async function demoUsers() {
  try {
    const response = await fetch("/demo/users", {credentials: "omit", cache: "no-store"});
    if (!response.ok) return null;
    const users = await response.json();
    return Array.isArray(users) ? users : null;
  } catch {
    return null;
  }
}

/** Demo mode only: a token for a demo user. */
export async function demoToken(user) {
  let response;
  try {
    response = await fetch("/demo/token", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({user}),
      credentials: "omit", cache: "no-store",
    });
  } catch {
    throw new ApiError("NETWORK", "network error");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || !body?.token) {
    throw new ApiError(body?.errors?.[0]?.extensions?.code || "HTTP", body?.errors?.[0]?.message,
                       {status: response.status});
  }
  return body.token;
}

export const Q = {
  signIn: `query SignIn {
    me { user name organisation region roles actions }
    tasks { code name nameEn legalBasis legalBasisEn subjectType caseRefExample
            sections { title titleEn fields { id label labelEn type ledger agency } } }
  }`,
  subjects: `query Subjects($type: String!, $query: String!, $task: ID!) {
    subjectSearch(type: $type, query: $query, task: $task) {
      matches { id subjectType fields { id label labelEn value display status } }
      truncated limit total totalExact
    }
  }`,
  screen: `query Screen($task: ID!, $subject: ID!, $caseRef: String!, $fields: [ID!]) {
    screen(task: $task, subject: $subject, caseRef: $caseRef, fields: $fields) {
      subject caseRef requestId
      unavailableLedgers { ledger agency name nameEn reason }
      consent { id caseRef method exception recordedBy at validUntil reusedFrom }
      reusableConsents { id caseRef method exception recordedBy at validUntil }
      sections { title titleEn fields {
        id label labelEn type value display status reason reasonEn badValues { row column reason reasonEn }
        explanation { kind rule label labelEn basis basisEn }
        source { agency agencyName agencyNameEn ledger ledgerName ledgerNameEn readAt lastUpdated cached }
        consentBased consent { method exception recordedBy recordedAt caseRef validUntil reusedFrom }
      } }
    }
  }`,
  recordConsent: `mutation RecordConsent($task: ID!, $subject: ID!, $caseRef: String!, $method: String!,
                                         $exception: String) {
    recordConsent(task: $task, subject: $subject, caseRef: $caseRef, method: $method, exception: $exception) {
      id task caseRef method exception noticeDeferred recordedBy at validUntil
    }
  }`,
  reuseConsent: `mutation ReuseConsent($task: ID!, $subject: ID!, $fromCase: String!, $toCase: String!) {
    reuseConsent(task: $task, subject: $subject, fromCase: $fromCase, toCase: $toCase) {
      id task caseRef method exception recordedBy at validUntil reusedFrom
    }
  }`,
  accessHistory: `query AccessHistory($subject: ID, $subjectType: String, $first: Int, $after: String, $user: String,
                                       $task: ID, $caseRef: String, $since: DateTime, $until: DateTime) {
    accessHistory(subject: $subject, subjectType: $subjectType, first: $first, after: $after, user: $user,
                  task: $task, caseRef: $caseRef, since: $since, until: $until) {
      entries { at user userName organisation role task taskName taskNameEn legalBasis caseRef consentBased
                fields { id status label labelEn } }
      nextCursor
    }
  }`,
};
