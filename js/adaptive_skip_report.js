// AdaptiveSkip: show the text report a node returns (`ui.text`: calls saved, PSNR, the search's verdict...) on that
// node after a run. The frontend itself shows `ui.text` only on its PreviewAny node.
// The report widget is never saved into the workflow (serialize: false), so widget order in saved files is unchanged.
import { app } from "../../scripts/app.js";

const CATEGORY = "sampling/adaptive_skip";
const WIDGET = "adaptive_skip_report";
const LINE_H = 15;
const MAX_LINES = 14;

const CHAR_W = 7.3; // 12px monospace

// Lines the text takes in a box `width` px wide, long lines wrapped (white-space: pre-wrap).
function reportLines(text, width) {
  const perLine = Math.max(Math.floor((width - 12) / CHAR_W), 10);
  return text.split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(line.length / perLine)), 0);
}

function reportHeight(text, width = 320) {
  return Math.min(reportLines(text, width), MAX_LINES) * LINE_H + 10;
}

// Preferred: a DOM widget with selectable, scrollable text.
function makeDomWidget(node) {
  const box = document.createElement("div");
  box.className = "adaptive-skip-report";
  box.style.cssText = "font:12px/15px monospace;color:#c9cdd3;background:rgba(0,0,0,0.25);white-space:pre-wrap;" +
    "overflow:auto;box-sizing:border-box;padding:4px 6px;border-radius:4px;width:100%;pointer-events:auto;" +
    "user-select:text;";
  const state = { text: "" };
  const width = () => Math.max((node.size?.[0] ?? 320) - 20, 100);
  const widget = node.addDOMWidget(WIDGET, "ADAPTIVE_SKIP_REPORT", box, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => reportHeight(state.text, width()),
    getHeight: () => reportHeight(state.text, width()),
  });
  widget.serialize = false;
  widget.computeLayoutSize = () => ({ minHeight: reportHeight(state.text, width()),
    maxHeight: reportHeight(state.text, width()), minWidth: 0 });
  widget.adaptiveSkipReport = {
    state,
    show(text) {
      state.text = text;
      box.textContent = text;
      box.style.height = `${reportHeight(text, width())}px`;
    },
  };
  return widget;
}

// Fallback for frontends without DOM widgets: lines drawn on the graph canvas.
function makeCanvasWidget(node) {
  const state = { text: "" };
  const widget = {
    name: WIDGET,
    type: "ADAPTIVE_SKIP_REPORT",
    value: null,
    serialize: false,
    computeSize(width) { return [width, reportHeight(state.text, width)]; },
    draw(ctx, _node, width, y) {
      ctx.save();
      ctx.font = "11px monospace";
      ctx.fillStyle = "#c9cdd3";
      state.text.split("\n").slice(0, MAX_LINES).forEach((line, i) => ctx.fillText(line, 10, y + 12 + i * LINE_H,
        width - 20));
      ctx.restore();
    },
  };
  node.addCustomWidget(widget);
  widget.adaptiveSkipReport = { state, show(text) { state.text = text; } };
  return widget;
}

function reportText(message) {
  const raw = message?.text;
  if (typeof raw === "string") return raw;
  if (!Array.isArray(raw)) return "";
  return raw.filter((t) => typeof t === "string" && t.length).join("\n");
}

function showReport(node, text) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    if (typeof node.addDOMWidget === "function") widget = makeDomWidget(node);
    else if (typeof node.addCustomWidget === "function") widget = makeCanvasWidget(node);
    else return;
  }
  widget.adaptiveSkipReport.show(text);
  node.adaptiveSkipReport = text;
  const want = node.computeSize?.();
  if (want && node.size && node.setSize) {
    node.setSize([Math.max(node.size[0], want[0], 320), Math.max(node.size[1], want[1])]);
  }
  node.setDirtyCanvas?.(true, true);
}

try {
  app.registerExtension({
    name: "AdaptiveSkip.Report",
    async beforeRegisterNodeDef(nodeType, nodeData) {
      if (!String(nodeData?.category ?? "").startsWith(CATEGORY)) return;
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        const r = onExecuted?.apply(this, arguments);
        try {
          const text = reportText(message);
          if (text) showReport(this, text);
        } catch (err) {
          console.warn("AdaptiveSkip: could not show the node's report; it is still in the server log", err);
        }
        return r;
      };
    },
  });
} catch (err) {
  console.warn("AdaptiveSkip: this frontend has no extension API; reports stay in the server log", err);
}
