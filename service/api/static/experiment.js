// The experiment panel: the newest experiment's report (GET /v1/experiments/{name}/report),
// polled every 5 s. It needs the admin scope: hidden when the key lacks it or none exists.
import { api } from "./api.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 5000;
let timer;

const percent = (value) => (value === null ? "–" : `${(value * 100).toFixed(1)} %`);
const points = (value) => `${value >= 0 ? "+" : "−"}${Math.abs(value * 100).toFixed(1)}`;

function lift(comparison) {
  if (!comparison) return "control";
  const { lift: d, ci_low: low, ci_high: high } = comparison;
  return `${points(d)} [${points(low)}, ${points(high)}] pts`;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function render(report) {
  $("experiment").hidden = false;
  $("experiment-title").textContent =
    `Experiment ${report.experiment}${report.running ? "" : " (ended)"}`;
  $("experiment-rows").replaceChildren(...report.variants.map((v) => {
    const row = document.createElement("tr");
    row.dataset.variant = v.name;
    row.append(
      cell(`${v.name} (${v.strategy}${v.model ? '@' + v.model : ''})`),
      cell(v.users.toLocaleString()),
      cell(percent(v.per_user_rate)),
      cell(lift(v.per_user)),
      cell(v.verdict ?? "–"),
    );
    return row;
  }));
  const note = $("experiment-note");
  note.textContent = `SRM p = ${report.srm_p_value.toPrecision(2)}. ${report.note}`;
  note.dataset.kind = report.srm ? "warn" : "";
}

export function startExperiment() {
  clearTimeout(timer);
  async function poll() {
    try {
      const { experiments } = await api.experiments();
      const newest = experiments[experiments.length - 1];
      if (newest) render(await api.report(newest.name));
      else $("experiment").hidden = true;
    } catch (error) {
      $("experiment").hidden = true;
      if (String(error.message).includes("lacks")) return; // no admin scope: stop asking
    }
    timer = setTimeout(poll, POLL_MS);
  }
  poll();
}
