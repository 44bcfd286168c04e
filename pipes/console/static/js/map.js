// The map: every system the pipes connect (a Kafka topic, a Redis stream, a file...) once, and every
// pipe between them, live. Structure from GET /systems, life from GET /rates and GET /pipes, polled
// every second; the layout (dagre) is computed again only when the structure changes.
import dagre from "dagre";
import { useMemo } from "preact/hooks";
import { getJSON, usePoll } from "./api.js";
import { count, KIND_LABEL, kindFamily, rate, stateClass } from "./format.js";
import { html } from "./html.js";

const SYSTEM = { width: 230, height: 62 };
const PIPE = { width: 236, height: 58 };
const POLL_MS = 1000;

async function loadMap() {
  const [systems, rates, pipes] = await Promise.all([
    getJSON("../systems"),
    getJSON("../rates"),
    getJSON("../pipes"),
  ]);
  return { systems, rates, pipes: Object.fromEntries(pipes.pipes.map((p) => [p.name, p])) };
}

// Node and edge ids, and dagre's positions for them.
function layout(systems) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 28, ranksep: 70, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const s of systems.systems) g.setNode(`s:${s.id}`, { ...SYSTEM });
  const edges = [];
  for (const p of systems.pipes) {
    const node = `p:${p.name}`;
    g.setNode(node, { ...PIPE });
    const link = (from, to, role, system) => {
      g.setEdge(from, to, { weight: role === "source" || role === "target" ? 4 : 1, minlen: 1 });
      edges.push({ from, to, role, pipe: p.name, system });
    };
    for (const id of p.sources) link(`s:${id}`, node, "source", id);
    for (const id of p.targets) link(node, `s:${id}`, "target", id);
    for (const id of p.enrichment) link(`s:${id}`, node, "enrichment", id);
    for (const id of p.dead_letter) link(node, `s:${id}`, "dead_letter", id);
  }
  dagre.layout(g);
  const graph = g.graph();
  return {
    width: Math.max(graph.width || 0, 320),
    height: Math.max(graph.height || 0, 120),
    node: (id) => g.node(id),
    edges: edges.map((e) => ({ ...e, points: g.edge(e.from, e.to).points })),
  };
}

function pathOf(points) {
  const [first, ...rest] = points;
  if (rest.length === 0) return "";
  let d = `M${first.x},${first.y}`;
  // A smooth curve through dagre's points: each middle point becomes a control point.
  for (let i = 0; i < rest.length - 1; i++) {
    const mid = { x: (rest[i].x + rest[i + 1].x) / 2, y: (rest[i].y + rest[i + 1].y) / 2 };
    d += ` Q${rest[i].x},${rest[i].y} ${mid.x},${mid.y}`;
  }
  const last = rest[rest.length - 1];
  return `${d} L${last.x},${last.y}`;
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function SystemNode({ system, at }) {
  const family = kindFamily(system.kind);
  const x = at.x - SYSTEM.width / 2;
  const y = at.y - SYSTEM.height / 2;
  return html`
    <g class=${`system family-${family}`} data-system=${system.id} data-kind=${system.kind} transform=${`translate(${x},${y})`}>
      <title>${system.id}</title>
      <rect width=${SYSTEM.width} height=${SYSTEM.height} rx="8" />
      <rect class="stripe" width="6" height=${SYSTEM.height} rx="3" />
      <text class="kind" x="16" y="17">${KIND_LABEL[system.kind] || system.kind}</text>
      <text class="name" x="16" y="37">${clip(system.name, 26)}</text>
      <text class="where" x="16" y="53">${clip(system.where, 34)}</text>
    </g>
  `;
}

function PipeNode({ pipe, at, live, summary }) {
  const state = (live && live.state) || pipe.state;
  const perS = live && live.per_s;
  const x = at.x - PIPE.width / 2;
  const y = at.y - PIPE.height / 2;
  const failed = summary ? summary.counters.failed : 0;
  return html`
    <a href=${`#/pipes/${encodeURIComponent(pipe.name)}`} class="pipe-link">
      <g
        class=${`pipe state-${stateClass(state)}`}
        data-pipe=${pipe.name}
        data-state=${state}
        data-sources=${JSON.stringify(pipe.sources)}
        data-targets=${JSON.stringify(pipe.targets)}
        transform=${`translate(${x},${y})`}
      >
        <title>${pipe.name}: ${state}${summary && summary.last_error ? ` — ${summary.last_error}` : ""}</title>
        <rect width=${PIPE.width} height=${PIPE.height} rx=${PIPE.height / 2} />
        <circle class="dot" cx="20" cy="20" r="5" />
        <text class="name" x="32" y="24">${clip(pipe.name, 25)}</text>
        <text class="state" x="20" y="45">${state}</text>
        <text class="rate" x=${PIPE.width - 18} y="45" text-anchor="end">
          ${perS ? `${rate(perS.received)} → ${rate(perS.delivered)}` : "–"}
        </text>
        ${failed ? html`<text class="failed" x=${PIPE.width - 18} y="24" text-anchor="end">${count(failed)} failed</text>` : null}
      </g>
    </a>
  `;
}

function Edge({ edge, live }) {
  const state = live ? live.state : "";
  const perS = live && live.per_s;
  const flowing = perS && (edge.role === "target" ? perS.delivered : perS.received) > 0;
  const width = perS ? Math.min(6, 1.5 + Math.log10(1 + (perS.received || 0))) : 1.5;
  const lag = edge.role === "source" && live && live.lag ? live.lag : 0;
  const start = edge.points[0];
  const second = edge.points[1] || start;
  return html`
    <g class=${`edge role-${edge.role} state-${stateClass(state)}${flowing ? " flowing" : ""}`}>
      <path
        d=${pathOf(edge.points)}
        data-pipe=${edge.pipe}
        data-role=${edge.role}
        data-system=${edge.system}
        stroke-width=${width}
        marker-end="url(#arrow)"
      />
      ${lag
        ? html`<g class="lag" data-pipe=${edge.pipe} transform=${`translate(${(start.x + second.x) / 2},${(start.y + second.y) / 2 - 10})`}>
            <rect x="-36" y="-11" width="72" height="18" rx="9" />
            <text text-anchor="middle" y="2">lag ${count(lag)}</text>
          </g>`
        : null}
    </g>
  `;
}

function PipeTable({ systems, data }) {
  return html`
    <table class="pipes">
      <thead>
        <tr><th>Pipe</th><th>State</th><th class="num">Received</th><th class="num">Delivered</th><th class="num">Rate in → out</th><th class="num">Lag</th><th>Last error</th></tr>
      </thead>
      <tbody>
        ${systems.pipes.map((p) => {
          const summary = data.pipes[p.name];
          const live = data.rates.pipes[p.name];
          const perS = live && live.per_s;
          const state = (live && live.state) || p.state;
          return html`
            <tr data-pipe=${p.name}>
              <td><a href=${`#/pipes/${encodeURIComponent(p.name)}`}>${p.name}</a></td>
              <td><span class=${`chip ${stateClass(state)}`}>${state}</span></td>
              <td class="num received">${summary ? count(summary.counters.received) : "–"}</td>
              <td class="num delivered">${summary ? count(summary.counters.delivered) : "–"}</td>
              <td class="num">${perS ? `${rate(perS.received)} → ${rate(perS.delivered)}` : "–"}</td>
              <td class="num">${live && live.lag !== null ? count(live.lag) : "–"}</td>
              <td class="error-cell">${(summary && summary.last_error) || ""}</td>
            </tr>
          `;
        })}
      </tbody>
    </table>
  `;
}

export function MapPage() {
  const { data, error } = usePoll(loadMap, POLL_MS);
  const structure = data ? JSON.stringify([data.systems.systems, data.systems.pipes.map((p) => [p.name, p.sources, p.targets, p.enrichment, p.dead_letter])]) : "";
  const drawn = useMemo(() => (data ? layout(data.systems) : null), [structure]);
  if (!data) {
    return html`<section class="map-page">${error ? html`<p class="error">The daemon did not answer: ${error.message}</p>` : html`<p class="loading">Reading the pipes…</p>`}</section>`;
  }
  const { systems, rates } = data;
  const troubled = systems.pipes.filter((p) => ["FAILED", "DEGRADED"].includes((rates.pipes[p.name] || p).state));
  return html`
    <section class="map-page">
      <div class="heading">
        <h1>The map</h1>
        <p class="sub">${systems.systems.length} systems, ${systems.pipes.length} pipes. Systems are boxes; pipes are the pills between them, with events per second in → out. Click a pipe to open it.</p>
        <a class="button" href="#/compose">New pipe</a>
      </div>
      ${error ? html`<p class="error stale">Live updates stopped: ${error.message}</p>` : null}
      ${troubled.length
        ? html`<p class="alert">${troubled.map((p) => html`<a href=${`#/pipes/${encodeURIComponent(p.name)}`}>${p.name}</a> `)} ${troubled.length === 1 ? "needs" : "need"} attention.</p>`
        : null}
      ${systems.pipes.length === 0
        ? html`<p class="empty">No pipes yet. <a href="#/compose">Compose the first one.</a></p>`
        : html`
          <div class="map-frame">
            <svg class="map" viewBox=${`0 0 ${drawn.width} ${drawn.height}`} width=${drawn.width} height=${drawn.height} role="img" aria-label="Map of the systems and the pipes between them">
              <defs>
                <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                  <path d="M0,0 L10,5 L0,10 z" />
                </marker>
              </defs>
              ${drawn.edges.map((e) => html`<${Edge} edge=${e} live=${rates.pipes[e.pipe]} />`)}
              ${systems.systems.map((s) => html`<${SystemNode} system=${s} at=${drawn.node(`s:${s.id}`)} />`)}
              ${systems.pipes.map((p) => html`<${PipeNode} pipe=${p} at=${drawn.node(`p:${p.name}`)} live=${rates.pipes[p.name]} summary=${data.pipes[p.name]} />`)}
            </svg>
          </div>
          <${PipeTable} systems=${systems} data=${data} />
          <p class="fine legend">
            <span class="key ok"></span> running <span class="key warn"></span> degraded <span class="key bad"></span> failed <span class="key off"></span> stopped ·
            dashed: to a dead letter · dotted: an enrichment lookup · lag: events the source has not read yet
          </p>
        `}
    </section>
  `;
}
