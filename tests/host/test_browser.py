"""The skip path in a real ComfyUI page: server on loopback, workflow queued over HTTP, Debian's headless Chromium.

Starts ComfyUI's own server (its pinned comfyui-frontend-package) with a temporary --base-directory whose
custom_nodes holds a symlink to this pack (the ComfyUI tree is never written), loads
workflows/skip_path_visualizer.json into the page, checks the frontend converts it to the API twin, queues the
twin through POST /prompt, and checks that the pack's js extension drew the skip path on the nodes (strip canvases
with pixels, hover text naming step, σ and decision) and that the visualizer nodes show their picture.
Screenshot: tests/artifacts/skip_path_browser.png. Skipped loudly without Chromium, Playwright or the bundled model.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ADAPTIVE_SKIP_CHROMIUM", "/usr/bin/chromium")
ARTIFACT = PACK_ROOT / "tests" / "artifacts" / "skip_path_browser.png"
WORKFLOW = PACK_ROOT / "workflows" / "skip_path_visualizer.json"
API_TWIN = PACK_ROOT / "workflows" / "api" / "skip_path_visualizer.json"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
STEPS = 12  # the shipped workflow's graph at fewer steps, so the two oracle searches fit the time budget
PATH_NODES = ("AdaptiveSkipKSampler", "SkipPathOracle", "SkipPathVisualizer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def playwright_api():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"BROWSER TEST SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("BROWSER TEST SKIPPED: the playwright Python package is missing (pip install playwright; "
                    "no browser download is needed, Debian's Chromium is used)")
    if not (PACK_ROOT / "models" / "diffusion_models" / "adaptive_skip_digits.safetensors").is_file():
        pytest.skip("BROWSER TEST SKIPPED: the bundled model models/diffusion_models/adaptive_skip_digits.safetensors is missing")
    return sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory, playwright_api):
    """ComfyUI's real server on a free loopback port; yields its base URL, stops it afterwards."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("adaptive_skip_comfy_env_browser",
                                                  PACK_ROOT / "scripts" / "comfy_env.py")
    comfy_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(comfy_env)
    comfy_root = comfy_env.find_comfyui()  # the host tests' conftest skips this module when it is None
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-AdaptiveSkip").symlink_to(PACK_ROOT, target_is_directory=True)
    port = _free_port()
    log = open(base / "server.log", "w")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # tiny model: threads only spin on 2 cores
    command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base), "--disable-auto-launch", "--preview-method", "none",
               "--database-url", "sqlite:///:memory:"]
    process = subprocess.Popen(command, cwd=comfy_root, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited with {process.returncode}:\n{(base / 'server.log').read_text()[-3000:]}")
            try:
                _get(url + "/system_stats", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"ComfyUI did not answer in 60 s:\n{(base / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _prompt(steps: int) -> dict:
    prompt = json.loads(API_TWIN.read_text())
    for node in prompt.values():
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
    return prompt


def test_skip_path_shows_in_the_comfyui_page(server, playwright_api):
    url, base = server
    object_info = _get(url + "/object_info/SkipPathVisualizer")
    assert "SkipPathVisualizer" in object_info, "the pack is not loaded by the server"
    extensions = _get(url + "/extensions")
    assert any(e.endswith("adaptive_skip_path.js") for e in extensions), extensions
    ui_workflow = json.loads(WORKFLOW.read_text())
    twin = json.loads(API_TWIN.read_text())
    console = []
    with playwright_api() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(url, wait_until="domcontentloaded", timeout=30_000)
            # ready once the node definitions are registered (the pack's included) and the socket has a client id
            page.wait_for_function("""() => window.comfyAPI?.api?.api?.clientId && window.comfyAPI?.app?.app?.graph
                && (window.LiteGraph?.registered_node_types?.SkipPathVisualizer
                    || window.comfyAPI.app.app.graph._nodes?.some(n => n.type === 'KSampler'))""", timeout=45_000)
            page.keyboard.press("Escape")  # any first-run dialog
            # the page restores its own default graph on start-up; load ours until it stays loaded
            for _ in range(10):
                page.evaluate("async (wf) => { await window.comfyAPI.app.app.loadGraphData(wf); }", ui_workflow)
                page.wait_for_timeout(500)
                loaded = page.evaluate("""() => window.comfyAPI.app.app.graph._nodes
                    .filter(n => n.type === 'SkipPathOracle').length""")
                if loaded == 2:
                    break
            assert loaded == 2, "the workflow did not load into the page"
            # the real frontend's UI->API conversion of the shipped file must equal the API twin we queue
            converted = page.evaluate("async () => (await window.comfyAPI.app.app.graphToPrompt()).output")
            for node_id, node in twin.items():
                assert converted.get(node_id, {}).get("class_type") == node["class_type"], json.dumps(converted)[:1500]
                for name, value in node["inputs"].items():
                    assert converted[node_id]["inputs"].get(name) == value, f"node {node_id} input {name}"
            client_id = page.evaluate("() => window.comfyAPI.api.api.clientId")
            queued = _post(url + "/prompt", {"prompt": _prompt(STEPS), "client_id": client_id})
            prompt_id = queued["prompt_id"]
            deadline = time.monotonic() + 150
            while True:
                history = _get(f"{url}/history/{prompt_id}")
                if history and prompt_id in history and history[prompt_id].get("status", {}).get("completed"):
                    break
                status = (history or {}).get(prompt_id, {}).get("status", {})
                assert status.get("status_str") != "error", json.dumps(status)[-2000:]
                assert time.monotonic() < deadline, "the workflow did not finish in 150 s"
                time.sleep(0.5)
            outputs = history[prompt_id]["outputs"]
            path_ids = [i for i, n in twin.items() if n["class_type"] in PATH_NODES]
            for node_id in path_ids:
                assert outputs[node_id]["adaptive_skip_path"], f"node {node_id} sent no skip path"
            # the extension drew a strip on every node that reported a path
            page.wait_for_function(
                "(n) => document.querySelectorAll('canvas.adaptive-skip-path-strip').length >= n", arg=len(path_ids),
                timeout=20_000)
            strips = page.evaluate("""() => Array.from(document.querySelectorAll('canvas.adaptive-skip-path-strip'))
                .map(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                            let ink = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
                            return {w: c.width, h: c.height, ink, steps: c.dataset.steps,
                                    computed: c.dataset.computed}; })""")
            assert all(s["ink"] > 0.5 * s["w"] * s["h"] / 2 for s in strips), strips
            assert all(set(s["steps"].split(",")) == {str(STEPS)} for s in strips), strips
            nodes = page.evaluate("""() => window.comfyAPI.app.app.graph._nodes.map(n => ({id: String(n.id),
                type: n.type, paths: (n.adaptiveSkipPaths || []).length, imgs: (n.imgs || []).length,
                images: ((window.comfyAPI.app.app.nodeOutputs || {})[String(n.id)]?.images || []).length}))""")
            by_id = {n["id"]: n for n in nodes}
            for node_id in path_ids:
                expected = 2 if twin[node_id]["class_type"] == "SkipPathVisualizer" else 1
                assert by_id[node_id]["paths"] == expected, by_id[node_id]
            for node_id, node in twin.items():
                if node["class_type"] == "SkipPathVisualizer":
                    assert max(by_id[node_id]["imgs"], by_id[node_id]["images"]) >= 1, by_id[node_id]
            # bring the δ = 0.05 visualizer into view, hover a cell, read the hover line
            vis_id = [i for i, n in twin.items() if n["class_type"] == "SkipPathVisualizer"][-1]
            page.evaluate("""(id) => { const app = window.comfyAPI.app.app; const n = app.graph.getNodeById(+id);
                const ds = app.canvas.ds; ds.scale = 1; ds.offset[0] = -n.pos[0] + 40; ds.offset[1] = -n.pos[1] + 60;
                app.canvas.setDirty(true, true); }""", vis_id)
            page.wait_for_timeout(500)
            handle = page.evaluate_handle("""(id) => { const n = window.comfyAPI.app.app.graph.getNodeById(+id);
                const w = n.widgets.find(w => w.name === 'adaptive_skip_path');
                return w.element.querySelector('canvas'); }""", vis_id)
            box = handle.as_element().bounding_box()
            assert box and box["width"] > 100, box
            hover_x, hover_y = box["x"] + box["width"] * 6.5 / STEPS, box["y"] + 8
            page.keyboard.press("Escape")  # a stray node-search box may have opened over the canvas
            page.wait_for_timeout(300)
            page.mouse.move(hover_x, hover_y)
            page.wait_for_timeout(200)
            on_top = page.evaluate("""([x, y]) => { const e = document.elementFromPoint(x, y);
                return e ? e.tagName + '.' + e.className : null; }""", [hover_x, hover_y])
            if not str(on_top).startswith("CANVAS.adaptive-skip-path-strip"):
                # something of the page's own lies over the strip: deliver the same pointer move to the strip
                handle.as_element().dispatch_event("mousemove", {"clientX": hover_x, "clientY": hover_y})
            label, label_height = page.evaluate("""(id) => { const n = window.comfyAPI.app.app.graph.getNodeById(+id);
                const el = n.widgets.find(w => w.name === 'adaptive_skip_path').element
                    .querySelector('.adaptive-skip-path-label');
                return [el.textContent, el.getBoundingClientRect().height]; }""", vis_id)
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACT))
            assert label_height >= 10, "the hover line is not visible"
            assert label.startswith("step 6:") and "σ" in label and ("computed" in label or "reused" in label), (
                label, on_top)
        finally:
            browser.close()
    errors = [c for c in console if "AdaptiveSkip" in c and c.startswith(("error", "warning"))]
    assert not errors, errors
    assert ARTIFACT.stat().st_size > 10_000
