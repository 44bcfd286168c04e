// Recent dead letters of a pipe, when the daemon can read its dead-letter target back
// (GET /pipes/NAME/dead-letters and .../records, JSON lines). A daemon whose API has no such
// endpoint gets a plain note instead, and the count from the pipe's counters.
import { useEffect, useState } from "preact/hooks";
import { ApiError, getJSON, hasEndpoint } from "./api.js";
import { count } from "./format.js";
import { html } from "./html.js";

const SHOWN = 20;

async function records(name) {
  const response = await fetch(`../pipes/${encodeURIComponent(name)}/dead-letters/records?limit=${SHOWN}`, {
    credentials: "same-origin",
  });
  const text = await response.text();
  if (!response.ok) throw new ApiError(response.status, text, null);
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

export function DeadLetters({ name, deadLettered, hasDeadLetter }) {
  const [available, setAvailable] = useState(null);
  const [summary, setSummary] = useState(null);
  const [rows, setRows] = useState([]);
  const [problem, setProblem] = useState("");

  useEffect(() => {
    hasEndpoint("/pipes/{name}/dead-letters").then(setAvailable);
  }, []);
  useEffect(() => {
    if (!available || !hasDeadLetter) return;
    getJSON(`../pipes/${encodeURIComponent(name)}/dead-letters`)
      .then(async (found) => {
        setSummary(found);
        setRows(found.count ? await records(name) : []);
      })
      .catch((exc) => setProblem(exc.message));
  }, [available, hasDeadLetter, deadLettered]);

  let body;
  if (hasDeadLetter === null) {
    body = html`<p class="loading">Reading…</p>`;
  } else if (!hasDeadLetter) {
    body = html`<p class="fine">This pipe has no <code>dead_letter</code>: an event that keeps failing is retried, and its partition waits.</p>`;
  } else if (available === false) {
    body = html`<p class="placeholder" data-placeholder="dead-letters">
      ${count(deadLettered)} events dead-lettered since the daemon started. Reading them back needs the
      dead-letter endpoints of the admin API (<code>GET /pipes/NAME/dead-letters</code>), which this daemon does not offer.
    </p>`;
  } else if (problem) {
    body = html`<p class="error">${problem}</p>`;
  } else if (summary) {
    body = html`
      <p>${count(summary.count)} waiting${summary.oldest ? `, oldest ${summary.oldest}` : ""}${summary.newest ? `, newest ${summary.newest}` : ""}.</p>
      <ol class="tap-lines">
        ${rows.map((r) => html`<li>
          <span class="chip bad">${(r.error && r.error.type) || "error"}</span>
          <span class="where">${r.stage || ""}</span>
          <code>${(r.error && r.error.message) || JSON.stringify(r)}</code>
        </li>`)}
      </ol>`;
  } else {
    body = html`<p class="loading">Reading…</p>`;
  }
  return html`<section class="card" data-panel="dead-letters"><h2>Dead letters</h2>${body}</section>`;
}
