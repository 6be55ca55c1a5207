// AdaptiveSkip: draw the latest skip path inside the node after a run (one cell per sampler step; hover a cell for
// its step, sigma, estimator value and decision). Reads the `adaptive_skip_path` UI output of the pack's nodes.
// Everything is guarded: when the frontend lacks an API used here the node keeps its plain image output.
import { app } from "../../scripts/app.js";

const NODES = new Set(["AdaptiveSkipKSampler", "SkipPathVisualizer", "AdaptiveSkipLastPath", "SkipPathOracle"]);
const WIDGET = "adaptive_skip_path";
const ROW_H = 22;
const GAP = 6;
const LABEL_H = 18;
// Same colours as core/draw.py: computed cells per path, reused grey, forced-call triangle, warm-up band.
const PALETTE = ["rgb(31,94,186)", "rgb(221,107,32)", "rgb(46,139,87)", "rgb(148,72,168)"];
const REUSED = "rgb(226,229,234)";
const FORCED = "rgb(20,20,20)";
const WARMUP = "rgb(120,126,134)";

function fmt(v, digits = 3) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  if (v !== 0 && (Math.abs(v) < 0.001 || Math.abs(v) >= 1000)) return v.toExponential(2);
  return String(Number(v.toPrecision(digits)));
}

function summary(path) {
  const steps = path.computed.length;
  const computed = path.computed.filter(Boolean).length;
  const calls = path.sampler_calls
    ? `${path.model_calls}/${path.sampler_calls} calls (${(path.sampler_calls / Math.max(path.model_calls, 1)).toFixed(2)}x)`
    : `${computed}/${steps} steps`;
  // `rule` is the caption the pack's registry writes (core/skip_path.py); older records lack it
  let rule = path.rule;
  if (!rule) {
    rule = path.criterion;
    if (!["replay", "oracle", "searched", "stride", "calls"].includes(rule)) rule += ` δ=${fmt(path.threshold)}`;
  }
  const psnr = path.identical ? ", identical to full run" : path.psnr != null ? `, PSNR ${path.psnr.toFixed(2)} dB` : "";
  return `${rule}: ${calls}${psnr}`;
}

function stepInfo(path, i) {
  const decision = path.computed[i]
    ? path.forced?.[i] ? "computed (forced by C_max)" : path.warmup?.[i] ? "computed (warm-up)" : "computed"
    : "reused";
  const est = path.estimator?.[i];
  const estText = est === null || est === undefined ? "estimator –" : `estimator ${fmt(est)} vs δ ${fmt(path.threshold)}`;
  return `step ${i}: σ ${fmt(path.sigmas?.[i], 4)}, ${estText}, ${decision}`;
}

function stripHeight(paths) {
  return paths.length * (ROW_H + GAP) + LABEL_H + 4;
}

// Draw the strip into ctx inside the box (x, y, w); returns the geometry used for hit tests.
function drawStrip(ctx, paths, x, y, w) {
  const steps = Math.max(...paths.map((p) => p.computed.length), 1);
  const rows = [];
  ctx.save();
  ctx.font = "11px sans-serif";
  ctx.textBaseline = "middle";
  paths.forEach((path, k) => {
    const top = y + k * (ROW_H + GAP);
    const cellW = w / steps;
    const colour = PALETTE[k % PALETTE.length];
    for (let i = 0; i < path.computed.length; i++) {
      const x0 = x + i * cellW;
      ctx.fillStyle = path.computed[i] ? colour : REUSED;
      ctx.fillRect(x0, top, Math.max(cellW - (cellW >= 5 ? 1 : 0), 1), ROW_H - 4);
      if (path.warmup?.[i]) {
        ctx.fillStyle = WARMUP;
        ctx.fillRect(x0, top + ROW_H - 3, Math.max(cellW - 1, 1), 2);
      }
      if (path.forced?.[i]) {
        const cx = x0 + cellW / 2;
        const r = Math.max(2, Math.min(5, cellW / 2.5));
        ctx.fillStyle = FORCED;
        ctx.beginPath();
        ctx.moveTo(cx - r, top);
        ctx.lineTo(cx + r, top);
        ctx.lineTo(cx, top + 1.6 * r);
        ctx.fill();
      }
    }
    rows.push({ top, bottom: top + ROW_H, cellW, path });
  });
  ctx.restore();
  return { x, w, rows };
}

function hitTest(geometry, px, py) {
  if (!geometry) return null;
  for (const row of geometry.rows) {
    if (py >= row.top && py < row.bottom + GAP && px >= geometry.x && px < geometry.x + geometry.w) {
      const i = Math.floor((px - geometry.x) / row.cellW);
      if (i >= 0 && i < row.path.computed.length) return { path: row.path, step: i };
    }
  }
  return null;
}

// Preferred: a DOM widget holding a <canvas> and a text line (hover works like any web page).
function makeDomWidget(node) {
  const root = document.createElement("div");
  root.className = "adaptive-skip-path";
  root.style.cssText = "display:flex;flex-direction:column;width:100%;box-sizing:border-box;padding:0 4px;" +
    "pointer-events:auto;";
  const canvas = document.createElement("canvas");
  canvas.className = "adaptive-skip-path-strip";
  canvas.style.cssText = "width:100%;display:block;cursor:crosshair;";
  const label = document.createElement("div");
  label.className = "adaptive-skip-path-label";
  label.style.cssText = "font:12px sans-serif;color:#b8bcc2;white-space:nowrap;overflow:hidden;flex:none;" +
    "text-overflow:ellipsis;height:16px;line-height:16px;";
  root.append(canvas, label);
  const state = { paths: [], geometry: null };
  const redraw = () => {
    const paths = state.paths;
    const cssW = Math.max(root.clientWidth - 8, 60);
    const cssH = paths.length * (ROW_H + GAP);
    const dpr = window.devicePixelRatio || 1;
    canvas.style.height = `${cssH}px`;
    canvas.style.flex = "none";
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    state.geometry = paths.length ? drawStrip(ctx, paths, 0, 0, cssW) : null;
    canvas.dataset.steps = paths.map((p) => p.computed.length).join(",");
    canvas.dataset.computed = paths.map((p) => p.computed.filter(Boolean).length).join(",");
    label.textContent = paths.map(summary).join(" | ");
  };
  canvas.addEventListener("mousemove", (e) => {
    const box = canvas.getBoundingClientRect();
    const scale = box.width ? (canvas.width / (window.devicePixelRatio || 1)) / box.width : 1;
    const hit = hitTest(state.geometry, (e.clientX - box.left) * scale, (e.clientY - box.top) * scale);
    const text = hit ? stepInfo(hit.path, hit.step) : state.paths.map(summary).join(" | ");
    label.textContent = text;
    canvas.title = text;
  });
  canvas.addEventListener("mouseleave", () => { label.textContent = state.paths.map(summary).join(" | "); });
  const widget = node.addDOMWidget(WIDGET, "ADAPTIVE_SKIP_PATH", root, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => stripHeight(state.paths),
    getHeight: () => stripHeight(state.paths),
  });
  widget.serialize = false;
  widget.computeLayoutSize = () => ({ minHeight: stripHeight(state.paths), maxHeight: stripHeight(state.paths), minWidth: 0 });
  widget.adaptiveSkip = { state, redraw };
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(() => redraw()).observe(root);
  return widget;
}

// Fallback for frontends without DOM widgets: a LiteGraph custom widget drawn on the graph canvas.
function makeCanvasWidget(node) {
  const state = { paths: [], geometry: null, hover: null };
  const widget = {
    name: WIDGET,
    type: "ADAPTIVE_SKIP_PATH",
    value: null,
    serialize: false,
    computeSize(width) { return [width, stripHeight(state.paths)]; },
    draw(ctx, _node, width, y) {
      state.geometry = drawStrip(ctx, state.paths, 10, y + 2, width - 20);
      ctx.save();
      ctx.font = "11px sans-serif";
      ctx.fillStyle = "#ccc";
      const text = state.hover ? stepInfo(state.hover.path, state.hover.step) : state.paths.map(summary).join(" | ");
      ctx.fillText(text, 10, y + state.paths.length * (ROW_H + GAP) + 12, width - 20);
      ctx.restore();
    },
  };
  node.addCustomWidget(widget);
  const onMouseMove = node.onMouseMove;
  node.onMouseMove = function (e, pos, canvas) {
    const r = onMouseMove?.apply(this, arguments);
    try {
      const hit = hitTest(state.geometry, pos[0], pos[1]);
      if ((hit?.step ?? -1) !== (state.hover?.step ?? -1) || hit?.path !== state.hover?.path) {
        state.hover = hit;
        this.setDirtyCanvas?.(true, false);
      }
    } catch (err) { /* hover is a nicety */ }
    return r;
  };
  widget.adaptiveSkip = { state, redraw: () => node.setDirtyCanvas?.(true, true) };
  return widget;
}

function showPaths(node, paths) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    if (typeof node.addDOMWidget === "function") widget = makeDomWidget(node);
    else if (typeof node.addCustomWidget === "function") widget = makeCanvasWidget(node);
    else return;
  }
  widget.adaptiveSkip.state.paths = paths;
  widget.adaptiveSkip.redraw();
  node.adaptiveSkipPaths = paths;
  const want = node.computeSize?.();
  if (want && node.size && node.setSize) node.setSize([Math.max(node.size[0], want[0], 320), Math.max(node.size[1], want[1])]);
  node.setDirtyCanvas?.(true, true);
}

function validPaths(message) {
  const raw = message?.[WIDGET];
  if (!Array.isArray(raw)) return [];
  return raw.filter((p) => p && Array.isArray(p.computed) && p.computed.length > 0);
}

try {
  app.registerExtension({
    name: "AdaptiveSkip.SkipPath",
    async beforeRegisterNodeDef(nodeType, nodeData) {
      if (!NODES.has(nodeData?.name)) return;
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const r = onExecuted?.apply(this, arguments);
        try {
          const paths = validPaths(message);
          if (paths.length) showPaths(this, paths);
        } catch (err) {
          console.warn("AdaptiveSkip: could not draw the skip path; the node keeps its plain output", err);
        }
        return r;
      };
    },
  });
} catch (err) {
  console.warn("AdaptiveSkip: this frontend has no extension API; skip paths show as plain images", err);
}
