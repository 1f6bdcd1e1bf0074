// The page: whose taste, their history, recommendations with reasons, search, similar movies.
import { api, AuthRequired, hasKey, setKey } from "./api.js";
import { startLive } from "./live.js";
import { startExperiment } from "./experiment.js";

const $ = (id) => document.getElementById(id);
const SESSION = "movie-recs:session-history";

const state = {
  mode: "user",
  user: null,
  session: JSON.parse(sessionStorage.getItem(SESSION) || "[]"), // newest first
  ranks: new Map(), // movie id -> rank in the list shown before the last change
  changed: false, // the last refresh follows an event: mark what entered or moved
  ticket: 0,
  shown: null, // the recommendations shown: their recommendation_id and movie ids
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let toastTimer;
export function toast(message, kind = "info") {
  const node = $("toast");
  node.textContent = message;
  node.dataset.kind = kind;
  node.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => node.classList.remove("show"), kind === "error" ? 6000 : 2500);
}

const label = (m) => (m.year ? `${m.title} (${m.year})` : m.title);

// --- one movie row, with its actions ----------------------------------------------------------
function actions(movie) {
  const name = label(movie);
  const stars = [1, 2, 3, 4, 5].map((r) =>
    el("button", {
      type: "button",
      class: "star",
      "aria-label": `Rate ${name} ${r} of 5`,
      title: `Rate ${r} of 5`,
      onclick: () => record(movie, { kind: "rate", rating: r }),
    }, String(r)),
  );
  return el("div", { class: "actions" },
    el("button", {
      type: "button",
      class: "small",
      "aria-label": `Watched ${name}`,
      onclick: () => record(movie, { kind: "watch" }),
    }, "Watched"),
    el("button", {
      type: "button",
      class: "small ghost",
      "aria-label": `Not for me: ${name}`,
      title: "Not for me: show fewer movies like this one",
      onclick: () => record(movie, { kind: "dislike" }),
    }, "Not for me"),
    el("button", {
      type: "button",
      class: "small ghost",
      "aria-label": `Movies similar to ${name}`,
      onclick: () => showSimilar(movie),
    }, "Similar"),
    el("span", { class: "stars", role: "group", "aria-label": `Rate ${name}` }, "rate", stars),
  );
}

function movieRow(movie, { scale, mark } = {}) {
  const width = scale ? scale(movie.score) : 0;
  return el("li", { class: "movie", "data-movie-id": movie.movie_id },
    el("div", { class: "line" },
      el("span", { class: "title" }, movie.title),
      movie.year ? el("span", { class: "year" }, movie.year) : null,
      mark ? el("span", { class: `mark ${mark.kind}` }, mark.text) : null,
    ),
    el("div", { class: "genres-line" }, movie.genres.join(" · ") || "no genres"),
    movie.score !== undefined
      ? el("div", { class: "score" },
          el("span", { class: "track" }, el("span", { class: "bar", "data-width": width })),
          el("span", { class: "value" }, movie.score.toFixed(2)))
      : null,
    movie.because !== undefined
      ? el("p", { class: "because" }, movie.because
          ? ["because you watched ", el("b", {}, movie.because.title)]
          : movie.reason === "people_like_you"
            ? "popular with people like you"
            : "popular with everyone (no history to go on)")
      : null,
    actions(movie),
  );
}

// Bars span the list's own range (scores are inner products, close together): 25% to 100%.
function scaleOf(items) {
  const scores = items.map((i) => i.score);
  const hi = Math.max(...scores);
  const lo = Math.min(...scores);
  return (score) => (hi > lo ? Math.round(25 + (75 * (score - lo)) / (hi - lo)) : 100);
}

function sizeBars(list) {
  // style-src 'self' forbids inline style attributes: set widths through the CSSOM instead.
  for (const bar of list.querySelectorAll(".bar")) bar.style.width = `${bar.dataset.width}%`;
}

// --- who ------------------------------------------------------------------------------------
function filters() {
  const genres = [...document.querySelectorAll("#genres input:checked")].map((i) => i.value);
  const year = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  const chosen = [genres.length ? `${genres.length} genre(s)` : "", $("year-min").value || $("year-max").value ? "years" : ""]
    .filter(Boolean).join(", ");
  $("filter-summary").textContent = chosen ? `(${chosen})` : "";
  const diversity = Number($("diversity").value);
  $("diversity-value").textContent = diversity.toFixed(1);
  return {
    diversity: diversity > 0 ? diversity : undefined, // 0 is the default: keep the URL plain
    exclude_seen: $("exclude-seen").checked,
    genres: genres.length ? genres : undefined,
    year_min: year("year-min"),
    year_max: year("year-max"),
  };
}

async function refresh() {
  if (state.mode === "user" && !state.user) {
    $("history").replaceChildren(el("li", { class: "empty" }, "Choose a user to start."));
    $("recs").replaceChildren();
    $("recs-meta").textContent = "";
    return;
  }
  const ticket = ++state.ticket; // only the newest refresh renders (filters change fast)
  $("recs").setAttribute("aria-busy", "true");
  try {
    const [history, recs] = state.mode === "user"
      ? await Promise.all([api.history(state.user), api.userRecs(state.user, filters())])
      : [{ items: state.session }, await api.sessionRecs(
          state.session.map(({ movie_id, kind, rating }) => ({ movie_id, kind, rating: rating ?? undefined })),
          filters())];
    if (ticket !== state.ticket) return;
    renderHistory(history.items);
    renderRecs(recs);
  } catch (error) {
    handle(error);
  } finally {
    if (ticket === state.ticket) $("recs").setAttribute("aria-busy", "false");
  }
}

function renderHistory(items) {
  const list = $("history");
  if (!items.length) {
    list.replaceChildren(el("li", { class: "empty" }, state.mode === "user"
      ? "No events: recommendations fall back to what is popular."
      : "Nothing yet: search a title and click Watched or a rating."));
    return;
  }
  list.replaceChildren(...items.map((e) =>
    el("li", {},
      el("span", { class: "title" }, e.title ?? `movie ${e.movie_id} (left the catalog)`),
      e.year ? el("span", { class: "year" }, e.year) : null,
      e.kind === "rate"
        ? el("span", { class: "rating" }, `${"★".repeat(Math.round(e.rating))} ${e.rating}`)
        : el("span", { class: e.kind === "dislike" ? "disliked" : "watched" },
            e.kind === "dislike" ? "not for me" : "watched"),
    )));
}

function renderRecs(recs) {
  const who = state.mode === "user" ? `user ${state.user}` : "this session";
  $("recs-title").textContent = `Recommended for ${who}`;
  $("recs-meta").textContent =
    `${recs.strategy} · model ${recs.model_version} · index v${recs.index_version} · ` +
    `${recs.history_length} history items used` +
    (recs.experiment ? ` · experiment ${recs.experiment}: variant ${recs.variant}` : "");
  // the list's id goes with an event for one of its movies (explicit attribution)
  state.shown = { id: recs.recommendation_id, movies: new Set(recs.items.map((i) => i.movie_id)) };
  const scale = scaleOf(recs.items);
  const previous = state.ranks;
  const rows = recs.items.map((item, rank) => {
    let mark = null;
    if (state.changed && previous.size) {
      const before = previous.get(item.movie_id);
      if (before === undefined) mark = { kind: "new", text: "new" };
      else if (before > rank) mark = { kind: "up", text: `↑${before - rank}` };
      else if (before < rank) mark = { kind: "down", text: `↓${rank - before}` };
    }
    return movieRow(item, { scale, mark });
  });
  state.ranks = new Map(recs.items.map((item, rank) => [item.movie_id, rank]));
  state.changed = false;
  const list = $("recs");
  list.replaceChildren(...(rows.length ? rows : [el("li", { class: "empty" }, "Nothing matches these filters.")]));
  sizeBars(list);
}

async function record(movie, event) {
  const what = { rate: `rated ${event.rating}/5`, dislike: "not for me", watch: "watched" }[event.kind];
  try {
    if (state.mode === "user") {
      if (!state.user) return toast("Choose a user first.", "error");
      const from = state.shown?.movies.has(movie.movie_id) ? state.shown.id : undefined;
      await api.addEvent(state.user, { movie_id: movie.movie_id, ...event, recommendation_id: from });
    } else {
      state.session = [
        { movie_id: movie.movie_id, title: movie.title, year: movie.year, rating: null, ...event },
        ...state.session.filter((e) => e.movie_id !== movie.movie_id),
      ].slice(0, 200);
      sessionStorage.setItem(SESSION, JSON.stringify(state.session));
    }
    toast(`${label(movie)}: ${what}`);
    state.changed = true;
    await refresh();
  } catch (error) {
    handle(error);
  }
}

function chooseUser(user) {
  state.user = user;
  $("user-id").value = user;
  state.ranks = new Map();
  for (const pill of document.querySelectorAll("#sample-users button")) {
    pill.setAttribute("aria-pressed", String(pill.dataset.user === user));
  }
  refresh();
}

function setMode(mode) {
  state.mode = mode;
  state.ranks = new Map();
  $("user-pick").hidden = mode !== "user";
  $("anon-help").hidden = mode !== "anon";
  refresh();
}

// --- search and similar -----------------------------------------------------------------------
async function runSearch(text) {
  const list = $("search-results");
  if (!text.trim()) return list.replaceChildren();
  try {
    const found = await api.search(text);
    list.replaceChildren(...(found.items.length
      ? found.items.map((m) => movieRow(m))
      : [el("li", { class: "empty" }, `No title matches “${text}”.`)]));
  } catch (error) {
    handle(error);
  }
}

async function showSimilar(movie) {
  const panel = $("detail");
  panel.hidden = false;
  $("detail-title").textContent = `Similar to ${label(movie)}`;
  try {
    const [record, similar] = await Promise.all([api.movie(movie.movie_id), api.similar(movie.movie_id)]);
    const links = [
      record.imdb_id && el("a", { href: `https://www.imdb.com/title/tt${record.imdb_id}/`, rel: "noopener noreferrer", target: "_blank" }, "IMDb"),
      record.tmdb_id && el("a", { href: `https://www.themoviedb.org/movie/${record.tmdb_id}`, rel: "noopener noreferrer", target: "_blank" }, "TMDB"),
    ].filter(Boolean);
    $("detail-info").replaceChildren(
      record.genres.join(" · ") || "no genres",
      record.tags.length ? ` — tags: ${record.tags.slice(0, 6).join(", ")}` : "",
      ...(links.length ? [" — ", ...links.flatMap((a, i) => (i ? [" · ", a] : [a]))] : []),
    );
    const scale = scaleOf(similar.items);
    const list = $("similar");
    list.replaceChildren(...similar.items.map((m) => movieRow({ ...m, because: undefined }, { scale })));
    sizeBars(list);
    panel.scrollIntoView({ behavior: "smooth", block: "nearest" });
  } catch (error) {
    handle(error);
  }
}

// --- auth -----------------------------------------------------------------------------------
function handle(error) {
  if (error instanceof AuthRequired) {
    askForKey(hasKey() ? "That key was refused: try another." : "");
    return;
  }
  console.warn(error);
  toast(error.message || String(error), "error");
}

function askForKey(message) {
  setKey(null);
  $("app").hidden = true;
  $("auth").hidden = false;
  $("auth-error").textContent = message;
  $("auth-status").textContent = "API key required";
  $("auth-key").focus();
}

async function start() {
  let status;
  try {
    status = await api.catalog(undefined, 0);
  } catch (error) {
    if (error instanceof AuthRequired) return askForKey(hasKey() ? "That key was refused: try another." : "");
    $("auth-status").textContent = `server unavailable: ${error.message}`;
    return;
  }
  $("auth").hidden = true;
  $("app").hidden = false;
  $("auth-status").textContent = hasKey() ? "signed in with an API key" : "auth is off on this server (no API key configured)";
  $("auth-status").dataset.kind = hasKey() ? "ok" : "warn";
  $("genres").replaceChildren(...status.genres.map((g) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", value: g }), g)));
  startLive(status, { onError: handle, record });
  startExperiment();
  try {
    const sample = await api.sampleUsers();
    $("sample-users").replaceChildren(...sample.users.map((u) =>
      el("li", {}, el("button", {
        type: "button",
        class: "pill",
        "data-user": u.user_id,
        "aria-pressed": "false",
        onclick: () => chooseUser(u.user_id),
      }, `user ${u.user_id}`, el("span", { class: "quiet" }, ` ${u.events} events`)))));
  } catch (error) {
    handle(error);
  }
  refresh();
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  setKey($("auth-key").value.trim());
  $("auth-key").value = "";
  start();
});
$("user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("user-id").value.trim();
  if (user) chooseUser(user);
});
for (const radio of document.querySelectorAll("input[name=mode]")) {
  radio.addEventListener("change", () => setMode(radio.value));
}
$("filters").addEventListener("change", () => refresh());
$("filters").addEventListener("submit", (event) => event.preventDefault());
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  runSearch($("search-q").value);
});
let searchTimer;
$("search-q").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => runSearch($("search-q").value), 250);
});

start();
