// AdaptiveSkip: a newly placed search node starts with its seed "fixed", not "randomize".
// The frontend gives every INT input named `seed` a control_after_generate widget set to "randomize"; on a search
// node (EvoTimestepSchedule, SkipPathOracle) that re-runs a search of thousands of model calls on every queue instead
// of serving the cached result. Only new nodes are changed: a node loaded from a workflow gets its saved mode back
// (the frontend restores widget values after the node is created), so users' files keep what they chose.
import { app } from "../../scripts/app.js";

const SEARCH_NODES = new Set(["EvoTimestepSchedule", "SkipPathOracle"]);
const MODES = ["fixed", "increment", "decrement", "randomize"];

function seedControl(node) {
  const widgets = node.widgets ?? [];
  const seed = widgets.findIndex((w) => w.name === "seed");
  if (seed < 0) return null;
  const linked = widgets[seed].linkedWidgets?.find((w) => MODES.includes(w.value));
  if (linked) return linked;
  const next = widgets[seed + 1];
  return next && next.type === "combo" && MODES.includes(next.value) ? next : null;
}

try {
  app.registerExtension({
    name: "AdaptiveSkip.SearchSeedFixed",
    nodeCreated(node) {
      try {
        if (!SEARCH_NODES.has(node?.comfyClass ?? node?.type)) return;
        const control = seedControl(node);
        if (control) control.value = "fixed";
      } catch (err) {
        console.warn("AdaptiveSkip: could not set the search seed to fixed; set it by hand", err);
      }
    },
  });
} catch (err) {
  console.warn("AdaptiveSkip: this frontend has no extension API; set search seeds to fixed by hand", err);
}
