"""The skip path and the nodes' reports in a real ComfyUI page: server on loopback, workflow queued over HTTP, Debian's
headless Chromium, on two frontends: the one the host pins and the newest from the package index.

Starts ComfyUI's own server with a temporary --base-directory whose custom_nodes holds a symlink to this pack (the
ComfyUI tree is never written), loads workflows/skip_path_visualizer.json into the page, checks the frontend converts
it to the API twin, queues the twin through POST /prompt, and checks that the pack's js extensions drew the skip path
on the nodes (strip canvases with pixels, hover text naming step, σ and decision), that the visualizer nodes show
their picture and that every report a node returned (`ui.text`) is shown on that node. Any page error, any error toast
and any console error naming the pack fails the test.

The newest frontend comes from ADAPTIVE_SKIP_FRONTEND_ROOT (a frontend's `static` folder, passed to ComfyUI as
--front-end-root) or from the newest `~/comfy/frontend-<version>/comfyui_frontend_package/static`
(`pip install --target ~/comfy/frontend-1.58.1 comfyui-frontend-package==1.58.1`); without one that case is skipped
loudly. Screenshots: tests/artifacts/skip_path_browser_<frontend>.png. Skipped loudly without Chromium, Playwright
or the bundled model.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

PACK_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ADAPTIVE_SKIP_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = PACK_ROOT / "tests" / "artifacts"
WORKFLOW = PACK_ROOT / "workflows" / "skip_path_visualizer.json"
API_TWIN = PACK_ROOT / "workflows" / "api" / "skip_path_visualizer.json"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
STEPS = 12  # the shipped workflow's graph at fewer steps, so the two oracle searches fit the time budget
PATH_NODES = ("AdaptiveSkipKSampler", "SkipPathOracle", "SkipPathVisualizer")
FRONTEND_ENV = "ADAPTIVE_SKIP_FRONTEND_ROOT"
# Every error toast the frontend shows, kept even after it fades (PrimeVue toasts leave the DOM after a few seconds).
TOAST_RECORDER = """(() => {
  window.__adaptiveSkipToasts = [];
  const seen = new WeakSet();
  const record = () => document.querySelectorAll('.p-toast-message-error, .p-toast-message-warn').forEach((el) => {
    if (seen.has(el)) return;
    seen.add(el);
    window.__adaptiveSkipToasts.push(el.innerText);
  });
  new MutationObserver(record).observe(document, {childList: true, subtree: true});
})();"""


def _version_of(static: Path) -> tuple:
    info = sorted(static.parent.parent.glob("comfyui_frontend_package-*.dist-info"))
    text = info[-1].name.split("-")[1].removesuffix(".dist-info") if info else "0"
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _newest_frontend():
    """(static folder, version) of the newest frontend at hand beside the host's own, or (None, reason)."""
    if os.environ.get(FRONTEND_ENV):
        static = Path(os.environ[FRONTEND_ENV]).expanduser()
        if not (static / "index.html").is_file():
            return None, f"{FRONTEND_ENV}={static} holds no index.html (point it at a frontend's static folder)"
        return static, _version_of(static)
    found = [s for s in Path("~/comfy").expanduser().glob("frontend-*/comfyui_frontend_package/static")
             if (s / "index.html").is_file()]
    if not found:
        return None, (f"no newer frontend: set {FRONTEND_ENV} to a frontend's static folder, or run "
                      "pip install --target ~/comfy/frontend-1.58.1 comfyui-frontend-package==1.58.1")
    static = max(found, key=_version_of)
    return static, _version_of(static)


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


@contextlib.contextmanager
def _serve(comfy_root: Path, base: Path, frontend_args: list):
    """ComfyUI's real server on a free loopback port for base directory `base`; yields its URL, stops it after."""
    port = _free_port()
    log = open(base / "server.log", "w")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # tiny model: threads only spin on 2 cores
    command = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base), "--disable-auto-launch", "--preview-method", "none",
               "--database-url", "sqlite:///:memory:", *frontend_args]
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
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module", params=["pinned", "newest"])
def server(request, tmp_path_factory, playwright_api):
    """ComfyUI with this pack, on the host's pinned frontend or the newest one at hand. Yields a namespace: url,
    base, frontend (its name), version (expected frontend version, None for the pinned one), frontend_args and
    comfy_root (to start a server without the pack for comparison)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("adaptive_skip_comfy_env_browser",
                                                  PACK_ROOT / "scripts" / "comfy_env.py")
    comfy_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(comfy_env)
    comfy_root = comfy_env.find_comfyui()  # the host tests' conftest skips this module when it is None
    frontend_args, expected_version = [], None
    if request.param == "newest":
        static, version = _newest_frontend()
        if static is None:
            pytest.skip(f"BROWSER TEST ON THE NEWEST FRONTEND SKIPPED: {version}")
        frontend_args = ["--front-end-root", str(static)]
        expected_version = ".".join(map(str, version))
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-AdaptiveSkip").symlink_to(PACK_ROOT, target_is_directory=True)
    with _serve(comfy_root, base, frontend_args) as url:
        yield SimpleNamespace(url=url, base=base, frontend=request.param, version=expected_version,
                              frontend_args=frontend_args, comfy_root=comfy_root, tmp=tmp_path_factory)


def _open_page(browser, url: str, pack_loaded: bool):
    """A page on `url`, ready (node definitions registered, canvas set up, socket connected); returns (page,
    console lines, page errors): the lists keep filling while the page lives."""
    console, page_errors = [], []
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: page_errors.append(f"{e}\n{getattr(e, 'stack', '')}"))
    page.add_init_script(TOAST_RECORDER)
    page.goto(url, wait_until="domcontentloaded", timeout=30_000)
    # Ready once the socket has a client id, the node definitions are registered (the pack's included) and the
    # graph canvas has finished its set-up: the frontend sets window.app only after its canvas store holds the
    # canvas. Loading a workflow before that (app.graph already exists) makes 1.58's workflow-load routing throw
    # "getCanvas: canvas is null": the error toast this test used to provoke itself.
    page.wait_for_function("""(pack) => window.comfyAPI?.api?.api?.clientId && window.app?.canvas && window.graph
        && window.comfyAPI?.app?.app?.graph && (!pack || window.LiteGraph?.registered_node_types?.SkipPathVisualizer
            || window.comfyAPI.app.app.graph._nodes?.some(n => n.type === 'KSampler'))""", arg=pack_loaded,
                           timeout=45_000)
    page.wait_for_timeout(2000)  # start-up settles (settings, templates, first-run defaults)
    page.keyboard.press("Escape")  # any first-run dialog
    return page, console, page_errors


def _names_pack(text: str) -> bool:
    return any(k in text for k in ("AdaptiveSkip", "adaptive_skip", "adaptive-skip"))


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0]


def _startup_problems_without_pack(server, pw) -> set:
    """First lines of the page errors and error toasts the same frontend shows at start-up with no custom node."""
    base = server.tmp.mktemp("comfy_base_bare")
    (base / "custom_nodes").mkdir()
    with _serve(server.comfy_root, base, server.frontend_args) as url:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page, _, page_errors = _open_page(browser, url, pack_loaded=False)
            toasts = page.evaluate("() => window.__adaptiveSkipToasts || []")
        finally:
            browser.close()
    return {_first_line(t) for t in page_errors + toasts}


def _view(page, left_id: str, top_id: str) -> None:
    """Scroll the graph canvas at scale 1 so node `left_id` sits at the left edge and node `top_id` at the top."""
    page.evaluate("""([left, top]) => { const app = window.comfyAPI.app.app; const ds = app.canvas.ds;
        ds.scale = 1; ds.offset[0] = -app.graph.getNodeById(+left).pos[0] + 90;
        ds.offset[1] = -app.graph.getNodeById(+top).pos[1] + 60; app.canvas.setDirty(true, true); }""",
                  [left_id, top_id])
    page.keyboard.press("Escape")  # a stray node-search box may have opened over the canvas
    page.wait_for_timeout(500)


def _prompt(steps: int) -> dict:
    prompt = json.loads(API_TWIN.read_text())
    for node in prompt.values():
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
    return prompt


def test_skip_path_and_reports_show_in_the_comfyui_page(server, playwright_api):
    url = server.url
    artifact = ARTIFACTS / f"skip_path_browser_{server.frontend}.png"
    object_info = _get(url + "/object_info/SkipPathVisualizer")
    assert "SkipPathVisualizer" in object_info, "the pack is not loaded by the server"
    extensions = _get(url + "/extensions")
    assert any(e.endswith("adaptive_skip_path.js") for e in extensions), extensions
    assert any(e.endswith("adaptive_skip_report.js") for e in extensions), extensions
    assert any(e.endswith("adaptive_skip_seed.js") for e in extensions), extensions
    ui_workflow = json.loads(WORKFLOW.read_text())
    twin = json.loads(API_TWIN.read_text())
    with playwright_api() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            page, console, page_errors = _open_page(browser, url, pack_loaded=True)
            version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || null")
            if server.version:
                assert version == server.version, f"the page runs frontend {version}, not {server.version}"
            # what went wrong before the pack's graph was touched, and what went wrong from then on
            startup = page_errors + page.evaluate("() => window.__adaptiveSkipToasts || []")
            n_errors, n_toasts = len(page_errors), page.evaluate("() => (window.__adaptiveSkipToasts || []).length")
            # a newly placed search node starts with its seed "fixed" (a repeated queue hits the cache instead of
            # searching again); a KSampler keeps the frontend's "randomize"
            seeds = page.evaluate("""() => ['EvoTimestepSchedule', 'SkipPathOracle', 'KSampler'].map((type) => {
                const node = window.LiteGraph.createNode(type);
                const i = node.widgets.findIndex((w) => w.name === 'seed');
                const before = node.widgets[i].value;
                for (const w of node.widgets) w.afterQueued?.();
                return [type, {mode: node.widgets[i + 1]?.value, kept: node.widgets[i].value === before}]; })""")
            seeds = dict(seeds)
            assert seeds["EvoTimestepSchedule"] == {"mode": "fixed", "kept": True}, seeds
            assert seeds["SkipPathOracle"] == {"mode": "fixed", "kept": True}, seeds
            assert seeds["KSampler"]["mode"] == "randomize" and not seeds["KSampler"]["kept"], seeds
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
            # every report a node returned (ui.text) is shown whole on that node, and is visible when in view
            report_ids = [i for i, o in outputs.items() if o.get("text")]
            assert report_ids, "the workflow returned no report to show"
            page.wait_for_function("""(ids) => ids.every(id => window.comfyAPI.app.app.graph.getNodeById(+id)
                ?.widgets?.some(w => w.name === 'adaptive_skip_report'))""", arg=report_ids, timeout=20_000)
            for node_id in report_ids:
                _view(page, node_id, node_id)
                shown = page.evaluate("""(id) => { const n = window.comfyAPI.app.app.graph.getNodeById(+id);
                    const el = n.widgets.find(w => w.name === 'adaptive_skip_report').element;
                    const r = el.getBoundingClientRect();
                    const top = document.elementFromPoint(r.x + r.width / 2, r.y + Math.min(r.height / 2, 8));
                    return {text: el.textContent, height: r.height, width: r.width, x: r.x, y: r.y,
                            onTop: !!top && (top === el || el.contains(top)),
                            over: top ? top.tagName + '.' + top.className : null}; }""", node_id)
                assert shown["text"] == "\n".join(outputs[node_id]["text"]), (node_id, shown, outputs[node_id]["text"])
                assert shown["height"] >= 12 and shown["width"] >= 100, (node_id, shown)
                assert shown["onTop"], f"node {node_id}'s report is hidden under something else: {shown}"
            # bring the δ = 0.05 sampler and its visualizer into view, hover a cell, read the hover line
            vis_id = [i for i, n in twin.items() if n["class_type"] == "SkipPathVisualizer"][-1]
            sampler_id = [i for i, n in twin.items() if n["class_type"] == "AdaptiveSkipKSampler"][-1]
            _view(page, sampler_id, vis_id)
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
            artifact.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifact))
            toasts = page.evaluate("() => window.__adaptiveSkipToasts || []")
            assert label_height >= 10, "the hover line is not visible"
            assert label.startswith("step 6:") and "σ" in label and ("computed" in label or "reused" in label), (
                label, on_top)
        finally:
            browser.close()
        # once the page was up, anything that went wrong came from the pack's graph, run or display: none allowed
        assert not page_errors[n_errors:], f"page errors on frontend {version}: {page_errors[n_errors:]}"
        assert not toasts[n_toasts:], f"error toasts on frontend {version}: {toasts[n_toasts:]}"
        pack_lines = [c for c in console if c.startswith(("error", "warning")) and _names_pack(c)]
        assert not pack_lines, pack_lines
        # at start-up: nothing naming the pack, and nothing a page without the pack does not show as well
        assert not [e for e in startup if _names_pack(e)], startup
        if startup:
            unexplained = {_first_line(e) for e in startup} - _startup_problems_without_pack(server, pw)
            assert not unexplained, f"start-up errors on frontend {version} that a page without the pack lacks: " \
                                    f"{unexplained}"
            print(f"frontend {version}: start-up errors that ComfyUI shows without the pack too: "
                  f"{sorted({_first_line(e) for e in startup})}")
    assert artifact.stat().st_size > 10_000
