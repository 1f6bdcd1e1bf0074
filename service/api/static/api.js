// The API, as the page uses it. The key (when the server wants one) comes from the person and
// lives in sessionStorage; nothing secret is shipped with the page.

const KEY = "movie-recs:api-key";

export class AuthRequired extends Error {}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function hasKey() {
  return Boolean(sessionStorage.getItem(KEY));
}

async function call(method, path, body) {
  const headers = { accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) throw new AuthRequired((await response.json()).detail);
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch {
      /* not JSON */
    }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

const q = (params) => {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of [].concat(value)) if (v !== undefined && v !== null && v !== "") search.append(name, v);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
};

const enc = encodeURIComponent;

export const api = {
  catalog: (after, limit = 20) => call("GET", `/v1/catalog${q({ after, limit })}`),
  sampleUsers: () => call("GET", "/v1/users?limit=8"),
  history: (user) => call("GET", `/v1/users/${enc(user)}/events?limit=20`),
  userRecs: (user, f) =>
    call("GET", `/v1/users/${enc(user)}/recommendations${q({ k: 10, ...f })}`),
  sessionRecs: (history, f) =>
    call("POST", "/v1/recommendations", { history, k: 10, ...f }),
  addEvent: (user, event) => call("POST", `/v1/users/${enc(user)}/events`, event),
  search: (text) => call("GET", `/v1/movies${q({ q: text, limit: 8 })}`),
  movie: (id) => call("GET", `/v1/movies/${enc(id)}`),
  similar: (id) => call("GET", `/v1/movies/${enc(id)}/similar?k=6`),
  experiments: () => call("GET", "/v1/experiments"),
  report: (name) => call("GET", `/v1/experiments/${enc(name)}/report`),
};
