"""The benchmark's markdown report (results/benchmark.md; BENCHMARKS.md is written from it)."""
from __future__ import annotations

import statistics
from typing import Any

from . import plan as P
from . import report as R


def _overhead_bundled(rows: list[dict[str, Any]]) -> str:
    lines = ["| section | AdaptiveSkip runs | median controller µs per sampler call | median model call ms | "
             "median fraction | max controller bytes |", "|---|---|---|---|---|---|"]
    for section in dict.fromkeys(r["section"] for r in rows):
        ad = [r for r in rows if r["section"] == section and r["method"] == P.ADAPTIVE
              and r["bookkeeping_us_per_call"] != "" and r["model_call_ms"] != ""]
        plain = [r for r in rows if r["section"] == section and r["method"] in (P.FULL, P.FEWER)
                 and r["bookkeeping_us_per_call"] != ""]
        if not ad:
            continue
        base = statistics.median(r["bookkeeping_us_per_call"] for r in plain) if plain else 0.0
        us = statistics.median(r["bookkeeping_us_per_call"] - base for r in ad)
        ms = statistics.median(r["model_call_ms"] for r in ad)
        lines.append(f"| {section} | {len(ad)} | {us:.0f} | {ms:.1f} | {us / (1000 * ms):.4f} | "
                     f"{max(r['controller_bytes'] or 0 for r in ad)} |")
    return "\n".join(lines)


# What the decoded images and the feature classifier are, per benchmark model (Mode.model)
IMAGES = {"bundled": ("decoded 8×8 digits", "digits-classifier"), "tiny": ("decoded 8×8 digits", "digits-classifier"),
          "mnist_dit": ("decoded 28×28 MNIST digits", "MNIST-classifier")}


def markdown_report(mode: P.Mode, plans: list[P.SectionPlan], rows: list[dict[str, Any]], reference_lines: list[str],
                    notes: list[str], machine: dict[str, str], command: str, overhead: dict[str, Any] | None,
                    schedule_md: str, plot_names: list[str]) -> str:
    out = [f"# AdaptiveSkip benchmark ({mode.name} mode)", "",
           f"Command: `{command}`  ",
           f"Pack code: commit {machine.get('commit', '?')}"
           f"{' with uncommitted changes in core/ or nodes/' if machine.get('dirty') else ''} "
           f"(hash of the skip code: {machine.get('code_hash', '?')})  ",
           f"Machine: {machine['cpu']}; torch {machine['torch']} "
           f"({machine['torch_threads']} threads), Python {machine['python']}, ComfyUI {machine['comfyui']}, "
           f"{machine['os']}  ",
           f"Load average at start / end: {machine['load_average_start']} / {machine.get('load_average_end', '?')} "
           f"(the machine is shared; runs are interleaved so noise hits all methods alike)  ",
           (f"Re-scored with --resume in {machine.get('benchmark_wall_s', '?')} s ({machine.get('fresh_runs', '?')} "
            f"runs sampled in this session, the rest cached); the original full session took "
            f"{machine.get('original_wall_s', '?')} s at load average {machine.get('original_load', '?')}"
            if machine.get("resumed") else
            f"Benchmark wall time: {machine.get('benchmark_wall_s', '?')} s (sampling, oracle search included: "
            f"{machine.get('sampling_wall_s', '?')} s)"), "",
           f"Setting: model `{mode.model}`, {mode.seeds} seeds as one batch (seed i draws digit i mod 10, negative = "
           f"null class), cfg {mode.cfg}, {mode.steps} steps, call budgets {mode.budgets[0]}–{mode.budgets[-1]}. "
           "A model call is one CFG evaluation of the whole batch, counted at the UNet (so EasyCache's skipped "
           "forwards are not counted). Fidelity: per-seed PSNR (dB) / SSIM of the final latent (range = the "
           f"reference sample's peak-to-peak) averaged over seeds; image metrics on the {IMAGES[mode.model][0]}; "
           f"FD = Fréchet distance of {IMAGES[mode.model][1]} features against the high-accuracy reference's "
           "images.", "",
           "## References", ""] + reference_lines + [""]
    out += ["## Side by side at each call budget", "",
            "Cells: latent PSNR/SSIM of the best run of that family spending at most that many calls (`@n` = it "
            "spent n calls). Threshold rules (official, strict, paper, error, EasyCache, LazyCache) only reach the "
            "budgets their sweep happens to land on; `calls` spends exactly the budget with regular gaps.", ""]
    for sp in plans:
        srows = [r for r in rows if r["section"] == sp.section.name]
        out += [f"### {sp.section.name} ({sp.section.scheduler}, {mode.steps} steps)", ""]
        for ref, title in (("high", "against the high-accuracy reference"), ("full", "against the full-step run")):
            table, cells = R.budget_table(srows, mode.budgets, ref)
            out += [f"**{title}**", "", table, ""] + R.verdicts(cells, mode.budgets, ref) + [""]
    peers = lambda r: r["method"] in (P.EASYCACHE, P.LAZYCACHE) or (
        r["method"] == P.ADAPTIVE and r.get("criterion") == "official" and r.get("reuse") == "hold")
    out += ["## Peers at their own call counts", "",
            "EasyCache, LazyCache (ComfyUI's nodes) and the official AdaptiveDiffusion rule land on whatever call "
            "count their threshold gives; each is compared with the best fewer-steps run spending no more calls "
            "(Δ = run minus that baseline, dB; Δ high against the best sampler, Δ full against the same sampler).",
            "", R.own_budget_table(rows, peers), ""]
    out += ["## Controller overhead", "", "Bundled model (per sampler call, outside the model call, bench wrapper "
            "dispatch of plain runs subtracted):", "", _overhead_bundled(rows), ""]
    if overhead is not None:
        from .overhead import overhead_markdown
        out += ["SD1.5-shaped UNet:", "", overhead_markdown(overhead), ""]
    if schedule_md:
        out += ["## Searched schedules vs built-in schedulers", "", schedule_md, ""]
    out += ["## Pareto plots", "", "One row per sampler under test; left: latent PSNR against the high-accuracy reference, "
            "right: against the full-step run. Each family is drawn as its own Pareto front (AS = AdaptiveSkip; "
            "'AS rules, hold' = official/strict/paper with the paper's hold reuse; 'AS extrapolated' = any rule "
            "with linear/quadratic reuse); the dashed staircase is the front over all runs.", ""] + [f"![{name}]({name})" for name in plot_names] + [""]
    out += ["## All runs", "", "<details><summary>every run, every section</summary>", "",
            R.markdown_all_runs(rows), "", "</details>", ""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


ANALYSIS_START, ANALYSIS_END = "<!-- analysis:start -->", "<!-- analysis:end -->"
ANALYSIS_PLACEHOLDER = "(Write the reading of these numbers here; this block survives regeneration.)"


# Models other than the digits one publish into their own block at the end of BENCHMARKS.md
MODEL_TITLES = {"mnist_dit": "# Benchmarks: the flow DiT (MNIST, loaded as SD3)"}


def _markers(model: str) -> tuple[str, str, str, str]:
    return (f"<!-- {model}:start -->", f"<!-- {model}:end -->", f"<!-- analysis-{model}:start -->",
            f"<!-- analysis-{model}:end -->")


def _cut(text: str, start: str, end: str) -> tuple[str, str]:
    """(text without the block start..end, the block's inside); the inside is "" when there is no block."""
    if start not in text or end not in text:
        return text, ""
    head, rest = text.split(start, 1)
    inside, tail = rest.split(end, 1)
    return head.rstrip("\n") + "\n" + tail.lstrip("\n"), inside


def publish(report_md: str, out_dir, repo_root, plot_names: list[str], model: str = "bundled") -> str:
    """Write BENCHMARKS.md (the report, with its plots copied to docs/bench/) keeping the hand-written analysis
    block of the previous BENCHMARKS.md. The digits model's report is the file; another model's report replaces
    only its own block at the end (plots in docs/bench/<model>/), and each keeps the other's. Returns the path."""
    import shutil
    from pathlib import Path

    repo_root, out_dir = Path(repo_root), Path(out_dir)
    sub = f"{model}/" if model in MODEL_TITLES else ""
    docs = repo_root / "docs" / "bench" / sub
    docs.mkdir(parents=True, exist_ok=True)
    body = report_md
    for name in plot_names:
        shutil.copyfile(out_dir / name, docs / name)
        body = body.replace(f"]({name})", f"](docs/bench/{sub}{name})")
    target = repo_root / "BENCHMARKS.md"
    old = target.read_text() if target.is_file() else ""
    blocks = {}
    for other in MODEL_TITLES:
        start, end, _, _ = _markers(other)
        old, blocks[other] = _cut(old, start, end)
    title, rest = body.split("\n", 1)
    if model in MODEL_TITLES:
        start, end, a_start, a_end = _markers(model)
        _, analysis = _cut(blocks[model], a_start, a_end)
        blocks[model] = (f"\n{MODEL_TITLES[model]}\n\n{a_start}\n{analysis.strip() or ANALYSIS_PLACEHOLDER}\n"
                         f"{a_end}\n{rest.strip()}\n")
        text = old
    else:
        _, analysis = _cut(old, ANALYSIS_START, ANALYSIS_END)
        text = (f"{title.replace('# AdaptiveSkip benchmark', '# Benchmarks')}\n\n{ANALYSIS_START}\n"
                f"{analysis.strip() or ANALYSIS_PLACEHOLDER}\n{ANALYSIS_END}\n{rest}")
    for other, inside in blocks.items():
        if inside:
            start, end, _, _ = _markers(other)
            text = f"{text.rstrip()}\n\n{start}{inside}{end}\n"
    target.write_text(text)
    return str(target)
