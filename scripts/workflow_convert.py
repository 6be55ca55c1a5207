"""Convert between ComfyUI's UI workflow format (what users drag into the page) and the API prompt format.

ComfyUI's backend has no UI->API converter (only the frontend has one), so the headless runner uses this one.
It handles classic nodes: widget values are assigned to widget inputs in INPUT_TYPES order (required, then
optional), a seed-like INT carries an extra "control after generate" value, and linked inputs take the link.
`workflow_files` makes a shipped workflow's UI file and API twin from one description (the generators
scripts/make_workflows.py and scripts/make_autodiffusion_workflow.py use it, and the tests compare its output with
the shipped files).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def widget_inputs(node_class) -> list[tuple[str, bool]]:
    """(name, has_control_value) for every input the frontend shows as a widget, in order."""
    spec = node_class.INPUT_TYPES()
    out = []
    for group in ("required", "optional"):
        for name, entry in spec.get(group, {}).items():
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if isinstance(kind, (list, tuple)) or kind in WIDGET_TYPES or kind == "COMBO":
                control = kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed"))
                out.append((name, bool(control)))
    return out


def ui_to_api(workflow: dict[str, Any], node_classes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """API prompt {id: {"class_type", "inputs"}} for a UI-format workflow; notes and muted nodes are dropped."""
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4) or node["type"] in ("Note", "MarkdownNote", "Reroute"):
            continue
        cls = node_classes.get(node["type"])
        if cls is None:
            raise ValueError(f"workflow node {node['id']} uses unknown node type {node['type']!r}; "
                             "is the pack (or the node pack it needs) installed?")
        inputs: dict[str, Any] = {}
        linked = {}
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                link = links[slot["link"]]
                linked[slot["name"]] = [str(link[1]), link[2]]
        values = list(node.get("widgets_values", []))
        if isinstance(node.get("widgets_values"), dict):
            raise ValueError(f"node {node['id']} stores widgets by name; only list-style widgets_values are supported")
        for name, control in widget_inputs(cls):
            if not values:
                break
            inputs[name] = values.pop(0)
            if control and values and values[0] in ("fixed", "increment", "decrement", "randomize"):
                values.pop(0)
        inputs.update(linked)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def build_workflow(prompt: dict[str, dict[str, Any]], node_classes: dict[str, Any],
                   positions: dict[str, tuple[int, int]] | None = None, titles: dict[str, str] | None = None,
                   sizes: dict[str, list[int]] | None = None) -> tuple[dict, dict[str, dict[str, Any]]]:
    """(UI workflow, API prompt) of one shipped workflow, both from one description (`prompt`, which may leave
    inputs at their defaults): the UI file from `api_to_ui`, the API twin converted back from that UI file, so
    both spell out every widget value (inputs appended to a node later included), as the page posts them.
    `sizes` maps a node type to its UI size."""
    ui = api_to_ui(prompt, node_classes, positions, titles)
    for node in ui["nodes"]:
        if node["type"] in (sizes or {}):
            node["size"] = sizes[node["type"]]
    return ui, ui_to_api(ui, node_classes)


def workflow_files(name: str, prompt: dict[str, dict[str, Any]], node_classes: dict[str, Any],
                   api_twin: bool = True, **layout) -> dict[str, str]:
    """The text of shipped workflow `name`'s files, by path under workflows/: the UI file and, with `api_twin`,
    its API twin in api/ (see build_workflow; `layout` is its positions, titles and sizes)."""
    ui, api = build_workflow(prompt, node_classes, **layout)
    files = {name: json.dumps(ui, indent=1) + "\n"}
    if api_twin:
        files[f"api/{name}"] = json.dumps(api, indent=1) + "\n"
    return files


def write_files(files: dict[str, str], folder: Path) -> None:
    """Write workflow_files' texts under `folder` (the pack's workflows/), saying what was written."""
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {folder.name}/{relative}")


def api_to_ui(prompt: dict[str, dict[str, Any]], node_classes: dict[str, Any],
              positions: dict[str, tuple[int, int]] | None = None, titles: dict[str, str] | None = None) -> dict:
    """A UI-format workflow for an API prompt (for authoring the shipped workflows from one source)."""
    positions = positions or {}
    titles = titles or {}
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for node_id, node in prompt.items():
        for value in node["inputs"].values():
            if isinstance(value, list):
                links.append([len(links) + 1, int(value[0]), value[1], int(node_id), 0, None])
                out_links.setdefault((value[0], value[1]), []).append(len(links))
    for index, (node_id, node) in enumerate(prompt.items()):
        cls = node_classes[node["class_type"]]
        widgets = widget_inputs(cls)
        widget_names = {n for n, _ in widgets}
        values = []
        for name, control in widgets:
            value = node["inputs"].get(name)
            if isinstance(value, list):
                value = _default(cls, name)
            elif name not in node["inputs"]:
                value = _default(cls, name)
            values.append(value)
            if control:
                values.append("fixed")
        ui_inputs = []
        slot = 0
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                link_id = next(l[0] for l in links if l[3] == int(node_id) and l[1] == int(value[0])
                               and l[2] == value[1] and l[4] == 0 and l[5] is None)
                links[link_id - 1][4] = slot
                links[link_id - 1][5] = _input_type(cls, name)
                entry = {"name": name, "type": _input_type(cls, name), "link": link_id}
                if name in widget_names:
                    entry["widget"] = {"name": name}
                ui_inputs.append(entry)
                slot += 1
        outputs = []
        for out_slot, out_type in enumerate(cls.RETURN_TYPES):
            names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
            outputs.append({"name": names[out_slot], "type": out_type, "links": out_links.get((node_id, out_slot), [])})
        x, y = positions.get(node_id, (40 + 330 * (index % 4), 60 + 380 * (index // 4)))
        entry = {"id": int(node_id), "type": node["class_type"], "pos": [x, y], "size": [300, 240], "flags": {},
                 "order": index, "mode": 0, "inputs": ui_inputs, "outputs": outputs,
                 "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": values}
        if node_id in titles:
            entry["title"] = titles[node_id]
        nodes.append(entry)
    return {"last_node_id": max(int(k) for k in prompt), "last_link_id": len(links), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def _input_type(cls, name: str) -> str:
    spec = cls.INPUT_TYPES()
    for group in ("required", "optional"):
        if name in spec.get(group, {}):
            kind = spec[group][name][0]
            return "COMBO" if isinstance(kind, (list, tuple)) else kind
    raise KeyError(name)


def _default(cls, name: str):
    spec = cls.INPUT_TYPES()
    for group in ("required", "optional"):
        if name in spec.get(group, {}):
            entry = spec[group][name]
            options = entry[1] if len(entry) > 1 else {}
            if "default" in options:
                return options["default"]
            if isinstance(entry[0], (list, tuple)) and entry[0]:
                return entry[0][0]
            return None
    return None
