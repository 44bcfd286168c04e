// Editing a pipe file from the form without rewriting what the form did not touch.
//
// The `yaml` library edits a document in place and keeps its comments, but printing it again
// re-lays every part of the file: a long flow mapping is broken over lines, a comment after
// `tests:` moves to the next line. A person's hand-written file would change in places they never
// edited. So the file is printed again only where a top-level entry (name, source, filter, tests...)
// changed: every entry whose value is the same as before keeps its text exactly as written,
// comments before it included.
import * as YAML from "yaml";

const BLANK_OR_COMMENT = /^[ \t]*(#.*)?$/;

// Where each top-level entry's text begins (with the comment lines just above it) and ends; the
// file's first and last comment lines apart (`head`, `tail`), so that they are never written twice.
function segments(text, doc) {
  const items = YAML.isMap(doc.contents) ? doc.contents.items : null;
  if (!items || !items.length || items.some((pair) => !pair.key || !pair.key.range)) return null;
  const lineStart = (at) => text.lastIndexOf("\n", at - 1) + 1;
  const valueEnd = (pair) => (pair.value && pair.value.range ? pair.value.range[1] : pair.key.range[1]);
  // Back from `start` over whole blank or comment lines, never before `floor`.
  const upOverComments = (start, floor) => {
    while (start > floor) {
      const previous = lineStart(start - 1);
      if (previous < floor || !BLANK_OR_COMMENT.test(text.slice(previous, start - 1))) break;
      start = previous;
    }
    return start;
  };
  const starts = items.map((pair, index) =>
    upOverComments(lineStart(pair.key.range[0]), index > 0 ? valueEnd(items[index - 1]) : 0),
  );
  const lastEnd = valueEnd(items[items.length - 1]);
  const afterLast = text.indexOf("\n", Math.max(lastEnd - 1, 0));
  let end = afterLast < 0 ? text.length : afterLast + 1;
  const body = text.endsWith("\n") ? text : `${text}\n`;
  end = Math.min(upOverComments(body.length, end), text.length);
  return {
    head: text.slice(0, starts[0]),
    tail: text.slice(end),
    entries: items.map((pair, index) => ({
      key: YAML.isScalar(pair.key) ? String(pair.key.value) : null,
      value: JSON.stringify(pair.value && pair.value.toJSON ? pair.value.toJSON() : pair.value ?? null),
      text: text.slice(starts[index], index + 1 < starts.length ? starts[index + 1] : end),
    })),
  };
}

function withNewline(part) {
  return part.endsWith("\n") ? part : `${part}\n`;
}

// `text` changed by `mutate(doc)`: the entries `mutate` left as they were keep their text as written.
// Returns null when the text does not read as YAML (the form cannot edit it then).
export function editYaml(text, mutate, options) {
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) return null;
  mutate(doc);
  const printed = doc.toString(options);
  const before = segments(text, YAML.parseDocument(text));
  const after = segments(printed, YAML.parseDocument(printed));
  if (!before || !after) return printed;
  const written = new Map(before.entries.filter((e) => e.key !== null).map((e) => [e.key, e]));
  const parts = after.entries.map((entry) => {
    const old = entry.key !== null ? written.get(entry.key) : undefined;
    return old && old.value === entry.value ? old.text : entry.text;
  });
  const body = parts.map((part, index) => (index + 1 < parts.length ? withNewline(part) : part)).join("");
  const kept = before.head + (before.tail ? withNewline(body) : body) + before.tail;
  // Whatever the splice did, the result must mean what the library printed; else take the print.
  let same = false;
  try {
    same = JSON.stringify(YAML.parse(kept) ?? null) === JSON.stringify(doc.toJS() ?? null);
  } catch {
    same = false;
  }
  return same ? kept : printed;
}
