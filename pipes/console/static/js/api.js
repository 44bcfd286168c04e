// Talking to the daemon: the admin API ("../pipes", "../systems"...) and the console's helpers ("api/...").
// Every request is same-origin with the session cookie; every POST is JSON, as the admin API requires.
import { useEffect, useRef, useState } from "preact/hooks";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function answer(response) {
  if (response.status === 401) {
    // The session ended (daemon restarted with another token, cookie cleared): back to the login form.
    window.location.reload();
    throw new ApiError(401, "logged out", null);
  }
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, body);
  }
  return body;
}

export async function getJSON(path) {
  return answer(await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" }));
}

export async function postJSON(path, body) {
  return answer(
    await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body ?? {}),
      credentials: "same-origin",
    }),
  );
}

// Calls `load` now and every `intervalMs` while mounted; returns {data, error, refresh}.
export function usePoll(load, intervalMs, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const latest = useRef(load);
  latest.current = load;
  const tick = useRef(0);
  useEffect(() => {
    let alive = true;
    let timer = null;
    const run = async () => {
      const mine = ++tick.current;
      try {
        const data = await latest.current();
        if (alive && mine === tick.current) setState({ data, error: null });
      } catch (error) {
        if (alive && mine === tick.current) setState((s) => ({ data: s.data, error }));
      }
      if (alive) timer = setTimeout(run, intervalMs);
    };
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, deps);
  return state;
}

// The admin API describes itself: whether this daemon offers an endpoint (tap, dead letters) at all.
let openapi = null;
export async function hasEndpoint(path) {
  if (openapi === null) openapi = getJSON("../openapi.json").catch(() => ({ paths: {} }));
  const doc = await openapi;
  return Boolean(doc.paths && doc.paths[path]);
}
