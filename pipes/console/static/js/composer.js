// The composer: a pipe as a form beside its YAML. The YAML is the source of truth: the form is drawn
// from it, and each input edits it in place (comments and layout kept, by the `yaml` library's
// document API). The server checks it as `pipes validate` would (errors shown at their field), tries
// the filter and renders the transform on a sample event, and saves it into the daemon's pipe folder
// when the daemon runs with --ui-write (else the YAML is offered to download).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import * as YAML from "yaml";
import { getJSON, postJSON } from "./api.js";
import { html } from "./html.js";
import { bodyKey, sampleRecord } from "./samples.js";
import { ConnectorForm } from "./schema-form.js";
import { editYaml } from "./yaml-edit.js";

const NEW_PIPE = `# A pipe: source -> filter -> transform -> target (docs/pipe-format.md)
name: my-pipe
description: ""
source:
  type: generator
  count: 1000
target:
  type: file
  path: out/my-pipe.jsonl
`;

// Where a key the form adds goes among the pipe's keys: in the order of docs/pipe-format.md.
const ORDER = ["name", "description", "state", "source", "filter", "enrichment", "transform", "target",
  "batch", "retry", "dead_letter", "concurrency", "max_in_flight", "checkpoint_interval", "stall_timeout", "log_level"];

function placeNewKey(doc, key) {
  const items = doc.contents && doc.contents.items;
  const rank = ORDER.indexOf(key);
  if (!items || rank < 0) return;
  const at = items.findIndex((pair) => String(pair.key && pair.key.value !== undefined ? pair.key.value : pair.key) === key);
  if (at !== items.length - 1) return; // it was there already: leave the author's order alone
  const [pair] = items.splice(at, 1);
  const before = items.findIndex((p) => ORDER.indexOf(String(p.key && p.key.value !== undefined ? p.key.value : p.key)) > rank);
  items.splice(before < 0 ? items.length : before, 0, pair);
}

function useDebounced(value, ms) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

function parse(text) {
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) return { doc, error: doc.errors[0].message, value: null };
  const value = doc.toJS() || {};
  return { doc, error: null, value: typeof value === "object" && !Array.isArray(value) ? value : {} };
}

function FieldErrors({ errors, path }) {
  return errors.filter((e) => e.path === path || e.path.startsWith(`${path}.`) || e.path.startsWith(`${path}[`))
    .map((e) => html`<p class="field-error" data-error-for=${e.path}>${e.path !== path ? `${e.path}: ` : ""}${e.message}</p>`);
}

// The filter as JSON (or YAML), tried on the sample event as it is typed.
function FilterEditor({ filter, sample, onSet, errors }) {
  const [text, setText] = useState(filter === undefined ? "" : JSON.stringify(filter, null, 2));
  const mine = useRef(JSON.stringify(filter));
  const [problem, setProblem] = useState("");
  const [result, setResult] = useState(null);
  useEffect(() => {
    if (JSON.stringify(filter) !== mine.current) {
      mine.current = JSON.stringify(filter);
      setText(filter === undefined ? "" : JSON.stringify(filter, null, 2));
    }
  }, [JSON.stringify(filter)]);
  const asked = useDebounced(JSON.stringify([filter, sample]), 200);
  useEffect(() => {
    if (filter === undefined || sample === null) {
      setResult(null);
      return;
    }
    postJSON("api/filter", { filter, event: sample }).then(setResult, (exc) => setResult({ error: exc.message }));
  }, [asked]);
  const typed = (value) => {
    setText(value);
    if (value.trim() === "") {
      setProblem("");
      mine.current = JSON.stringify(undefined);
      onSet(["filter"], undefined);
      return;
    }
    let parsed;
    try {
      parsed = YAML.parse(value);
    } catch (exc) {
      setProblem(`Not JSON or YAML yet: ${exc.message.split("\n")[0]}`);
      return;
    }
    setProblem("");
    const patterns = Array.isArray(parsed) || (parsed && (parsed.patterns || parsed.jmespath)) ? parsed : [parsed];
    mine.current = JSON.stringify(patterns);
    onSet(["filter"], patterns);
  };
  let verdict = null;
  if (result && result.error) verdict = html`<p class="verdict invalid" data-verdict="error">${result.error}</p>`;
  else if (result && result.match === true) verdict = html`<p class="verdict match" data-verdict="match">✓ The sample event matches: it goes on.</p>`;
  else if (result && result.match === false) verdict = html`<p class="verdict nomatch" data-verdict="no-match">✗ No match: the sample event would be filtered out.</p>`;
  return html`
    <div class="editor" data-editor="filter">
      <textarea data-field="filter" rows="6" spellcheck="false" placeholder='[{"body": {"detail-type": ["OrderPlaced"]}}]' value=${text} onInput=${(e) => typed(e.target.value)}></textarea>
      ${problem ? html`<p class="fine">${problem}</p>` : null}
      ${verdict}
      <${FieldErrors} errors=${errors} path="filter" />
    </div>
  `;
}

function TransformEditor({ transform, sample, names, onSet, errors }) {
  const mode = transform && transform.jmespath !== undefined ? "jmespath" : "template";
  const text = transform ? transform[mode] ?? "" : "";
  const [result, setResult] = useState(null);
  const asked = useDebounced(JSON.stringify([transform, sample, names]), 200);
  useEffect(() => {
    if (!transform || sample === null) {
      setResult(null);
      return;
    }
    postJSON("api/transform", { transform, event: sample, names }).then(setResult, (exc) => setResult({ error: exc.message }));
  }, [asked]);
  const set = (m, t) => onSet(["transform"], t === "" ? undefined : { [m]: t });
  let output = null;
  if (result && result.error) output = html`<p class="verdict invalid" data-verdict="error">${result.error}</p>`;
  else if (result && "output" in result)
    output = html`<div class="output"><span class="fine">What the target receives for the sample event:</span><pre data-output="transform">${result.text ? result.output : JSON.stringify(result.output, null, 2)}</pre></div>`;
  return html`
    <div class="editor" data-editor="transform">
      <div class="row">
        <label><input type="radio" name="transform-mode" checked=${mode === "template"} onChange=${() => set("template", text)} /> input template</label>
        <label><input type="radio" name="transform-mode" checked=${mode === "jmespath"} onChange=${() => set("jmespath", text)} /> JMESPath</label>
      </div>
      <textarea data-field="transform" rows="4" spellcheck="false"
        placeholder=${mode === "template" ? '{"order": <$.body.detail.order_id>, "total": <$.body.detail.total>}' : "{order: body.detail.order_id}"}
        value=${text} onInput=${(e) => set(mode, e.target.value)}></textarea>
      ${output}
      <${FieldErrors} errors=${errors} path="transform" />
    </div>
  `;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/yaml" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = `${name || "pipe"}.yaml`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function ComposerPage({ edit, settings }) {
  const [text, setText] = useState(edit ? null : NEW_PIPE);
  const [loadError, setLoadError] = useState("");
  const [inFile, setInFile] = useState(1);
  const [connectors, setConnectors] = useState([]);
  const [checked, setChecked] = useState(null);
  const [sampleText, setSampleText] = useState(null);
  const [saving, setSaving] = useState(false);
  const [outcome, setOutcome] = useState(null);
  const lastGood = useRef({});

  useEffect(() => {
    getJSON("api/connectors").then((found) => setConnectors(found.connectors), (exc) => setLoadError(exc.message));
    if (edit)
      getJSON(`../pipes/${encodeURIComponent(edit)}/definition`).then(
        (found) => {
          if (found.yaml === null) setLoadError(found.error || "cannot read the file");
          setText(found.yaml ?? "");
          setInFile(found.pipes_in_file || 1);
        },
        (exc) => setLoadError(exc.message),
      );
  }, []);

  const parsed = useMemo(() => (text === null ? null : parse(text)), [text]);
  if (parsed && !parsed.error) lastGood.current = parsed.value;
  const value = lastGood.current;
  const single = value.pipes ? null : value; // the form edits a file of one pipe
  const source = single ? single.source : null;

  // The sample event follows the source's shape until someone edits it.
  const sampleEdited = useRef(false);
  const suggested = JSON.stringify(sampleRecord(source), null, 2);
  useEffect(() => {
    if (!sampleEdited.current) setSampleText(suggested);
  }, [suggested]);
  let sample = null;
  let sampleProblem = "";
  try {
    sample = sampleText ? JSON.parse(sampleText) : null;
  } catch (exc) {
    sampleProblem = `The sample event is not JSON: ${exc.message}`;
  }

  const checkedText = useDebounced(text, 400);
  useEffect(() => {
    if (checkedText === null) return;
    postJSON("api/validate", { yaml: checkedText, edit }).then(setChecked, (exc) =>
      setChecked({ ok: false, errors: [{ path: "", line: 1, column: 1, message: exc.message, text: exc.message }], variables: [] }),
    );
  }, [checkedText]);

  if (loadError && text === null) return html`<p class="error">${loadError}</p>`;
  if (text === null) return html`<p class="loading">Reading ${edit}…</p>`;

  const errors = (checked && checked.errors) || [];
  const change = (mutate) => {
    // What the form did not touch keeps its text as written (yaml-edit.js).
    const next = editYaml(text, mutate, { flowCollectionPadding: false });
    if (next === null) return; // the YAML must read before the form can edit it
    setText(next);
    setOutcome(null);
  };
  const onSet = (path, v, opts = {}) =>
    change((doc) => {
      if (v === undefined) {
        doc.deleteIn(path);
        return;
      }
      const isNew = !doc.has(path[0]);
      let next = v;
      if (opts.parse) {
        try {
          next = YAML.parse(v);
        } catch {
          next = v;
        }
      }
      if (next !== null && typeof next === "object") {
        const node = doc.createNode(next);
        if (opts.flow) node.flow = true;
        // Lists of plain values on one line ([OrderPlaced], [">", 100]), as people write patterns.
        YAML.visit(node, {
          Seq(_, seq) {
            if (seq.items.every((item) => YAML.isScalar(item))) seq.flow = true;
          },
        });
        doc.setIn(path, node);
      } else doc.setIn(path, next);
      if (isNew) placeNewKey(doc, path[0]);
    });
  const onType = (key) => (type) =>
    change((doc) => {
      if (!type) {
        doc.deleteIn([key]);
        return;
      }
      const old = doc.getIn([key]);
      const keep = {};
      const connector = connectors.find((c) => c.name === type);
      const role = key === "source" ? "source" : key === "enrichment" ? "enricher" : "target";
      const known = connector ? new Set(connector.forms[role].map((f) => f.name)) : new Set();
      const before = old && old.toJSON ? old.toJSON() : {};
      for (const [k, v] of Object.entries(before || {})) if (known.has(k)) keep[k] = v;
      const isNew = !doc.has(key);
      doc.setIn([key], doc.createNode({ type, ...keep }));
      if (isNew) placeNewKey(doc, key);
    });
  const name = single && typeof single.name === "string" ? single.name : "";
  const names = { pipe: name, source: source && source.type, target: single && single.target && single.target.type };
  const key = bodyKey(source);
  const canWrite = settings.ui_write && inFile <= 1;
  const save = async () => {
    setSaving(true);
    setOutcome(null);
    try {
      if (canWrite) {
        const done = await postJSON("api/save", { yaml: text, edit });
        setOutcome({ ok: true, done });
      } else {
        const found = await postJSON("api/validate", { yaml: text, edit });
        setChecked(found);
        download(name, text);
        setOutcome({ ok: found.ok, downloaded: true });
      }
    } catch (exc) {
      if (exc.body && exc.body.errors) setChecked(exc.body);
      setOutcome({ ok: false, error: exc.message });
    }
    setSaving(false);
  };
  const variables = (checked && checked.variables) || [];
  const located = errors.map((e) => html`<li data-line=${e.line}><code>${e.line}:${e.column}</code> ${e.path ? html`<strong>${e.path}</strong>: ` : null}${e.message}</li>`);
  return html`
    <section class="composer" data-composer=${edit || "new"}>
      <div class="heading">
        <h1>${edit ? `Edit ${edit}` : "New pipe"}</h1>
        <span class="spacer"></span>
        <button class="primary" data-action="save" onClick=${save} disabled=${saving || (parsed && parsed.error)}>
          ${saving ? "Saving…" : canWrite ? (edit ? "Save and reload" : "Save and run") : "Download YAML"}
        </button>
      </div>
      ${!settings.ui_write
        ? html`<p class="note" data-note="read-only">This daemon was started without <code>--ui-write</code>: the console writes no file. Download the YAML and put it among the daemon's pipe files${settings.config_dir ? html` (<code>${settings.config_dir}</code>)` : ""}, then reload.</p>`
        : inFile > 1
          ? html`<p class="note">This file holds ${inFile} pipes: the composer shows it, but saves only files of one pipe. Edit it by hand.</p>`
          : null}
      ${outcome && outcome.ok && outcome.done
        ? html`<p class="success" data-outcome="saved">Saved <code>${outcome.done.file}</code>; the daemon reloaded it.
            ${outcome.done.pipes.map((p) => html` <a href=${`#/pipes/${encodeURIComponent(p)}`}>Open ${p}</a>`)}</p>`
        : null}
      ${outcome && outcome.downloaded ? html`<p class=${outcome.ok ? "success" : "note"} data-outcome="downloaded">Downloaded ${name || "pipe"}.yaml${outcome.ok ? "." : ", with the errors below."}</p>` : null}
      ${outcome && outcome.error ? html`<p class="error" data-outcome="error">${outcome.error}</p>` : null}
      <div class="split">
        <div class="form">
          ${single
            ? html`
              <section class="card">
                <h2>Pipe</h2>
                <div class="field"><label><span class="label">name<span class="req">*</span></span>
                  <input data-field="name" value=${name} onInput=${(e) => onSet(["name"], e.target.value || undefined)} /></label>
                  <${FieldErrors} errors=${errors} path="name" /></div>
                <div class="field"><label><span class="label">description</span>
                  <input data-field="description" value=${single.description || ""} onInput=${(e) => onSet(["description"], e.target.value)} /></label></div>
              </section>
              <section class="card"><h2>Source</h2>
                <${ConnectorForm} role="source" key_="source" connectors=${connectors} value=${single.source} onSet=${onSet} onType=${onType("source")} errors=${errors} pipeName=${name} />
              </section>
              <section class="card"><h2>Sample event</h2>
                <p class="fine">A record as the source hands it over; the filter and the transform below are tried on it as you type.</p>
                <textarea data-field="sample" rows="8" spellcheck="false" value=${sampleText || ""} onInput=${(e) => {
                  sampleEdited.current = true;
                  setSampleText(e.target.value);
                }}></textarea>
                ${sampleProblem ? html`<p class="field-error">${sampleProblem}</p>` : null}
              </section>
              <section class="card"><h2>Filter</h2>
                <p class="fine">EventBridge event patterns (JSON), OR between them; empty: every event goes on. For example <code>{"${key}": {"detail-type": ["OrderPlaced"]}}</code>.</p>
                <${FilterEditor} filter=${single.filter} sample=${sample} onSet=${onSet} errors=${errors} />
              </section>
              <section class="card"><h2>Transform</h2>
                <p class="fine">An input template (<code>${`<$.${key}.detail.order_id>`}</code> places a value) or a JMESPath projection; empty: the target gets the event as it came.</p>
                <${TransformEditor} transform=${single.transform} sample=${sample} names=${names} onSet=${onSet} errors=${errors} />
              </section>
              <section class="card"><h2>Target</h2>
                <${ConnectorForm} role="target" key_="target" connectors=${connectors} value=${single.target} onSet=${onSet} onType=${onType("target")} errors=${errors} pipeName=${name} />
              </section>
              <section class="card"><h2>Dead letter</h2>
                <p class="fine">Where events that failed for good go (optional; without one, nothing is dropped: the partition waits).</p>
                <${ConnectorForm} role="target" key_="dead_letter" connectors=${connectors} value=${single.dead_letter} onSet=${onSet} onType=${onType("dead_letter")} errors=${errors} pipeName=${name} />
              </section>`
            : html`<p class="note">This file holds a list of pipes (<code>pipes:</code>): edit it in the YAML.</p>`}
        </div>
        <div class="yaml-side">
          <section class="card">
            <h2>YAML <span class="fine">the file as it will be saved</span></h2>
            <textarea class="yaml" data-field="yaml" spellcheck="false" rows=${Math.max(18, text.split("\n").length + 2)}
              value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
            ${parsed && parsed.error ? html`<p class="field-error" data-error-for="yaml">YAML: ${parsed.error}</p>` : null}
            ${checked
              ? checked.ok
                ? html`<p class="verdict match" data-check="ok">✓ Valid: ${checked.pipes.join(", ")}${checked.file ? html` → <code>${checked.file}</code>` : null}</p>`
                : html`<div class="errors" data-check="errors"><p><strong>${errors.length} error${errors.length === 1 ? "" : "s"}</strong> (line:column)</p><ul>${located}</ul></div>`
              : html`<p class="fine">Checking…</p>`}
            ${variables.length
              ? html`<div class="variables" data-variables>
                  <p><strong>Environment variables</strong> the daemon must have:</p>
                  <ul>${variables.map((v) => html`<li data-variable=${v.name}><code>${v.name}</code> ${v.secret ? html`<span class="chip warn">secret</span>` : null}
                    <span class="fine">(${v.paths.join(", ")})</span>
                    ${v.set ? html`<span class="chip ok">set</span>` : v.has_default ? html`<span class="chip off">default</span>` : html`<span class="chip bad">not set</span>`}</li>`)}</ul>
                </div>`
              : null}
          </section>
        </div>
      </div>
    </section>
  `;
}
