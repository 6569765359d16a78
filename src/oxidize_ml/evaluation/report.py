"""The evaluation report: every available evaluation, one Markdown file, one JSON file.

`build_report` runs the sections of `SECTIONS` in order, writes their figures
to ``out_dir/figures/``, and then writes ``out_dir/results.json`` and
``out_dir/report.md`` (atomically; ``report.md`` last, so its presence means
the report is complete).

Adding a section
----------------
Append one `Section` to `SECTIONS`. Its module must expose

- ``run(*, seed: int, quick: bool, ...) -> result`` where ``result`` has
  ``to_dict()`` (JSON-able) and ``markdown()`` (the section body). If ``run``
  also accepts ``progress``, it is given ``progress(done, total, label)``
  for the progress bar. Optional: ``result.headline() -> list[str]``, plain
  sentences saying which component wins where (they go into the report's
  summary and the demo's output).
- ``plot(result, out_dir) -> list[Path]``: PNG files written into ``out_dir``
  (use `oxidize_ml.evaluation.plots`).
- optionally ``available() -> str | None``: a reason to skip the section
  (e.g. "no trained model in the package"), or None to run it.

A section whose module does not exist is listed as "not available"; one that
raises is reported as failed with its error (and `build_report` raises at the
end when ``strict``).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import inspect
import json
import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from oxidize_ml._atomic import atomic_write_text
from oxidize_ml.evaluation.plots import REPORT_FILE_MODE, matplotlib_available

REPORT_NAME = "report.md"
RESULTS_NAME = "results.json"
FIGURES_DIR = "figures"
RESULTS_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Section:
    """One evaluation of the report."""

    key: str
    """short id: the key in results.json and the anchor in report.md"""
    title: str
    """section heading"""
    module: str
    """module exposing ``run`` and ``plot`` (imported only when the section runs)"""
    intro: str = ""
    """one paragraph above the results: what is compared and why"""


SECTIONS: tuple[Section, ...] = (
    Section(
        "congestion",
        "Congestion control",
        "oxidize_ml.evaluation.congestion",
        "Every controller on every simulator scenario, compared the Pantheon way (throughput "
        "against 95th-percentile one-way delay), then on windows of the held-out Mahimahi "
        "cellular traces (several starts per trace, silent starts, RTT 40 and 100 ms, 2-BDP "
        "buffers) as ratios to CUBIC with paired bootstrap confidence intervals.",
    ),
    Section(
        "fec",
        "Loss prediction and FEC",
        "oxidize_ml.evaluation.fec",
        "Loss predictors turned into forward error correction: overhead spent against loss "
        "left unrecovered.",
    ),
    Section(
        "fec-heldout",
        "Loss prediction and FEC on the held-out split",
        "oxidize_ml.evaluation.fec_windows",
        "The default rule's evidence for the loss predictor: the EWMA, the LSTM and the "
        "burst-aware predictor (with its own FEC policy, and through the binomial table) on "
        "windows of the held-out traces at RTT 40 and 100 ms and on the held-out scenarios; "
        "residual loss at the EWMA's overhead, curves against the hindsight bound, paired "
        "bootstrap intervals.",
    ),
    Section(
        "paths",
        "Path selection",
        "oxidize_ml.evaluation.paths",
        "Path selectors per traffic type on paths that fail and degrade: reward and regret "
        "against the hindsight-best path.",
    ),
    Section(
        "compression",
        "Compression decisions",
        "oxidize_ml.evaluation.compression",
        "Per-packet compress/skip decisions on a corpus of real payloads: bytes saved against "
        "CPU time spent.",
    ),
    Section(
        "header-compression",
        "Header compression (RohcOnly)",
        "oxidize_ml.evaluation.header_compression",
        "What RohcOnly saves on real-time UDP flows (RTP audio and video, game state, "
        "QUIC-like) and how its per-flow contexts survive loss and reordering.",
    ),
)
"""the report's sections, in order (others append learned-model comparisons here)"""


@dataclass(slots=True)
class SectionOutcome:
    """What happened to one section."""

    section: Section
    status: str
    """"ok", "failed", "skipped" (available() said no) or "not available" (no module)"""
    wall_s: float = 0.0
    """seconds spent in ``run``"""
    plot_s: float = 0.0
    """seconds spent drawing figures"""
    result: Any = None
    figures: list[Path] = field(default_factory=list)
    error: str | None = None
    """why it failed or was skipped"""
    figure_error: str | None = None

    def headline(self) -> list[str]:
        if self.status != "ok":
            return []
        fn = getattr(self.result, "headline", None)
        if not callable(fn):
            return []
        try:
            return [str(x) for x in fn()]
        except Exception as exc:  # noqa: BLE001 - a broken summary must not lose the report
            return [f"({self.section.title}: headline failed: {exc})"]


@dataclass(slots=True)
class Report:
    """The outcome of `build_report` (also written to results.json)."""

    out_dir: Path
    seed: int
    quick: bool
    outcomes: list[SectionOutcome]
    meta: dict[str, Any]
    wall_s: float

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    @property
    def results_path(self) -> Path:
        return self.out_dir / RESULTS_NAME

    @property
    def failed(self) -> list[SectionOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def outcome(self, key: str) -> SectionOutcome:
        for o in self.outcomes:
            if o.section.key == key:
                return o
        raise KeyError(f"no section {key!r}; sections: {[o.section.key for o in self.outcomes]}")


ProgressFn = Callable[[int, int, str], None]


# ---------------------------------------------------------------- machine / JSON


def machine_info() -> dict[str, Any]:
    """Where the report was produced (no host name: reports get shared)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": usable,
        "memory_gib": None if mem_gib is None else round(mem_gib, 1),
    }


def _package_version() -> str:
    from oxidize_ml import __version__

    return __version__


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values, paths and enums made JSON-able and NaN/inf turned into None."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.name
    import numpy as np  # a runtime dependency; imported here to keep `import report` light

    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return str(obj)


# ---------------------------------------------------------------- running


def _load(section: Section) -> tuple[Any, str | None]:
    """(module, None) or (None, reason it is not available)."""
    try:
        module = importlib.import_module(section.module)
    except ModuleNotFoundError as exc:
        if exc.name and section.module.startswith(exc.name):
            return None, f"module {section.module} is not part of this build"
        raise
    for attr in ("run", "plot"):
        if not callable(getattr(module, attr, None)):
            return None, f"module {section.module} has no {attr}() function"
    return module, None


def _call_run(
    module: Any, *, seed: int, quick: bool, progress: ProgressFn | None, options: Mapping[str, Any]
) -> Any:
    params = inspect.signature(module.run).parameters
    kwargs: dict[str, Any] = {"seed": seed, "quick": quick, **options}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if progress is not None and ("progress" in params or accepts_any):
        kwargs["progress"] = progress
    unknown = [k for k in kwargs if k not in params and not accepts_any]
    if unknown:
        raise TypeError(f"{module.__name__}.run does not take {unknown}")
    return module.run(**kwargs)


def run_section(
    section: Section,
    *,
    seed: int,
    quick: bool,
    figures_dir: Path,
    progress: ProgressFn | None = None,
    options: Mapping[str, Any] | None = None,
) -> SectionOutcome:
    """Run one section and plot it; never raises for the section's own errors."""
    t0 = time.perf_counter()
    try:
        module, reason = _load(section)
        if module is None:
            return SectionOutcome(section, "not available", error=reason)
        avail = getattr(module, "available", None)
        if callable(avail):
            why = avail()
            if why:
                return SectionOutcome(section, "skipped", error=str(why))
        result = _call_run(module, seed=seed, quick=quick, progress=progress, options=options or {})
    except Exception as exc:  # noqa: BLE001 - recorded in the report; strict mode re-raises
        return SectionOutcome(
            section, "failed", wall_s=time.perf_counter() - t0, error=_describe(exc)
        )
    out = SectionOutcome(section, "ok", wall_s=time.perf_counter() - t0, result=result)
    if matplotlib_available():
        t1 = time.perf_counter()
        try:
            out.figures = [Path(p) for p in module.plot(result, figures_dir)]
        except Exception as exc:  # noqa: BLE001 - the numbers matter more than the figures
            out.figure_error = _describe(exc)
        out.plot_s = time.perf_counter() - t1
    else:
        out.figure_error = "matplotlib is not installed (pip install 'oxidize-ml[sim]')"
    return out


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def build_report(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    sections: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    strict: bool = False,
    console: Any = None,
) -> Path:
    """Run the evaluations and write ``out_dir/report.md`` and ``out_dir/results.json``.

    Parameters
    ----------
    out_dir
        Created if missing; figures go to ``out_dir/figures``.
    seed
        Passed to every section.
    quick
        Passed to every section (shorter runs).
    progress
        Show a rich progress bar.
    sections
        Keys of `SECTIONS` to run (default: all).
    options
        Extra keyword arguments per section key, e.g.
        ``{"congestion": {"scenarios": ["wired-clean"], "duration_s": 2.0}}``.
    strict
        Raise ``RuntimeError`` after writing the report if a section failed.
    console
        A ``rich.console.Console`` for the progress bar (default: a new one).

    Returns
    -------
    Path
        ``out_dir/report.md``.
    """
    return build_report_full(
        out_dir,
        seed=seed,
        quick=quick,
        progress=progress,
        sections=sections,
        options=options,
        strict=strict,
        console=console,
    ).report_path


def build_report_full(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    sections: Sequence[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    strict: bool = False,
    console: Any = None,
) -> Report:
    """`build_report`, returning the whole `Report` (for the CLI's summary tables)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    known = [s.key for s in SECTIONS]
    if sections is not None:
        unknown = [k for k in sections if k not in known]
        if unknown:
            raise ValueError(f"unknown report sections {unknown}; choose from {known}")
    chosen = [s for s in SECTIONS if sections is None or s.key in sections]
    opts = dict(options or {})
    unknown_opts = [k for k in opts if k not in known]
    if unknown_opts:
        raise ValueError(f"options for unknown sections {unknown_opts}; choose from {known}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures_dir = out / FIGURES_DIR
    figures_dir.mkdir(exist_ok=True)
    started = _dt.datetime.now(_dt.UTC)
    t0 = time.perf_counter()
    outcomes: list[SectionOutcome] = []
    if progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            tasks = {s.key: bar.add_task(s.title, total=None, start=False) for s in chosen}
            for s in chosen:
                task = tasks[s.key]
                bar.start_task(task)

                def tick(
                    done: int, total: int, label: str, _task: Any = task, _title: str = s.title
                ) -> None:
                    bar.update(
                        _task, completed=done, total=total, description=f"{_title}: {label}"[:44]
                    )

                o = run_section(
                    s,
                    seed=seed,
                    quick=quick,
                    figures_dir=figures_dir,
                    progress=tick,
                    options=opts.get(s.key),
                )
                outcomes.append(o)
                total = bar.tasks[task].total or 1
                bar.update(
                    task,
                    total=total,
                    completed=total,
                    description=f"{s.title}: {o.status} ({o.wall_s:.1f} s)"[:44],
                )
    else:
        for s in chosen:
            outcomes.append(
                run_section(
                    s, seed=seed, quick=quick, figures_dir=figures_dir, options=opts.get(s.key)
                )
            )
    wall = time.perf_counter() - t0
    meta = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "package": "oxidize-ml",
        "version": _package_version(),
        "seed": seed,
        "quick": quick,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 2),
        "machine": machine_info(),
        "command": f"oxidize-ml demo --seed {seed}{' --quick' if quick else ''}",
    }
    report = Report(out_dir=out, seed=seed, quick=quick, outcomes=outcomes, meta=meta, wall_s=wall)
    atomic_write_text(
        report.results_path,
        json.dumps(_results_json(report), indent=2, allow_nan=False) + "\n",
        mode=REPORT_FILE_MODE,
    )
    atomic_write_text(report.report_path, render_markdown(report), mode=REPORT_FILE_MODE)
    if strict and report.failed:
        raise RuntimeError(
            "report sections failed: "
            + "; ".join(f"{o.section.key}: {o.error}" for o in report.failed)
        )
    return report


# ---------------------------------------------------------------- output


def _results_json(report: Report) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for o in report.outcomes:
        entry: dict[str, Any] = {
            "title": o.section.title,
            "status": o.status,
            "wall_s": round(o.wall_s, 3),
            "plot_s": round(o.plot_s, 3),
            "error": o.error,
            "figures": [_rel(p, report.out_dir) for p in o.figures],
            "figure_error": o.figure_error,
            "headline": o.headline(),
        }
        if o.status == "ok":
            entry["result"] = jsonable(o.result.to_dict())
        sections[o.section.key] = entry
    return {"meta": jsonable(report.meta), "sections": sections}


def _rel(p: Path, root: Path) -> str:
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def render_markdown(report: Report) -> str:
    """The text of report.md."""
    m = report.meta
    mach = m["machine"]
    lines = [
        "# oxidize-ml evaluation report",
        "",
        (
            f"oxidize-ml {m['version']} · seed {report.seed} · "
            f"{'quick' if report.quick else 'full'} mode · generated {m['started_utc']} · "
            f"wall time {report.wall_s:.1f} s"
        ),
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores"
        + (f", {mach['memory_gib']} GiB" if mach.get("memory_gib") else "")
        + f", Python {mach['python']}, {mach['platform']}.",
        "",
        (
            f"Reproduce with `{m['command']}`; every number below is also in "
            f"[`{RESULTS_NAME}`]({RESULTS_NAME})."
        ),
        "",
        "## Summary: who wins where",
        "",
    ]
    any_line = False
    for o in report.outcomes:
        for h in o.headline():
            lines.append(f"- {h}")
            any_line = True
    for o in report.outcomes:
        if o.status != "ok":
            lines.append(f"- {o.section.title}: {o.status}" + (f" ({o.error})" if o.error else ""))
            any_line = True
    if not any_line:
        lines.append("- No section produced a summary.")
    lines += ["", "| section | status | run (s) | figures (s) |", "|---|---|---:|---:|"]
    for o in report.outcomes:
        lines.append(
            f"| [{o.section.title}](#{o.section.key}) | {o.status} | {o.wall_s:.1f} | "
            f"{o.plot_s:.1f} |"
        )
    for i, o in enumerate(report.outcomes, start=1):
        lines += ["", f'<a id="{o.section.key}"></a>', "", f"## {i}. {o.section.title}", ""]
        if o.section.intro:
            lines += [o.section.intro, ""]
        if o.status == "ok":
            lines.append(o.result.markdown().rstrip())
            for p in o.figures:
                rel = _rel(p, report.out_dir)
                lines += ["", f"![{Path(rel).stem}]({rel})"]
            if o.figure_error:
                lines += ["", f"Figures not drawn: {o.figure_error}"]
        elif o.status == "failed":
            lines.append(f"**Failed** after {o.wall_s:.1f} s: `{o.error}`")
        else:
            lines.append(f"Not run: {o.error}")
    lines.append("")
    return "\n".join(lines)
