// Server-sent events over fetch (rather than EventSource) so that the answer's status is seen:
// a 404 means this daemon has no such endpoint, and the caller hides what depends on it.
export async function openEvents(url, { onEvent, onStatus, signal }) {
  const response = await fetch(url, {
    headers: { Accept: "text/event-stream" },
    credentials: "same-origin",
    signal,
  });
  onStatus(response.status, response);
  if (!response.ok || !response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: the server saying it is still there
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") kind = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) {
        let parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch {
          parsed = data.join("\n");
        }
        onEvent(kind, parsed);
      }
    }
  }
}
