// The console's shell: header, navigation, and a router over the location's hash
// (#/map, #/pipes/NAME, #/compose, #/compose/NAME), so every view has a link.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { getJSON, postJSON } from "./api.js";
import { ComposerPage } from "./composer.js";
import { html } from "./html.js";
import { MapPage } from "./map.js";
import { PipePage } from "./pipe.js";

function route() {
  const parts = (window.location.hash.replace(/^#\/?/, "") || "map").split("/").map(decodeURIComponent);
  return parts;
}

function useRoute() {
  const [parts, setParts] = useState(route());
  useEffect(() => {
    const changed = () => setParts(route());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parts;
}

async function logout() {
  await postJSON("logout", {}).catch(() => null);
  window.location.reload();
}

function App() {
  const parts = useRoute();
  const [settings, setSettings] = useState(null);
  useEffect(() => {
    getJSON("api/settings").then(setSettings, () => setSettings({ ui_write: false, token_required: false }));
  }, []);
  let page;
  if (parts[0] === "pipes" && parts[1]) page = html`<${PipePage} key=${parts[1]} name=${parts[1]} />`;
  else if (parts[0] === "compose")
    page = settings && html`<${ComposerPage} key=${parts[1] || "new"} edit=${parts[1] || null} settings=${settings} />`;
  else page = html`<${MapPage} />`;
  const at = parts[0] === "compose" ? "compose" : parts[0] === "pipes" ? "pipes" : "map";
  return html`
    <header class="top">
      <a class="brand" href="#/map"><span class="logo">pipes</span> console</a>
      <nav>
        <a href="#/map" class=${at === "map" ? "here" : ""}>Map</a>
        <a href="#/compose" class=${at === "compose" && !parts[1] ? "here" : ""}>New pipe</a>
      </nav>
      <span class="spacer"></span>
      ${settings && settings.ui_write
        ? html`<span class="badge" title="pipes run --ui-write: Save writes pipe files">can write pipe files</span>`
        : html`<span class="badge muted" title="pipes run without --ui-write: Save offers the YAML to download">read-only files</span>`}
      ${settings && settings.token_required ? html`<button class="link" onClick=${logout}>Log out</button>` : null}
    </header>
    <main class="page">${page}</main>
  `;
}

const root = document.getElementById("app");
root.textContent = ""; // the "Loading" line the page shows until this script runs
render(html`<${App} />`, root);
