// heliosfl ClusterGrid: one small cell per node, coloured by state (anywidget ES module).
// Plain ES module, no imports, no bundler. Synced traits: nodes, states, figures,
// round_number, title. Cells are built once per node list; a state change only swaps
// the class names of the cells that changed, so 1,000 nodes stay cheap.

const STATES = ["idle", "training", "done", "failed", "timed_out", "excluded"];
const LABELS = {
  idle: "idle",
  training: "training",
  done: "done",
  failed: "failed",
  timed_out: "timed out",
  excluded: "excluded",
};

function stateClass(state) {
  return "heliosfl-cell heliosfl-state-" + (LABELS[state] ? state : "idle");
}

function number(value, digits) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : null;
}

function tooltip(nodeId, state, f) {
  const lines = [nodeId + ": " + (LABELS[state] || state)];
  f = f || {};
  const loss = number(f.loss, 4);
  if (loss !== null) lines.push("loss " + loss);
  const acc = typeof f.accuracy === "number" ? number(100 * f.accuracy, 1) : null;
  if (acc !== null) lines.push("accuracy " + acc + "%");
  if (typeof f.samples === "number") lines.push("samples " + f.samples);
  if (typeof f.rounds === "number") lines.push("rounds " + f.rounds);
  if (typeof f.failures === "number" && f.failures > 0) lines.push("failures " + f.failures);
  const secs = number(f.duration, 2);
  if (secs !== null) lines.push("last training " + secs + " s");
  if (f.available === false) lines.push("unavailable");
  if (f.last_error) lines.push("error: " + f.last_error);
  return lines.join("\n");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function sameList(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function render({ model, el }) {
  const root = element("div", "heliosfl-cluster");
  const header = element("div", "heliosfl-cluster-header");
  const title = element("span", "heliosfl-cluster-title");
  const round = element("span", "heliosfl-cluster-round");
  header.append(title, round);

  const legend = element("div", "heliosfl-cluster-legend");
  const countOf = {};
  for (const state of STATES) {
    const item = element("span", "heliosfl-legend-item heliosfl-legend-" + state);
    const swatch = element("span", stateClass(state));
    swatch.setAttribute("aria-hidden", "true");
    const count = element("span", "heliosfl-legend-count", "0");
    item.append(swatch, element("span", "heliosfl-legend-label", LABELS[state]), count);
    legend.append(item);
    countOf[state] = count;
  }

  const grid = element("div", "heliosfl-cluster-grid");
  grid.setAttribute("role", "img");
  root.append(header, legend, grid);
  el.append(root);

  let nodes = [];
  let cells = [];
  let shown = [];
  let hovered = -1;

  function rebuild() {
    nodes = (model.get("nodes") || []).slice();
    const fragment = document.createDocumentFragment();
    cells = new Array(nodes.length);
    for (let i = 0; i < nodes.length; i++) {
      const cell = element("div", stateClass("idle"));
      cell.dataset.index = String(i);
      cells[i] = cell;
      fragment.append(cell);
    }
    shown = new Array(nodes.length).fill("idle");
    hovered = -1;
    grid.replaceChildren(fragment);
  }

  function describe(i) {
    const states = model.get("states") || [];
    const figures = model.get("figures") || [];
    cells[i].title = tooltip(nodes[i], states[i] || "idle", figures[i]);
  }

  function paintStates() {
    const current = model.get("nodes") || [];
    if (!sameList(current, nodes)) rebuild();
    const states = model.get("states") || [];
    const counts = {};
    for (const state of STATES) counts[state] = 0;
    for (let i = 0; i < cells.length; i++) {
      const state = LABELS[states[i]] ? states[i] : "idle";
      counts[state] += 1;
      if (shown[i] !== state) {
        cells[i].className = stateClass(state);
        shown[i] = state;
      }
    }
    const summary = [];
    for (const state of STATES) {
      countOf[state].textContent = String(counts[state]);
      if (counts[state] > 0) summary.push(counts[state] + " " + LABELS[state]);
    }
    grid.setAttribute("aria-label", cells.length + " nodes: " + summary.join(", "));
    if (hovered >= 0 && hovered < cells.length) describe(hovered);
  }

  function paintFigures() {
    if (hovered >= 0 && hovered < cells.length) describe(hovered);
  }

  function paintRound() {
    const n = model.get("round_number") || 0;
    round.textContent = n > 0 ? "round " + n : "no round yet";
  }

  function paintTitle() {
    title.textContent = model.get("title") || "";
  }

  function onHover(event) {
    const cell = event.target;
    if (!cell || cell.parentNode !== grid || cell.dataset.index === undefined) return;
    hovered = Number(cell.dataset.index);
    describe(hovered); // tooltips are built on hover only, never for all cells
  }

  const listeners = [
    ["change:nodes", paintStates],
    ["change:states", paintStates],
    ["change:figures", paintFigures],
    ["change:round_number", paintRound],
    ["change:title", paintTitle],
  ];
  for (const [name, callback] of listeners) model.on(name, callback);
  grid.addEventListener("mouseover", onHover);

  paintTitle();
  paintRound();
  paintStates();

  return () => {
    for (const [name, callback] of listeners) model.off(name, callback);
    grid.removeEventListener("mouseover", onHover);
  };
}

export default { render };
