// stellarnet explorer: every panel follows the epoch slider. Runs once, when Bokeh has
// rendered the document (a DocumentReady CustomJS); its arguments are the page's models and
// `data`, the numbers precomputed in Python (stellarnet/viz/explorer_*.py). Values from the
// history arrive as float64 arrays and are shown with String(v): the shortest text that
// reads back as exactly the saved number.
const E = data;
const F = E.epochs.length;
const UNITS = E.units.length;
const BLOCKS = E.blocks.length;
const G = E.inputs.length;
const DEAD = "#bfbfbf";

function finite(v) { return typeof v === "number" && Number.isFinite(v); }
// not finite: as history.md prints it (a diverged row's nan, inf); no value at all: a dash
function text(v) {
  if (finite(v)) return String(v);
  if (v === undefined || v === null) return "—";
  return Number.isNaN(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}
// epoch 0 has no gradient (row 0 holds the initial weights): a dash, not nan
function gradText(v, frame) { return E.epochs[frame] === 0 && !finite(v) ? "—" : text(v); }
function json(v) { return finite(v) ? v : null; }
function at(rate, name, frame) { const c = rate.columns[name]; return c === undefined ? NaN : c[frame]; }
function gradName(name) { return name.startsWith("w^") ? "g^" + name.slice(2) : "gb^" + name.slice(2); }
function colour(value, scale) {
  const t = Math.max(-1, Math.min(1, value / scale));
  return E.palette[Math.round((t + 1) / 2 * (E.palette.length - 1))];
}
function visible(i) { return renderers[i].length === 0 || renderers[i][0].visible; }
function shownRates() { return E.rates.filter((_, i) => visible(i)); }
function netRate() {
  const i = E.rates.findIndex((r) => r.label === netSelect.value);
  return E.rates[i < 0 ? 0 : i];
}
function frameOf(epoch) {
  let best = 0;
  for (let f = 1; f < F; f++) if (Math.abs(E.epochs[f] - epoch) < Math.abs(E.epochs[best] - epoch)) best = f;
  return best;
}

function drawNetwork(frame) {
  const rate = netRate();
  const dead = (u) => u >= 0 && rate.inactive[frame * UNITS + u] === 1;
  const e = { ...edges.data };
  const n = e.name.length;
  e.width = new Array(n); e.color = new Array(n); e.alpha = new Array(n);
  e.value = new Array(n); e.gvalue = new Array(n); e.state = new Array(n);
  for (let j = 0; j < n; j++) {
    const v = at(rate, e.name[j], frame);
    const off = dead(e.from_unit[j]) || dead(e.to_unit[j]);
    e.width[j] = finite(v) ? 1 + 7 * Math.min(Math.abs(v) / rate.scale, 1) : 1;
    e.color[j] = off || !finite(v) ? DEAD : colour(v, rate.scale);
    e.alpha[j] = off ? 0.55 : 0.95;
    e.value[j] = text(v);
    e.gvalue[j] = gradText(at(rate, e.gname[j], frame), frame);
    e.state[j] = off ? "touches a dead unit (zero gradient this epoch)" : "";
  }
  edges.data = e;
  const d = { ...nodes.data };
  const m = d.name.length;
  d.fill = new Array(m); d.hatch = new Array(m); d.value = new Array(m); d.gvalue = new Array(m); d.state = new Array(m);
  for (let j = 0; j < m; j++) {
    const bias = d.name[j].startsWith("b^");
    const v = bias ? at(rate, d.name[j], frame) : NaN;
    const off = dead(d.unit[j]);
    d.fill[j] = !bias ? "#ffffff" : (off || !finite(v) ? DEAD : colour(v, rate.scale));
    d.hatch[j] = off ? "/" : " ";
    d.value[j] = bias ? text(v) : "input";
    d.gvalue[j] = bias ? gradText(at(rate, d.gname[j], frame), frame) : "";
    d.state[j] = off ? "dead: zero gradient in this epoch" : (bias ? "alive" : "");
  }
  nodes.data = d;
  const sel = paramSelect.value;
  const j = e.name.indexOf(sel);
  const k = d.name.indexOf(sel);
  highlight.data = j >= 0 ? { x0: [e.x0[j]], y0: [e.y0[j]], x1: [e.x1[j]], y1: [e.y1[j]] } : { x0: [], y0: [], x1: [], y1: [] };
  ring.data = k >= 0 ? { x: [d.x[k]], y: [d.y[k]] } : { x: [], y: [] };
  weightColors.low = -rate.scale;
  weightColors.high = rate.scale;
  netFig.title.text = `Network of ${rate.label} after epoch ${E.epochs[frame]}` + (rate.status ? ` (${rate.status})` : "");
}

function inside(xs, ys) {
  const [[x0, x1], [y0, y1]] = E.dataRange;
  for (let j = 0; j < xs.length; j++) if (xs[j] >= x0 && xs[j] <= x1 && ys[j] >= y0 && ys[j] <= y1) return true;
  return false;
}

function drawPanels(frame) {
  const epoch = E.epochs[frame];
  const off = [];
  cursor.location = epoch;
  E.rates.forEach((rate, i) => {
    const here = rate.present[frame] === 1;
    const loss = at(rate, "loss", frame);
    const ok = here && finite(loss) && (!E.lossLog || loss > 0);
    lossMarks[i].data = ok ? { x: [epoch], y: [loss] } : { x: [], y: [] };
    const xs = [], ys = [];  // index, not subarray(): Bokeh's typed arrays do not slice that way
    if (here) for (let g = 0; g < G; g++) {
      const p = rate.prediction[frame * G + g];
      if (!finite(p)) continue;
      if (E.swap) { xs.push(p); ys.push(E.inputs[g]); } else { xs.push(E.inputs[g]); ys.push(p); }
    }
    curves[i].data = { x: xs, y: ys };
    if (here && visible(i) && xs.length > 0 && !inside(xs, ys)) off.push(rate.label);
    const bx = [], bt = [], bv = [];
    for (let b = 0; b < BLOCKS; b++) {
      const v = rate.gradients[frame * BLOCKS + b];
      if (here && finite(v) && (!E.gradLog || v > 0)) { bx.push(E.blocks[b]); bt.push(v); bv.push(String(v)); }
    }
    bars[i].data = { x: bx, top: bt, value: bv };
    if (landMarks[i] !== null) {
      const px = rate.position[2 * frame], py = rate.position[2 * frame + 1];
      landMarks[i].data = finite(px) && finite(py) ? { x: [px], y: [py] } : { x: [], y: [] };
    }
  });
  dataFig.title.text = `${E.dataTitle}: network after epoch ${epoch}`;
  offNote.text = off.length === 0 ? "" : `prediction off the axes: ${off.length > 2 ? off.length + " rates" : off.join(", ")}`;
  gradFig.title.text = epoch === 0 && E.rates.every((r) => !finite(r.gradients[frame * BLOCKS]))
    ? "Gradient size per layer: none at epoch 0 (the initial weights)"
    : `Gradient size per layer in epoch ${epoch}`;
}

function drawReadout(frame) {
  const epoch = E.epochs[frame];
  const sel = paramSelect.value;
  document.getElementById("sn-epoch").textContent = String(epoch);
  document.getElementById("sn-param-name").textContent = sel;
  document.getElementById("sn-grad-name").textContent = gradName(sel);
  const body = document.getElementById("sn-readout-rows");
  body.replaceChildren();
  for (const rate of shownRates()) {
    const row = document.createElement("tr");
    row.dataset.rate = rate.key;
    const here = rate.present[frame] === 1;
    const cells = [
      ["sn-rate", rate.label + (rate.status ? ` (${rate.status})` : "")],
      ["sn-loss", here ? text(at(rate, "loss", frame)) : "no row"],
      ["sn-value", here ? text(at(rate, sel, frame)) : "no row"],
      ["sn-grad", here ? gradText(at(rate, gradName(sel), frame), frame) : "no row"],
    ];
    for (const [cls, value] of cells) {
      const cell = document.createElement("td");
      cell.className = cls;
      cell.textContent = value;
      if (cls === "sn-rate") cell.style.borderLeft = `6px solid ${rate.color}`;
      row.appendChild(cell);
    }
    body.appendChild(row);
  }
}

function render() {
  const frame = Math.max(0, Math.min(F - 1, Math.round(slider.value)));
  slider.title = `Epoch ${E.epochs[frame]} of ${E.epochs[F - 1]}` + (E.thinned ? ` (frame ${frame + 1} of ${F})` : "");
  drawNetwork(frame);
  drawPanels(frame);
  drawReadout(frame);
  return frame;
}

let timer = null;
function pause() {
  if (timer !== null) clearInterval(timer);
  timer = null;
  play.label = "▶ Play";
}
function start() {
  if (slider.value >= F - 1) slider.value = 0;
  timer = setInterval(() => {
    if (slider.value >= F - 1) { pause(); return; }
    slider.value = slider.value + 1;
  }, E.frameMs);
  play.label = "❚❚ Pause";
}

window.stellarnetExplorer = {
  epochs: Array.from(E.epochs),
  rates: E.rates.map((r) => r.key),
  setEpoch(epoch) {
    const frame = frameOf(Number(epoch));
    slider.value = frame;
    render();
    return E.epochs[frame];
  },
  selectParameter(name) { paramSelect.value = String(name); render(); },
  setRateVisible(key, shown) {
    const i = E.rates.findIndex((r) => r.key === String(key));
    if (i >= 0 && renderers[i].length > 0) renderers[i][0].visible = Boolean(shown);  // the others follow
    render();
  },
  rendererVisibility(key) {  // whether each of the rate's glyphs, in every panel, is shown
    const i = E.rates.findIndex((r) => r.key === String(key));
    return i < 0 ? [] : renderers[i].map((r) => r.visible);
  },
  shown() {
    const frame = Math.max(0, Math.min(F - 1, Math.round(slider.value)));
    const out = { epoch: E.epochs[frame], rates: [], loss: {}, output: {}, parameters: {}, gradients: {}, selected: paramSelect.value };
    for (const rate of shownRates()) {
      out.rates.push(rate.key);
      const here = rate.present[frame] === 1;
      out.loss[rate.key] = here ? json(at(rate, "loss", frame)) : null;
      out.output[rate.key] = here ? json(at(rate, "output", frame)) : null;
      const params = {}, grads = {};
      for (const name of E.parameters) params[name] = here ? json(at(rate, name, frame)) : null;
      for (const name of E.gradientNames) grads[name] = here ? json(at(rate, name, frame)) : null;
      out.parameters[rate.key] = params;
      out.gradients[rate.key] = grads;
    }
    return out;
  },
  play() { if (timer === null) start(); },
  pause,
  toggle() { if (timer === null) start(); else pause(); },
  refresh: render,
};
render();
document.body.dataset.explorerReady = "true";
