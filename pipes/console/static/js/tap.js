// A live tap of one stage of a pipe: GET /pipes/NAME/tap?stage=... as server-sent events
// (`attached`, then `tap` per line, `dropped`, `end`). Shown only when the daemon's API has the
// endpoint (its OpenAPI document lists it); a 404 at start hides it as well.
import { useEffect, useRef, useState } from "preact/hooks";
import { hasEndpoint } from "./api.js";
import { html } from "./html.js";
import { openEvents } from "./sse.js";

const STAGES = ["source", "filter", "enrichment", "transform", "target", "dead_letter"];
const KEEP = 100;

export function TapPanel({ name }) {
  const [available, setAvailable] = useState(null);
  const [stage, setStage] = useState("source");
  const [running, setRunning] = useState(false);
  const [lines, setLines] = useState([]);
  const [note, setNote] = useState("");
  const abort = useRef(null);

  useEffect(() => {
    hasEndpoint("/pipes/{name}/tap").then(setAvailable);
    return () => abort.current && abort.current.abort();
  }, []);

  const stop = () => {
    if (abort.current) abort.current.abort();
    abort.current = null;
    setRunning(false);
  };

  const start = async () => {
    stop();
    const controller = new AbortController();
    abort.current = controller;
    setLines([]);
    setNote("");
    setRunning(true);
    const url = `../pipes/${encodeURIComponent(name)}/tap?stage=${encodeURIComponent(stage)}&rate=50`;
    try {
      await openEvents(url, {
        signal: controller.signal,
        onStatus: (status) => {
          if (status === 404) setAvailable(false);
          else if (status !== 200) setNote(`The tap was refused (${status}).`);
        },
        onEvent: (kind, data) => {
          if (kind === "tap") setLines((old) => [data, ...old].slice(0, KEEP));
          else if (kind === "dropped") setNote(`${data.dropped} lines dropped (the view did not keep up).`);
          else if (kind === "end") setNote(`The tap ended: ${data.reason || "done"}.`);
          else if (kind === "attached") setNote(`Watching ${data.stages.join(", ")}…`);
        },
      });
    } catch (exc) {
      if (exc.name !== "AbortError") setNote(`The tap stopped: ${exc.message}`);
    }
    if (abort.current === controller) {
      abort.current = null;
      setRunning(false);
    }
  };

  if (!available) return null;
  return html`
    <section class="card tap" data-panel="tap">
      <h2>Live tap</h2>
      <p class="fine">Copies of what passes one stage, as it happens (at most 50 lines a second; the pipe is never held up).</p>
      <div class="row">
        <label>Stage <select value=${stage} onChange=${(e) => setStage(e.target.value)} disabled=${running}>
          ${STAGES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
        ${running ? html`<button onClick=${stop}>Stop tap</button>` : html`<button onClick=${start}>Start tap</button>`}
        <span class="fine">${note}</span>
      </div>
      <ol class="tap-lines">
        ${lines.map((line) => html`
          <li>
            <span class="when">${(line.time || "").slice(11, 23)}</span>
            <span class=${`chip ${line.outcome === "failed" || line.outcome === "dead_lettered" ? "bad" : "ok"}`}>${line.outcome}</span>
            <span class="where">${line.partition}@${line.position}</span>
            <code>${JSON.stringify(line.payload ?? line.record ?? line.dead_letter ?? line.error)}</code>
          </li>
        `)}
      </ol>
    </section>
  `;
}
