"""Hostile and huge inputs of issue 10, as builders shared by the unit tests and the bench.

No warmcheck import: the same builders feed ``tests/test_hostile_badinputs.py`` (``"small"`` scale,
in process) and ``bench/hostile_bench.py`` (``"full"`` scale: the issue's sizes, the CLI in a child
process under ``ulimit -v``, peak RSS measured), and the bench can run them against an older checkout.
Inputs stay small on disk: sparse files (``truncate``/seek), gzip, YAML aliases.

Adding a builder (one surgical insertion per builder, keep to your own names)::

    @register(item=1, description="400 good records + a zero tail (sparse)",
              points={"small": 400, "full": 400}, codes=("WC004",))
    def build_event_zero_tail(dir: Path, scale: str = "small") -> Path:
        ...
        return path_to_analyse

The registry key is the function name without ``build_`` (``event_zero_tail``). Fields:

* ``item``: the issue 10 item number (1-12);
* ``description``: one line, what the input is (the bench prints it);
* ``points``: good points kept per scale: the sum over every run and series of the JSON's
  ``points`` + ``superseded`` (every recoverable point, as in ``tests/test_badinputs.py``);
  ``None`` for a scale means "not checked";
* ``codes``: finding codes that must appear (run or top-level findings), or ``None`` if the item is
  fixed by behaviour only (nothing new is reported);
* ``exit_code``: the expected exit code, or ``None`` for the documented rule: 2 if no point could
  be analysed, else 1 iff an error-severity finding, else 0;
* ``args``: extra CLI arguments after ``analyze PATH --format json`` (e.g. ``("-j", "2")``);
* ``env``: extra environment variables for the CLI;
* ``cwd``: ``None`` (the repo root / the caller's cwd) or a function of the built path returning
  the directory the CLI runs from (item 12: a config in a parent directory);
* ``scales``: the scales the builder supports (both by default).

Builders must be deterministic, write only under ``dir`` and return the path given to ``analyze``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from factories import record_bytes, scalar_event, version_event

__all__ = ["BUILDERS", "Builder", "register",
           "SCALES"]

SCALES = ("small", "full")
BuildFn = Callable[[Path, str], Path]


@dataclass(frozen=True)
class Builder:
    """One registered hostile input."""

    name: str
    build: BuildFn
    item: int
    description: str
    points: Mapping[str, int | None]
    codes: tuple[str, ...] | None
    exit_code: int | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Callable[[Path], Path] | None = None
    scales: tuple[str, ...] = SCALES


BUILDERS: dict[str, Builder] = {}


def register(*, item: int, description: str, points: Mapping[str, int | None],
             codes: tuple[str, ...] | None, exit_code: int | None = None,
             args: tuple[str, ...] = (), env: Mapping[str, str] | None = None,
             cwd: Callable[[Path], Path] | None = None,
             scales: tuple[str, ...] = SCALES) -> Callable[[BuildFn], BuildFn]:
    """Decorator: add ``build_<name>`` to ``BUILDERS`` under ``<name>`` (see the module docstring)."""

    def deco(fn: BuildFn) -> BuildFn:
        name = fn.__name__.removeprefix("build_")
        if name in BUILDERS:
            raise ValueError(f"hostile input {name!r} registered twice")
        BUILDERS[name] = Builder(name=name, build=fn, item=item, description=description,
                                 points=dict(points), codes=codes, exit_code=exit_code,
                                 args=tuple(args), env=dict(env or {}), cwd=cwd,
                                 scales=tuple(scales))
        return fn

    return deco


# --------------------------------------------------------------------------------------------
# Builders (one function each; see the module docstring).
# --------------------------------------------------------------------------------------------


def _event_records(steps: int) -> bytes:
    """The file_version record, then ``train/loss`` and ``train/lr`` per step: ``2 * steps`` points."""
    events = [version_event()]
    for s in range(steps):
        events.append(scalar_event("train/loss", s, 4.0 / (1.0 + 0.01 * s), 1_700_000_001.0 + 0.5 * s))
        events.append(scalar_event("train/lr", s, 1e-3 * min(1.0, (s + 1) / 20), 1_700_000_001.0 + 0.5 * s))
    return record_bytes(events)


EVENT_ZERO_TAIL = {"small": 12 << 20, "full": 2 << 30}  # zero bytes after the 400 good points


@register(item=1, description="400 good points + a zero tail (sparse: 12 MiB small, 2 GiB full; ~20 KB on disk)",
          points={"small": 400, "full": 400}, codes=("WC004",))
def build_event_zero_tail(dir: Path, scale: str = "small") -> Path:
    """One event file: 200 steps x (train/loss, train/lr), then ``EVENT_ZERO_TAIL[scale]`` zero bytes
    made with ``truncate`` (a crashed trainer or a preallocating file system). The zeros are one
    WC004 from the end of the last record to the end of the file."""
    path = dir / "zero_tail" / "events.out.tfevents.1700000000.host.1.0"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(_event_records(200))
        f.truncate(f.tell() + EVENT_ZERO_TAIL[scale])
    return path


EVENT_LONG_TAG = {"small": (2500, 64 << 10), "full": (25000, 256 << 10)}  # (steps, long tag bytes)


@register(item=2, description="one long tag among many records (small: 5k records + a 64 KiB tag; full: "
          "50k + 256 KiB, a 2.7 MB file)", points={"small": 5001, "full": 50001}, codes=None)
def build_event_long_tag(dir: Path, scale: str = "small") -> Path:
    """One event file: ``steps`` x (train/loss, train/lr), then one scalar whose tag is
    ``EVENT_LONG_TAG[scale][1]`` bytes long (grouping tags used to cost that length times every
    record)."""
    steps, tag_bytes = EVENT_LONG_TAG[scale]
    path = dir / "long_tag" / "events.out.tfevents.1700000000.host.1.0"
    path.parent.mkdir(parents=True, exist_ok=True)
    long_tag = ("long/" + "t" * tag_bytes)[:tag_bytes]
    path.write_bytes(_event_records(steps) + record_bytes([scalar_event(long_tag, steps, 0.5)]))
    return path


def _schedule_csv(path: Path, steps: int = 200, warmup: int = 20, diverge_at: int | None = None) -> None:
    """``step,lr,loss``: linear warmup then cosine, a smooth falling loss; from ``diverge_at`` the loss
    climbs 10% a step and is NaN after 40 steps of that (a diverged run)."""
    import math

    rows = ["step,lr,loss"]
    for s in range(steps):
        lr = 1e-3 * s / warmup if s < warmup else 1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * (s - warmup) / steps))
        loss = 2.0 + 4.0 * math.exp(-s / 60) + 0.01 * math.sin(s * 1.7)
        if diverge_at is not None and s >= diverge_at:
            loss = float("nan") if s >= diverge_at + 40 else loss * 1.1 ** (s - diverge_at)
        rows.append(f"{s},{lr!r},{loss!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


_WORKER_KILLER_HOOK = '''"""Issue 10 item 5 (written by tests/hostile_inputs.py): in a worker process only,
reading the run in a directory named d_kills_its_worker kills that process with SIGKILL, as the
out-of-memory killer would."""
import multiprocessing
import os
import signal

import warmcheck.pipeline as _pipeline

_original = _pipeline.read_runs


def _read_runs(spec, *args, **kwargs):
    parts = spec.path.replace(os.sep, "/").split("/")
    if multiprocessing.parent_process() is not None and "d_kills_its_worker" in parts:
        os.kill(os.getpid(), signal.SIGKILL)
    return _original(spec, *args, **kwargs)


_pipeline.read_runs = _read_runs
'''


@register(item=5, description="6 healthy runs + 1 whose worker is SIGKILLed (a sitecustomize in the cwd), -j 2",
          points={"small": 2400, "full": 2400}, codes=("WC024",), exit_code=1, args=("-j", "2"),
          env={"PYTHONPATH": "."}, cwd=lambda p: p.parent / "hook")
def build_worker_killer(dir: Path, scale: str = "small") -> Path:
    """``runs/`` of 7 CSV runs; the 4th (``d_kills_its_worker``) kills any worker process that reads it.

    The kill comes from ``hook/sitecustomize.py`` (imported at start-up by the CLI and its workers
    when run from ``hook/`` with ``PYTHONPATH=.``); only worker processes die, so ``-j 1`` is not
    affected. The 6 healthy runs hold 2 series x 200 points each.
    """
    runs = dir / "runs"
    for name in ("a_run", "b_run", "c_run", "d_kills_its_worker", "e_run", "f_run", "g_run"):
        _schedule_csv(runs / name / "log.csv")
    (dir / "hook").mkdir(parents=True, exist_ok=True)
    (dir / "hook" / "sitecustomize.py").write_text(_WORKER_KILLER_HOOK)
    return runs


@register(item=12, description="a diverged run; warmcheck.toml (fail-on never, ignore WC4) in a parent of the cwd",
          points={"small": 800, "full": 800}, codes=("WC401",), exit_code=1,
          cwd=lambda p: p.parents[1] / "work")
def build_parent_config_trap(dir: Path, scale: str = "small") -> Path:
    """``shared/warmcheck.toml`` switches the gate off; the CLI runs in ``shared/work/`` (no ``.git``, no
    project file, outside ``$HOME``), so the search must not reach it. The run diverges at 300 (NaN
    from 340): 2 series x 400 points."""
    shared = dir / "shared"
    (shared / "work").mkdir(parents=True, exist_ok=True)
    (shared / "warmcheck.toml").write_text('fail-on = "never"\nignore = ["WC4"]\n')
    run = shared / "runs" / "diverged"
    _schedule_csv(run / "log.csv", steps=400, warmup=40, diverge_at=300)
    return run


# Item 10/11 (output helper): names that are data. Each string is a JSONL key and a CSV header
# (``<name>/loss``) and, as far as a file system allows, a run directory's name.
HOSTILE_NAMES: dict[str, str] = {
    "gh_command": "x\n::error file=README.md::injected",
    "gh_legacy": "##[error]injected",
    "gh_cr": "y\r::warning::injected",
    "ansi": "\x1b[31mred\x1b[0m\x1b[2J",
    "osc": "\x1b]0;title\x07\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\",
    "c1": "nel\x85csi\x9b31m",
    "bidi": "\u202eevil\u2066x\u2069\u200f",
    "nul": "nul\x00byte",
    "surrogate": "lone\udc80\ud800",
    "html": "<img src=x onerror=alert(1)>&amp;<script>",
    "md_link": "[click](http://evil.example) ![img](http://evil.example/x.png)",
    "md_code": "`tick` | pipe ``two``",
    "mathtext": "m$\\foo{$",
    "long": "L" * 250,
    "xml_illegal": "ctl\x01\x0b\x1f\ufffe",
    "separators": "a/b",
}
HOSTILE_STEPS = 60  # per series; the loss is NaN from step 50 (WC401 with the hostile tag)


def _dir_name(name: str) -> bytes:
    """``name`` as a directory name (at most 240 bytes): ``/`` and NUL cannot be in one; lone surrogates
    only as the bytes ``os.fsdecode`` maps back to them (``\\udc80`` -> byte 0x80), else replaced."""
    import os

    text = name.replace("/", "_").replace("\x00", "0")
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:
        raw = os.fsencode(text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) + b"\xff"
    return raw[:240]


@register(item=10, description="16 hostile names (CI commands, ANSI/OSC, bidi, NUL, surrogates, HTML, markdown, "
          "mathtext, 250 chars) as JSONL keys, CSV headers and run directories",
          points={"small": 2 * len(HOSTILE_NAMES) * 2 * HOSTILE_STEPS,
                  "full": 2 * len(HOSTILE_NAMES) * 2 * HOSTILE_STEPS},
          codes=("WC401",), exit_code=1, args=("--loss-tag", "*/loss"))
def build_hostile_names(dir: Path, scale: str = "small") -> Path:
    """``runs/`` with, per hostile name, a JSONL run and a CSV run (2 series x 60 points each) whose loss
    key is ``<name>/loss`` (NaN from step 50) and whose directory is named after it (``j_<name>``,
    ``c_<name>``); ``a/b`` gives ``j_a/b`` and ``j_a_b``, which clean to the same plot file name."""
    import csv
    import json
    import os

    runs = dir / "runs"
    for key, name in HOSTILE_NAMES.items():
        loss = [4.0 - 0.01 * s if s < 50 else float("nan") for s in range(HOSTILE_STEPS)]
        lr = [min(s / 10, 1.0) * 1e-3 for s in range(HOSTILE_STEPS)]
        jsonl = "".join(json.dumps({"step": s, "lr": lr[s], f"{name}/loss": loss[s]}) + "\n"
                        for s in range(HOSTILE_STEPS))  # json escapes NUL and surrogates (\u0000, \udc80)
        if key == "separators":  # runs/j_a/b and runs/j_a_b, both JSONL: the same cleaned plot file name
            for sep in (runs / "j_a" / "b", runs / "j_a_b"):
                sep.mkdir(parents=True, exist_ok=True)
                (sep / "log.jsonl").write_text(jsonl, encoding="ascii")
            continue
        jsonl_dir = os.path.join(os.fsencode(runs), b"j_" + _dir_name(name))
        csv_dir = os.path.join(os.fsencode(runs), b"c_" + _dir_name(name))
        for d in (jsonl_dir, csv_dir):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(jsonl_dir, b"log.jsonl"), "w", encoding="ascii") as f:
            f.write(jsonl)
        with open(os.path.join(csv_dir, b"log.csv"), "w", newline="", encoding="utf-8",
                  errors="surrogateescape") as f:
            w = csv.writer(f)
            w.writerow(["step", "lr", f"{name}/loss".replace("\ud800", "\udcff")])  # \udcXX: a non-UTF-8 byte
            for s in range(HOSTILE_STEPS):
                w.writerow([s, repr(lr[s]), "nan" if loss[s] != loss[s] else repr(loss[s])])
    return runs


def _hparams_run(run: Path, yaml_text: str, steps: int = 100) -> None:
    import math

    run.mkdir(parents=True, exist_ok=True)
    (run / "hparams.yaml").write_text(yaml_text)
    rows = [f"{s},{1e-3 * min(1.0, (s + 1) / 10) * (0.5 + 0.5 * math.cos(math.pi * s / steps))!r},"
            f"{2.0 + 3.0 * math.exp(-s / 30)!r}" for s in range(steps)]
    (run / "metrics.csv").write_text("step,lr,loss\n" + "\n".join(rows) + "\n")


@register(item=3, description="hparams.yaml beside two CSV runs: mappings of aliases nested 9 levels, "
          "9 wide (900 bytes; small: 5 levels) and a self-referential alias",
          points={"small": 400, "full": 400}, codes=("WC022",))
def build_yaml_aliases(dir: Path, scale: str = "small") -> Path:
    """Two Lightning-style runs (``metrics.csv`` with 2 series x 100 points, ``hparams.yaml``): one YAML
    holds a billion-laughs alias tree (9^9 leaves at full scale), the other ``a: &a {b: *a}``. Every
    point must be kept and each config reported as unreadable data (WC022), not an internal error."""
    levels = 9 if scale == "full" else 5
    lines = ["a0: &a0 {" + ", ".join(f"k{i}: lol" for i in range(9)) + "}"]
    lines += [f"a{k}: &a{k} {{" + ", ".join(f"k{i}: *a{k - 1}" for i in range(9)) + "}"
              for k in range(1, levels + 1)]
    root = dir / "yaml_aliases"
    _hparams_run(root / "alias_bomb", "\n".join(lines) + "\n")
    _hparams_run(root / "self_reference", "a: &a {b: *a}\n")
    return root


@register(item=4, description="metrics.csv.gz: 200 good rows, then blank lines to 10 GiB decompressed "
          "(10 MB on disk; small: 8 MiB)", points={"small": 400, "full": 400}, codes=None)
def build_csv_gz_bomb(dir: Path, scale: str = "small") -> Path:
    """A gzip bomb that is a valid CSV: ``step,lr,loss`` with 200 rows (2 x 200 good points), then
    newlines up to 10 GiB (8 MiB small) decompressed. Written as gzip members of one pre-compressed
    64 MiB block of newlines, so building it costs a single compression."""
    import gzip
    import math

    total = (10 << 30) if scale == "full" else (8 << 20)
    block = min(total, 64 << 20)
    rows = [f"{s},{1e-3 * min(1.0, (s + 1) / 20)!r},{2.0 + 3.0 * math.exp(-s / 50)!r}" for s in range(200)]
    path = dir / "gz_bomb" / "metrics.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = ("step,lr,loss\n" + "\n".join(rows) + "\n").encode()
    member = gzip.compress(b"\n" * block, compresslevel=9, mtime=0)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(head, mtime=0))
        for _ in range(total // block):
            fh.write(member)
    return path.parent


@register(item=4, description="trainer_state.json of 10M log_history entries, HF's indent=2 (529 MB; small: 2,000)",
          points={"small": 2_000, "full": 10_000_000}, codes=None)
def build_huge_trainer_state(dir: Path, scale: str = "small") -> Path:
    """``{"global_step": N, ..., "log_history": [{"loss": x, "step": s}, ...]}`` as the Trainer writes
    it (``json.dumps(indent=2, sort_keys=True)``): one loss point per entry."""
    n = 10_000_000 if scale == "full" else 2_000
    path = dir / "huge_state" / "trainer_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f'{{\n  "best_metric": null,\n  "epoch": 1.0,\n  "global_step": {n},\n  "log_history": [\n')
        chunk: list[str] = []
        for s in range(1, n + 1):
            loss = 2.0 + 1.0 / s + (s % 97) * 1e-4
            chunk.append(f'    {{\n      "loss": {loss:.4f},\n      "step": {s}\n    }}')
            if len(chunk) == 100_000:
                fh.write(",\n".join(chunk) + (",\n" if s < n else "\n"))
                chunk = []
        if chunk:
            fh.write(",\n".join(chunk) + "\n")
        fh.write(f'  ],\n  "logging_steps": 1,\n  "max_steps": {n}\n}}\n')
    return path.parent


@register(item=6, description="wide CSV: a step column and 999,999 metric columns x 3 rows "
          "(14 MB; small: 39,999 columns); every cell is a point",
          points={"small": 119_997, "full": 2_999_997}, codes=())
def build_wide_csv(dir: Path, scale: str = "small") -> Path:
    """``step,m0,...`` with 3 rows; every cell a number. A CSV this wide is read as one block
    (``readers/_csvwide.py``): every column a series, 3 points each, in bounded memory."""
    cols = 999_999 if scale == "full" else 39_999
    path = dir / "wide" / "metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii") as fh:
        fh.write("step," + ",".join(f"m{i}" for i in range(cols)) + "\n")
        for s in range(3):
            fh.write(f"{s}," + ",".join(str((i + s) % 10) for i in range(cols)) + "\n")
    return path.parent


@register(item=7, description="trainer_state.json: 100 log_history entries, one corrupt byte in entry 50",
          points={"small": 198, "full": 198}, codes=("WC014",))
def build_trainer_state_corrupt_entry(dir: Path, scale: str = "small") -> Path:
    """100 entries of ``loss``, ``learning_rate``, ``step`` (2 points each); the ``:`` after ``"loss"`` in
    entry 50 becomes ``!``: 99 entries (198 points) are recoverable."""
    import json

    entries = [{"learning_rate": 1e-4 * min(1.0, s / 10), "loss": 2.0 + 1.0 / s, "step": s} for s in range(1, 101)]
    text = json.dumps({"global_step": 100, "log_history": entries, "max_steps": 100}, indent=2, sort_keys=True)
    at = 0
    for _ in range(50):
        at = text.index('"loss":', at + 1)
    text = text[:at + 6] + "!" + text[at + 7:]
    path = dir / "corrupt_entry" / "trainer_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path.parent


@register(item=8, description='JSONL: "train/loss" beside {"train": {"loss": ...}} on every line (100 lines); '
          "both kept (the nested one as train/loss#2), WC015", points={"small": 300, "full": 300}, codes=("WC015",))
def build_jsonl_key_collision(dir: Path, scale: str = "small") -> Path:
    """100 lines ``{"step", "lr", "train/loss", "train": {"loss"}}`` with different values for the two
    losses: 3 x 100 points, none may be lost silently (both kept under distinct names, or reported)."""
    import json

    lines = [json.dumps({"step": s, "lr": 1e-4, "train/loss": 2.0 + 1.0 / (s + 1),
                         "train": {"loss": 3.0 + 1.0 / (s + 1)}}) for s in range(100)]
    path = dir / "key_collision" / "log.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path.parent


@register(item=11, description="--plot-dir over runs named 250 characters, m$\\foo{$, a/b beside a_b, and values "
          "near 1e308", points={"small": 960, "full": 960}, codes=None, args=("--plot-dir", "plots"),
          cwd=lambda p: p.parent)
def build_plot_names(dir: Path, scale: str = "small") -> Path:
    """``runs/`` of 4 CSV runs (2 series x 120 points each) whose names break naive plot file names
    (too long, matplotlib mathtext, ``a/b`` vs ``a_b``) and whose loss sits near the float64 maximum
    (squares and differences overflow: no RuntimeWarning may reach stderr). The CLI runs from the
    parent of ``runs/`` and writes its PNGs into ``plots/`` there."""
    runs = dir / "plot_names" / "runs"
    for name in ("L" * 250, "m$\\foo{$", "a/b", "a_b"):
        rows = [f"{s},{1e-3 * min(1.0, (s + 1) / 10)!r},{1.7e308 * (1 - s / 1000) if s % 7 else 1e300!r}"
                for s in range(120)]
        (runs / name).mkdir(parents=True, exist_ok=True)
        (runs / name / "log.csv").write_text("step,lr,loss\n" + "\n".join(rows) + "\n")
    return runs
