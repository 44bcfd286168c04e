// One pipe: its stages as written, counters and rates per stage, last error, checkpoint positions and
// lag per partition, dead letters, start/stop, and a live tap. Polled every second.
import { useEffect, useState } from "preact/hooks";
import * as YAML from "yaml";
import { getJSON, postJSON, usePoll } from "./api.js";
import { DeadLetters } from "./deadletters.js";
import { count, rate, stateClass } from "./format.js";
import { html } from "./html.js";
import { TapPanel } from "./tap.js";

const POLL_MS = 1000;
const READING = Symbol("reading");

function Written({ value }) {
  if (value === READING) return html`<p class="loading">reading…</p>`;
  if (value === undefined || value === null) return html`<p class="fine">not written (none)</p>`;
  return html`<pre class="written">${YAML.stringify(value, { lineWidth: 0 }).trimEnd()}</pre>`;
}

function Stage({ title, value, stats, optional }) {
  const absent = optional && value !== READING && (value === undefined || value === null);
  return html`
    <div class=${`stage${absent ? " absent" : ""}`} data-stage=${title.toLowerCase().replace(" ", "_")}>
      <h3>${title}</h3>
      ${absent ? html`<p class="fine">none</p>` : html`<${Written} value=${value} />`}
      <dl class="stats">
        ${stats.filter(Boolean).map(([label, n, perS, bad]) => html`
          <dt>${label}</dt>
          <dd class=${bad && n ? "bad" : ""}>${count(n)}${perS !== undefined ? html` <span class="rate">${rate(perS)}</span>` : null}</dd>
        `)}
      </dl>
    </div>
  `;
}

export function PipePage({ name }) {
  const path = `../pipes/${encodeURIComponent(name)}`;
  const { data, error } = usePoll(
    async () => {
      const [pipe, rates] = await Promise.all([getJSON(path), getJSON("../rates")]);
      return { pipe, live: rates.pipes[name] || null };
    },
    POLL_MS,
    [name],
  );
  const [definition, setDefinition] = useState(null);
  const [busy, setBusy] = useState("");
  const [actionError, setActionError] = useState("");
  useEffect(() => {
    getJSON(`${path}/definition`).then(setDefinition, (exc) => setDefinition({ error: exc.message }));
  }, [name]);

  if (!data) {
    return html`<section>${error ? html`<p class="error">${error.status === 404 ? `No pipe named ${name}.` : error.message}</p>` : html`<p class="loading">Reading ${name}…</p>`}</section>`;
  }
  const { pipe, live } = data;
  const c = pipe.counters;
  const perS = (live && live.per_s) || {};
  const failedAt = (stage) => (c.failed_by_stage || {})[stage] || 0;
  const written = definition === null
    ? new Proxy({}, { get: (_, key) => (key === "description" ? "" : READING) })
    : definition.pipe || {};
  const control = async (verb) => {
    setBusy(verb);
    setActionError("");
    try {
      await postJSON(`${path}/${verb}`, {});
    } catch (exc) {
      setActionError(exc.message);
    }
    setBusy("");
  };
  const checkpoint = pipe.checkpoint || {};
  const lag = pipe.source_lag || {};
  const partitions = [...new Set([...Object.keys(checkpoint), ...Object.keys(lag)])].sort();
  return html`
    <section class="pipe-page" data-pipe=${name}>
      <div class="heading">
        <h1>${name}</h1>
        <span class=${`chip big ${stateClass(pipe.state)}`} data-state=${pipe.state}>${pipe.state}</span>
        ${pipe.desired_state !== pipe.state ? html`<span class="fine">desired: ${pipe.desired_state}</span>` : null}
        <span class="spacer"></span>
        ${pipe.desired_state === "RUNNING"
          ? html`<button class="danger" onClick=${() => control("stop")} disabled=${busy !== ""}>${busy === "stop" ? "Stopping…" : "Stop"}</button>`
          : html`<button class="primary" onClick=${() => control("start")} disabled=${busy !== ""}>${busy === "start" ? "Starting…" : "Start"}</button>`}
        <a class="button" href=${`#/compose/${encodeURIComponent(name)}`}>Edit</a>
      </div>
      <p class="fine">${written.description ? `${written.description}. ` : ""}Defined in <code>${pipe.file}</code>.
        ${error ? html` <span class="error">Live updates stopped: ${error.message}</span>` : null}</p>
      ${actionError ? html`<p class="error">${actionError}</p>` : null}
      ${pipe.last_error ? html`<div class="last-error" role="alert"><strong>Last error</strong> ${pipe.last_error}</div>` : null}
      ${definition && definition.error ? html`<p class="fine">${definition.error}</p>` : null}

      <div class="stages">
        <${Stage} title="Source" value=${written.source} stats=${[
          ["received", c.received, perS.received],
          live && live.lag !== null ? ["lag", live.lag] : null,
          live ? ["in flight", live.in_flight] : null,
          failedAt("source") ? ["failed", failedAt("source"), undefined, true] : null,
        ]} />
        <${Stage} title="Filter" optional value=${written.filter} stats=${[
          ["filtered out", c.filtered, perS.filtered],
          ["passed", Math.max(0, c.received - c.filtered)],
          failedAt("filter") ? ["failed", failedAt("filter"), undefined, true] : null,
        ]} />
        <${Stage} title="Enrichment" optional value=${written.enrichment} stats=${[
          ["dropped", c.dropped, perS.dropped],
          ["failed", failedAt("enrichment"), undefined, true],
        ]} />
        <${Stage} title="Transform" optional value=${written.transform} stats=${[
          ["failed", failedAt("transform") + failedAt("filter_transform"), undefined, true],
        ]} />
        <${Stage} title="Target" value=${written.target} stats=${[
          ["delivered", c.delivered, perS.delivered],
          ["failed attempts", failedAt("target"), perS.failed, true],
          ["retried", c.retried, perS.retried],
        ]} />
        <${Stage} title="Dead letter" optional value=${written.dead_letter} stats=${[
          ["dead-lettered", c.dead_lettered, perS.dead_lettered, true],
        ]} />
      </div>

      <div class="columns">
        <section class="card" data-panel="checkpoints">
          <h2>Checkpoints and lag</h2>
          ${partitions.length
            ? html`<table class="partitions">
                <thead><tr><th>Partition</th><th class="num">Checkpoint</th><th class="num">Lag</th></tr></thead>
                <tbody>${partitions.map((p) => html`<tr data-partition=${p}><td>${p}</td><td class="num">${checkpoint[p] ?? "–"}</td><td class="num">${lag[p] !== undefined ? count(lag[p]) : "–"}</td></tr>`)}</tbody>
              </table>`
            : html`<p class="fine">No position settled yet.</p>`}
          <p class="fine">The checkpoint is the last position below which every event is settled (delivered, filtered out or dead-lettered); after a restart the pipe resumes after it.</p>
        </section>
        <${DeadLetters} name=${name} deadLettered=${c.dead_lettered} hasDeadLetter=${definition === null ? null : Boolean(written.dead_letter)} />
      </div>
      <${TapPanel} name=${name} />
    </section>
  `;
}
