// A connector's options as a form, drawn from the field list the server makes of the connector's
// JSON schema (pipes/console/forms.py), so a third-party connector gets a form without code here.
// Each input writes into the YAML through `onSet(path, value)`; `undefined` removes the key.
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

const REFERENCE = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}$/;

function dotted(path) {
  return path.reduce((out, part) => (typeof part === "number" ? `${out}[${part}]` : out ? `${out}.${part}` : part), "");
}

// What typed text becomes in YAML for a field of this kind: numbers where they parse as such,
// else the text as typed (so that the server says what is wrong with it, at this field).
export function fromText(kind, text) {
  if (text === "") return undefined;
  const trimmed = text.trim();
  if (kind === "integer" && /^-?\d+$/.test(trimmed)) return Number(trimmed);
  if ((kind === "number" || kind === "text-or-number") && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(trimmed)) return Number(trimmed);
  return text;
}

function shown(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// A text input that keeps what is being typed, and follows the YAML when it changes elsewhere.
function TextInput({ value, onText, ...rest }) {
  const [text, setText] = useState(shown(value));
  const focused = useRef(false);
  useEffect(() => {
    if (!focused.current) setText(shown(value));
  }, [shown(value)]);
  return html`<input
    ...${rest}
    value=${text}
    onFocus=${() => (focused.current = true)}
    onBlur=${() => {
      focused.current = false;
      setText(shown(value));
    }}
    onInput=${(e) => {
      setText(e.target.value);
      onText(e.target.value);
    }}
  />`;
}

// The variable a secret is stored in: PIPE_ROLE_OPTION, and _2, _3... for the later items of a list.
function envName(path, pipeName) {
  return [pipeName || "pipe", ...path.map((p) => (typeof p === "number" ? (p > 0 ? String(p + 1) : null) : p))]
    .filter((p) => p !== null)
    .join("_")
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, "_");
}

// A secret: never written as typed. What is typed stays in this page; the YAML gets ${VAR}, and the
// page lists VAR among the variables the daemon's environment must hold.
function SecretInput({ field, value, path, onSet, pipeName }) {
  const written = typeof value === "string" ? value.match(REFERENCE) : null;
  const [variable, setVariable] = useState(written ? written[1] : envName(path, pipeName));
  const [typed, setTyped] = useState("");
  const plain = value !== undefined && value !== null && value !== "" && !written;
  const use = (name, anything) => onSet(path, anything && name ? `\${${name}}` : undefined);
  return html`
    <div class="secret">
      <input
        type="password"
        autocomplete="new-password"
        data-field=${dotted(path)}
        placeholder=${written ? `from $${written[1]}` : "typed here, never saved"}
        value=${typed}
        onInput=${(e) => {
          setTyped(e.target.value);
          use(variable, e.target.value !== "" || written);
        }}
      />
      <label class="fine">stored as <code>$\{</code><input
        class="var"
        data-variable-for=${dotted(path)}
        value=${variable}
        onInput=${(e) => {
          const name = e.target.value.replace(/[^A-Za-z0-9_]/g, "_");
          setVariable(name);
          if (typed !== "" || written) use(name, true);
        }}
      /><code>}</code></label>
      ${written || plain
        ? html`<button class="link-button" data-clear=${dotted(path)} onClick=${(e) => {
            e.preventDefault();
            setTyped("");
            onSet(path, undefined);
          }}>remove this option</button>`
        : null}
      ${plain ? html`<p class="field-error">This secret is written in plain text: type it above to store it as a variable instead.</p>` : null}
    </div>
  `;
}

// A list of secrets (webhook tokens, signing secrets: several while rotating): one secret input per
// item, each written as its own ${VAR}. Rows keep their own id so removing one leaves the others' state.
function SecretListInput({ field, value, path, onSet, pipeName }) {
  const items = Array.isArray(value) ? value : value === undefined || value === null || value === "" ? [] : [value];
  const ids = useRef([]);
  const next = useRef(0);
  const [adding, setAdding] = useState(false);
  const rows = Math.max(1, items.length + (adding ? 1 : 0));
  while (ids.current.length < rows) ids.current.push(next.current++);
  ids.current.length = rows;
  const setItem = (index, v) => {
    const list = items.slice();
    if (v === undefined) {
      list.splice(index, 1);
      ids.current.splice(index, 1);
    } else list[index] = v;
    if (index >= items.length) setAdding(false);
    onSet(path, list.length ? list : undefined, { flow: true });
  };
  return html`
    <div class="secrets" data-secrets=${dotted(path)}>
      ${ids.current.map((id, index) => html`<${SecretInput} key=${id} field=${field} value=${items[index]} path=${[...path, index]}
        onSet=${(_, v) => setItem(index, v)} pipeName=${pipeName} />`)}
      ${items.length && !adding
        ? html`<button class="link-button" data-add=${dotted(path)} onClick=${(e) => {
            e.preventDefault();
            setAdding(true);
          }}>add another</button>`
        : null}
    </div>
  `;
}

function Input({ field, value, path, onSet, pipeName }) {
  const key = dotted(path);
  if (field.kind === "secret") return html`<${SecretInput} field=${field} value=${value} path=${path} onSet=${onSet} pipeName=${pipeName} />`;
  if (field.kind === "secrets") return html`<${SecretListInput} field=${field} value=${value} path=${path} onSet=${onSet} pipeName=${pipeName} />`;
  if (field.kind === "boolean") {
    const current = value === true ? "true" : value === false ? "false" : "";
    return html`<select data-field=${key} value=${current} onChange=${(e) => onSet(path, e.target.value === "" ? undefined : e.target.value === "true")}>
      <option value="">default (${field.default === undefined ? "none" : String(field.default)})</option>
      <option value="true">true</option>
      <option value="false">false</option>
    </select>`;
  }
  if (field.kind === "enum") {
    const current = value === undefined || value === null ? "" : String(value);
    return html`<select data-field=${key} value=${current} onChange=${(e) => {
      const chosen = field.choices.find((c) => String(c) === e.target.value);
      onSet(path, e.target.value === "" ? undefined : chosen);
    }}>
      <option value="">${field.default !== undefined && field.default !== null ? `default (${field.default})` : "—"}</option>
      ${field.choices.map((c) => html`<option value=${String(c)}>${String(c)}</option>`)}
    </select>`;
  }
  if (field.kind === "list") {
    return html`<${TextInput} data-field=${key} value=${value} placeholder="comma-separated"
      onText=${(text) => {
        const items = text.split(",").map((s) => s.trim()).filter(Boolean);
        onSet(path, items.length ? items : undefined, { flow: true });
      }} />`;
  }
  if (field.kind === "yaml") {
    return html`<${TextInput} data-field=${key} value=${value} placeholder="YAML or JSON"
      onText=${(text) => onSet(path, text.trim() === "" ? undefined : text, { parse: true })} />`;
  }
  const kind = field.kind === "text" && field.hint ? "text-or-number" : field.kind;
  const placeholder = field.default !== undefined && field.default !== null ? `default: ${field.default}` : field.hint || "";
  return html`<${TextInput} data-field=${key} value=${value} placeholder=${placeholder}
    inputmode=${field.kind === "integer" || field.kind === "number" ? "decimal" : "text"}
    onText=${(text) => onSet(path, fromText(kind, text))} />`;
}

function Field({ field, value, path, onSet, errors, pipeName }) {
  const key = dotted(path);
  const mine = errors.filter((e) => e.path === key || e.path.startsWith(`${key}[`) || (field.kind !== "group" && e.path.startsWith(`${key}.`)));
  if (field.kind === "group") {
    return html`
      <fieldset class="group" data-group=${key}>
        <legend>${field.title}</legend>
        <p class="fine">${field.description}</p>
        <${Fields} fields=${field.fields} value=${value || {}} path=${path} onSet=${onSet} errors=${errors} pipeName=${pipeName} />
        ${mine.filter((e) => e.path === key).map((e) => html`<p class="field-error" data-error-for=${key}>${e.message}</p>`)}
      </fieldset>
    `;
  }
  return html`
    <div class=${`field${mine.length ? " invalid" : ""}`}>
      <label title=${field.description}>
        <span class="label">${field.name}${field.required ? html`<span class="req" title="required">*</span>` : null}</span>
        <${Input} field=${field} value=${value} path=${path} onSet=${onSet} pipeName=${pipeName} />
      </label>
      <p class="help">${field.description}</p>
      ${mine.map((e) => html`<p class="field-error" data-error-for=${key}>${e.message}</p>`)}
    </div>
  `;
}

function Fields({ fields, value, path, onSet, errors, pipeName }) {
  const present = (f) => value[f.name] !== undefined;
  const invalid = (f) => errors.some((e) => e.path.startsWith(dotted([...path, f.name])));
  const basic = fields.filter((f) => !f.advanced || present(f) || invalid(f));
  const more = fields.filter((f) => !basic.includes(f));
  const one = (f) => html`<${Field} field=${f} value=${value[f.name]} path=${[...path, f.name]} onSet=${onSet} errors=${errors} pipeName=${pipeName} />`;
  return html`
    ${basic.map(one)}
    ${more.length
      ? html`<details class="more" data-more=${dotted(path)}>
          <summary>More options (${more.length})</summary>
          ${more.map(one)}
        </details>`
      : null}
  `;
}

export function ConnectorForm({ role, key_, connectors, value, onSet, onType, errors, pipeName }) {
  const usable = connectors.filter((c) => c.roles.includes(role));
  const type = value && value.type;
  const chosen = usable.find((c) => c.name === type);
  const fields = chosen ? chosen.forms[role] : [];
  const path = [key_];
  const typeErrors = errors.filter((e) => e.path === key_ || e.path === `${key_}.type`);
  return html`
    <div class="connector" data-connector=${key_}>
      <label class="type">
        <span class="label">type</span>
        <select data-field=${`${key_}.type`} value=${type || ""} onChange=${(e) => onType(e.target.value)}>
          <option value="">choose a connector…</option>
          ${usable.map((c) => html`<option value=${c.name}>${c.name}</option>`)}
          ${type && !chosen ? html`<option value=${type}>${type}</option>` : null}
        </select>
      </label>
      ${chosen ? html`<p class="help">${chosen.description}</p>` : null}
      ${typeErrors.map((e) => html`<p class="field-error" data-error-for=${e.path}>${e.message}</p>`)}
      ${chosen
        ? html`<${Fields} fields=${fields} value=${value || {}} path=${path} onSet=${onSet} errors=${errors} pipeName=${pipeName} />`
        : type
          ? html`<p class="fine">${type} is not an installed connector with a ${role}: edit its options in the YAML.</p>`
          : null}
    </div>
  `;
}
