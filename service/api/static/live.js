// The live catalog panel: polls /v1/catalog once a second for versions, size, lag and arrivals.
import { api, AuthRequired } from "./api.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
let timer;

function command() {
  return `.venv/bin/movie-recs send-webhook examples/new-movie.json --url ${location.origin} ` +
    "--secret 'whsec_… (from the demo's terminal)'";
}

let shownModel = null;

function show(status) {
  const model = $("live-model");
  if (shownModel !== null && status.model_version !== shownModel) {
    // A promoted version (or a rollback) reached this replica: say so, with the time.
    model.textContent = `${status.model_version} (was ${shownModel}, since ${new Date().toLocaleTimeString()})`;
    model.classList.add("changed");
    setTimeout(() => model.classList.remove("changed"), 8000);
  } else if (shownModel === null) {
    model.textContent = status.model_version;
  }
  shownModel = status.model_version;
  $("live-version").textContent = status.index_version.toLocaleString();
  $("live-size").textContent = `${status.index_size.toLocaleString()} (${status.index_kind})`;
  $("live-lag").textContent = status.lag === 0 ? "0 (caught up)" : `${status.lag} change(s) behind`;
}

function arrival(change, { record }) {
  const when = new Date(change.accepted_at * 1000).toLocaleTimeString();
  const li = document.createElement("li");
  li.className = "arrival fresh";
  li.dataset.movieId = change.movie_id;
  const text = document.createElement("span");
  const name = change.title ? `${change.title}${change.year ? ` (${change.year})` : ""}` : `movie ${change.movie_id}`;
  text.textContent = change.op === "delete"
    ? `${name} removed (v${change.seq}, ${when})`
    : `${name} ${change.indexed ? "indexed" : "accepted"} (v${change.seq}, ${when})`;
  li.append(text);
  if (change.op === "upsert" && change.indexed) {
    const watch = document.createElement("button");
    watch.type = "button";
    watch.className = "small";
    watch.textContent = "Watched";
    watch.setAttribute("aria-label", `Watched ${name}`);
    watch.addEventListener("click", () => record({ movie_id: change.movie_id, title: change.title, year: change.year }, { kind: "watch" }));
    li.append(" ", watch);
  }
  setTimeout(() => li.classList.remove("fresh"), 4000);
  return li;
}

export function startLive(first, handlers) {
  clearTimeout(timer);
  $("webhook-command").textContent = command();
  $("copy-command").onclick = async () => {
    try {
      await navigator.clipboard.writeText(command());
      $("copy-command").textContent = "Copied";
    } catch {
      $("copy-command").textContent = "Select and copy";
    }
    setTimeout(() => ($("copy-command").textContent = "Copy"), 2000);
  };
  const list = $("arrivals");
  list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "Nothing yet: run the command above." }));
  let after = first.index_version;
  show(first);

  async function poll() {
    try {
      const status = await api.catalog(after, 20);
      show(status);
      if (status.changes.length) {
        list.querySelector(".empty")?.remove();
        for (const change of status.changes) list.prepend(arrival(change, handlers));
        while (list.children.length > 20) list.lastElementChild.remove();
        after = status.changes[status.changes.length - 1].seq;
      } else if (status.index_version < after) {
        after = status.index_version; // the store was emptied and the index resynced
      }
      $("live-title").dataset.state = "ok";
    } catch (error) {
      $("live-title").dataset.state = "stale";
      if (error instanceof AuthRequired) return handlers.onError(error);
    }
    timer = setTimeout(poll, POLL_MS);
  }
  timer = setTimeout(poll, POLL_MS);
}
