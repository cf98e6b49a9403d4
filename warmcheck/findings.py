"""Findings, severities and the registry of rules.

Every code warmcheck can emit lives in :data:`RULES`. Codes come in fixed families so that CI
gates built on them stay stable: ``WC0xx`` input and data integrity, ``WC1xx`` schedule and warmup
as observed, ``WC2xx`` warmup against the configuration, ``WC3xx`` loss and grad-norm spikes,
``WC4xx`` divergence and non-finite values, ``WC5xx`` comparison with a baseline
(``warmcheck compare``). Codes are added, never renamed or reused.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

DetailValue = Union[int, float, str, bool, None, list, dict]  # noqa: UP007  (a runtime alias on 3.10)


class Severity(str, enum.Enum):
    """How bad a finding is; ordered ``INFO < WARNING < ERROR``."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Numeric order used for comparisons and the exit policy."""
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True, slots=True)
class Rule:
    """One finding code: what it detects, its default severity and its documentation."""

    code: str
    slug: str
    summary: str
    severity: Severity
    doc: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One immutable observation about one run.

    ``step``/``step_end`` play the role line numbers play for a linter. ``details`` carries the
    measured values and the threshold that fired, so tests and machines never parse ``message``.
    """

    code: str
    severity: Severity
    message: str
    run: str = ""
    tag: str | None = None
    step: int | None = None
    step_end: int | None = None
    source: str | None = None
    line: int | None = None
    details: Mapping[str, DetailValue] = field(default_factory=dict)

    def sort_key(self) -> tuple[str, str, int, int, str, str]:
        """Deterministic report order: run, tag, step, code (pyflakes sorts by line)."""
        step = self.step if self.step is not None else -(2**63)
        offset = self.details.get("offset")
        off = offset if isinstance(offset, int) else -1
        return (self.run, self.tag or "", step, off, self.code, self.message)


def make(code: str, message: str, **kwargs: object) -> Finding:
    """Build a :class:`Finding` with the registry's default severity for ``code``."""
    rule = RULES[code]
    return Finding(code=code, severity=rule.severity, message=message, **kwargs)  # type: ignore[arg-type]


def _rule(code: str, slug: str, severity: Severity, summary: str, doc: str) -> Rule:
    return Rule(code=code, slug=slug, summary=summary, severity=severity, doc=doc.strip())


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

_ALL_RULES = (
    # ---- WC0xx: input and data integrity -------------------------------------------------------
    _rule("WC001", "unreadable-file", _E, "A log file could not be opened or read.",
          """
What it detects: a log file that exists but cannot be read (permission denied, I/O error), a damaged
SQLite store, or one run whose metric history an MLflow tracking server failed to send (the other runs
are read; the run gets no points rather than half of them).
Why it matters: the analysis is missing whatever that file or run held.
What to do: fix the permissions or copy the file again, or re-run when the server answers; the finding
names the file or run and the error.
"""),
    _rule("WC002", "no-data", _E, "A run or log file holds no scalar data.",
          """
What it detects: an empty file (0 bytes), an event file with only its version record, a CSV with a
header and no rows, a file that is not a training log at all.
Why it matters: a CI gate must not pass a run it could not see.
What to do: check that the writer flushed and closed the file; point warmcheck at the right path.
"""),
    _rule("WC003", "incomplete-tail", _W, "The file ends in an incomplete record or line.",
          """
What it detects: a truncated last TFRecord (cut in its header, payload or footer), a CSV/JSONL
line without its newline, a trainer_state.json cut mid-write.
Why it matters: the writer is still running or crashed; every complete record before the cut was
kept, the incomplete tail was not.
What to do: nothing if the run is live; otherwise the run crashed at about the last step reported.
"""),
    _rule("WC004", "corrupt-record", _W, "Damaged records were skipped; the rest of the file was read.",
          """
What it detects: a TFRecord whose length or data CRC does not match, a record whose payload is not
a valid Event, an absurd record length, zero bytes (a tail or a run between records), a record over
the 64 MiB read whole (CRC-checked in blocks, not decoded); warmcheck skips exactly the damaged
bytes, resynchronises and keeps every later valid record. The finding names the file, the byte
offset, the record index and how many bytes were skipped.
Why it matters: a flipped bit must never become a value; points in the skipped records are lost.
What to do: copy the file again from its origin if you can; otherwise treat the named steps as unknown.
"""),
    _rule("WC005", "symlink-skipped", _W, "A dangling or looping symbolic link was skipped.",
          """
What it detects: a link whose target does not exist, or a link that leads back into a directory
already being searched.
Why it matters: a dangling link named like an event file usually means a log was moved or deleted.
What to do: remove the link or restore its target.
"""),
    _rule("WC006", "step-overlap", _W, "The same step was written more than once (restart or resume).",
          """
What it detects: a run restarted or resumed from a checkpoint writes steps it had already logged,
in the same file (the step goes back) or in a second event file.
Why it matters: two values exist for each repeated step. warmcheck keeps every point, analyses the
later write (later file, later record) and reports how many points it superseded.
What to do: usually nothing; check that the resume point is where you expected.
"""),
    _rule("WC007", "steps-out-of-order", _W, "Steps are not monotonic.",
          """
What it detects: steps that decrease without being repeated (asynchronous or multi-worker writers).
Why it matters: readers that assume order (TensorBoard's purge) lose points; warmcheck sorts by step.
What to do: check the writer; nothing was dropped.
"""),
    _rule("WC008", "negative-steps", _W, "Some points have negative steps.",
          """
What it detects: points logged at steps below zero (pre-training evaluation, or an integer overflow).
Why it matters: step arithmetic such as warmup ends assumes a non-negative step axis.
What to do: check the logger's step counter.
"""),
    _rule("WC009", "huge-steps", _I, "Steps above 2^53 cannot be represented exactly as floats.",
          """
What it detects: step values above 2^53. warmcheck keeps them as exact 64-bit integers, but tools
that convert steps to float merge neighbouring steps.
Why it matters: usually a corrupted step counter.
What to do: check the logger's step counter.
"""),
    _rule("WC010", "wall-time-backwards", _I, "wall_time decreases while steps increase.",
          """
What it detects: the clock went back between two records (NTP correction, a restart on another host).
Why it matters: time-based rates (steps per second) computed from wall_time go negative.
What to do: nothing for warmup or loss analysis, which use steps.
"""),
    _rule("WC011", "odd-tag", _W, "A tag or column name is empty or not valid UTF-8.",
          """
What it detects: an empty tag, or a tag whose bytes are not valid UTF-8 (decoded with U+FFFD).
Why it matters: strict readers reject the whole event; role detection cannot match such names.
What to do: fix the logging call; use --lr-tag/--loss-tag to pick a series explicitly.
"""),
    _rule("WC012", "format-detected", _I, "The file was read with a non-default dialect.",
          """
What it detects: a CSV with a ';' or tab delimiter, decimal commas, gzip compression without a
.gz name, or a trainer_state.json with bare NaN/Infinity tokens.
Why it matters: naive readers turn such files into one text column or fail; warmcheck says which
dialect it used so the numbers can be checked.
What to do: nothing.
"""),
    _rule("WC013", "encoding-replaced", _W, "Bytes that are not valid UTF-8 were replaced.",
          """
What it detects: a text log (CSV, JSONL) with bytes that are not UTF-8; warmcheck decodes it with
replacement characters and names the first bad byte offset.
Why it matters: column names with replaced characters may not match role rules.
What to do: write logs as UTF-8.
"""),
    _rule("WC014", "unparsable-values", _W, "Cells or lines could not be parsed and were skipped.",
          """
What it detects: CSV cells that are not numbers, rows whose step is not an integer, JSONL lines that
are not JSON objects. Each is counted per column with the first line numbers; the rest of the column
stays numeric.
Why it matters: the skipped points are missing from the analysis.
What to do: check the writer for the lines named.
"""),
    _rule("WC015", "duplicate-column", _W, "Two columns share a name.",
          """
What it detects: a CSV header with the same name twice; both are kept, the second as ``name#2``.
Also a JSONL line or trainer_state entry with a key holding '/' beside a nested object that flattens
to the same name (``"train/loss"`` and ``{"train": {"loss": ...}}``): both values are kept, the later
one in the record as ``name#2``; the message counts the records.
Why it matters: silently picking one of them can analyse the wrong metric.
What to do: rename one of the columns or keys in the logger.
"""),
    _rule("WC016", "ragged-rows", _W, "Rows have more fields than the header.",
          """
What it detects: a CSV whose later rows have extra fields (a metric added mid-run by an appending
logger). The extra columns are kept as ``col_<n>``.
Why it matters: naive readers crash or shift columns.
What to do: nothing; name the column in the logger to analyse it.
"""),
    _rule("WC017", "no-step-column", _W, "No step column was found; row numbers are used as steps.",
          """
What it detects: a CSV or JSONL log without a step column (step, global_step, iteration, iter, it, ...).
Why it matters: if rows are not one optimizer step apart, every step reported is off.
What to do: log the global step next to each value.
"""),
    _rule("WC018", "nul-bytes", _W, "NUL bytes at the end of a text log were ignored.",
          """
What it detects: a run of NUL bytes at the end of a CSV or JSONL file, typical of a machine crash with
delayed allocation.
Why it matters: the writer did not finish; points after the crash are lost.
What to do: treat the run as crashed after the last step reported.
"""),
    _rule("WC019", "missing-role", _W, "No learning-rate or no loss series was recognised.",
          """
What it detects: a run with data but without a series whose name matches the learning-rate or loss
rules (see the README's role table).
Why it matters: the warmup and instability analyses need them.
What to do: pass --lr-tag / --loss-tag (or set lr-tags / loss-tags in [tool.warmcheck]).
"""),
    _rule("WC020", "integer-scalars", _I, "Integer-typed tensor scalars were converted to floats.",
          """
What it detects: TF2 tensor summaries with an integer dtype (int32, int64, ...).
Why it matters: some readers drop or crash on them; warmcheck converts them and says so.
What to do: nothing.
"""),
    _rule("WC021", "internal-error", _E, "warmcheck failed on this input (a bug in warmcheck).",
          """
What it detects: an unexpected exception while reading or analysing one run. The other runs are
still analysed; the finding carries the exception so it can be reported.
Why it matters: the run was not (fully) analysed.
What to do: please report it with the file that triggered it; run with -v for the traceback.
"""),
    _rule("WC022", "config-unreadable", _I, "A configuration file beside the run could not be parsed.",
          """
What it detects: an hparams.yaml / config.yaml / config.json / args.json next to the run that is not
valid YAML or JSON (or uses YAML tags that name Python objects).
Why it matters: its warmup settings were not used for the warmup audit.
What to do: pass --warmup-steps / --warmup-ratio, or fix the file.
"""),
    _rule("WC023", "not-joined", _I, "Logs that lie together were read as separate runs: they differ.",
          """
What it detects: an event directory under an HF output directory whose values differ from the
output directory's trainer_state.json at the steps both logged (another training written into the
same output directory), or an evaluation log (eval.csv) whose steps do not fit the training log
beside it. Such files would otherwise be joined into one run.
Why it matters: joining them would mix two trainings, or place evaluations at wrong steps.
What to do: nothing if the output directory holds several trainings; otherwise check the files named.
"""),
    _rule("WC024", "worker-died", _E, "The worker process analysing this run died twice; it was not analysed.",
          """
What it detects: with -j N, a worker process was killed while it analysed this run (the kernel's
out-of-memory killer, kill -9, a crash in a C extension), and the process it was retried in, alone,
died too. The message names the signal (signal 9, SIGKILL, is what the OOM killer sends) or the
exit code. The other runs are analysed and reported as usual.
Why it matters: nothing is known about this run; a gate must not pass it as clean.
What to do: check the kernel log (dmesg) for an OOM kill and the run's files for their size; run
warmcheck on this run alone (-j 1 -v) to see where it stops.
"""),
    _rule("WC025", "file-too-large", _E, "A text log is larger than the size limit and was not read.",
          """
What it detects: a CSV, JSONL or trainer_state.json file larger than --max-file-size (default 4 GiB),
or a compressed one (.gz) whose text is larger than --max-decompressed-size (default 16 GiB; a gzip
bomb: 10 MB that inflate to 10 GiB). The message names the limit and the size seen.
Why it matters: the file was not read, so the run is missing whatever it held; the limits keep one
hostile or runaway file from taking the memory and time of the whole check.
What to do: if the file is a real log, raise the limit (max-file-size / max-decompressed-size in
[tool.warmcheck], or the flags; sizes such as "8GiB" are accepted); otherwise find what wrote it.
"""),
    _rule("WC026", "too-many-columns", _W, "A CSV has more columns than are read from one file.",
          """
What it detects: a CSV with more than 1,048,576 columns, or more cells than 16,777,216 (columns x rows).
A CSV wider than 4,096 columns is read as one block of numbers (every cell, ~300 bytes a column besides
its cells); past either limit, the step column, every column named like a metric (loss, lr,
learning_rate, grad_norm, accuracy, epoch, ...) and then the first columns are read, as many as fit,
and the message counts the columns not read and names the first of them.
Why it matters: each numeric column is a series; past these limits the series would not fit in the
memory warmcheck promises to stay within (500 MB), and no report could show them.
What to do: log per-layer or per-parameter metrics to a separate file, or select the columns
that matter before running warmcheck.
"""),
    _rule("WC027", "reader-not-installed", _E, "A run is in a format whose optional reader is not installed.",
          """
What it detects: a W&B run file (``.wandb``) or an MLflow store or server, while the optional package
that reads it is missing; the message names the extra to install (``pip install "warmcheck[wandb]"``,
``"warmcheck[mlflow]"``).
Why it matters: the run was found but not read: its schedule, spikes and divergence are unknown, and a
gate must not pass what it could not see.
What to do: install the extra the message names, or leave such runs out of the paths given.
"""),
    # ---- WC1xx: schedule and warmup as observed ------------------------------------------------
    _rule("WC101", "no-warmup", _I, "The learning rate starts at its peak: there is no warmup.",
          """
What it detects: the first logged update already runs at the highest LR of the run's first phase.
Why it matters: fine for fine-tuning at a constant LR; for training from scratch with Adam, a missing
warmup is a classic cause of early loss spikes and divergence.
Example: a LambdaLR that was never stepped during the first epoch, or a warmup set to 0.
What to do: add a warmup (a few hundred to a few thousand updates for transformers) if the run is unstable.
"""),
    _rule("WC102", "warmup-never-ends", _W, "The learning rate is still rising when the log ends.",
          """
What it detects: the LR increases (or climbs in a staircase) up to the last logged step.
Why it matters: the run never trained at its peak LR; usually the warmup was computed from a different
total (warmup >= run length), or the scheduler was stepped per epoch.
What to do: check warmup_steps against the number of optimizer updates the run really makes.
"""),
    _rule("WC103", "peak-not-reached", _W, "The learning rate never reaches the peak it was heading for.",
          """
What it detects: the highest LR is below the configured peak (--peak-lr), or the linear ramp turns into
the decay before reaching where it was heading (timm's warmup_prefix=False, OneCycleLR with a
non-integer pct_start x total, a decay that starts on the same step the ramp ends).
Why it matters: the run trained at a lower LR than configured; comparisons between runs are off.
What to do: the finding gives the shortfall; fix the scheduler option named in the message.
"""),
    _rule("WC104", "lr-rises-after-peak", _W, "The learning rate rises again after it started to decay.",
          """
What it detects: after the warmup peak and some decay, the LR increases by more than 1% of the peak.
Why it matters: a restart (warm restarts, a second warmup after a resume) or a bug such as
CosineAnnealingLR run past T_max, which climbs back up.
What to do: if it was not intended, check T_max / total steps and the resume logic.
"""),
    _rule("WC105", "lr-staircase", _W, "The warmup is a staircase of equal plateaus.",
          """
What it detects: the LR holds for the same number of steps, then jumps, repeatedly: a per-step
schedule stepped once per epoch (Lightning's default interval='epoch', a loop calling
scheduler.step() per epoch). The finding gives the plateau length in steps.
Why it matters: warmup then lasts W epochs instead of W updates, and the LR may be 0 for the whole
first epoch.
What to do: step the scheduler every optimizer update (Lightning: "interval": "step").
"""),
    _rule("WC106", "lr-collapse", _W, "The learning rate fell to zero long before the end of the run.",
          """
What it detects: the LR reaches ~0 and stays there for the last part of the run.
Why it matters: the updates after that point do nothing; the schedule was sized for fewer steps than the
run made (total steps mismatch, a schedule stepped per micro-batch or per process).
What to do: size the scheduler with the number of optimizer updates the run really makes.
"""),
    _rule("WC107", "resume-discontinuity", _W, "The learning rate jumps where a resumed run's log begins.",
          """
What it detects: at the first step of a later event file (a resume), the LR differs from the value just
before by far more than the schedule's step-to-step change.
Why it matters: the scheduler state was not restored, or was restored with a different total/warmup.
What to do: restore the scheduler's state dict together with the optimizer's.
"""),
    _rule("WC108", "decay-unrecognised", _I, "The decay after the peak matches none of the known shapes.",
          """
What it detects: constant, linear, cosine, inverse-sqrt, exponential, step and WSD decays all fit badly.
Why it matters: nothing by itself; warmup findings are unaffected.
What to do: nothing, or check for a custom schedule or a plateau scheduler.
"""),
    _rule("WC109", "idle-first-updates", _I, "The first updates ran at LR 0 or held at the starting value.",
          """
What it detects: the LR is 0 for the first update(s) (HF, Megatron, fairseq: one update wasted) or
holds its starting value for two updates (DeepSpeed WarmupLR).
Why it matters: those updates do not train; step 1 may equal step 0.
What to do: nothing, unless the count is larger than the framework's convention.
"""),
    _rule("WC110", "repeated-lr-in-warmup", _I, "The learning rate repeated during the warmup ramp.",
          """
What it detects: consecutive steps with the same LR in an otherwise rising ramp: optimizer steps skipped
(fp16 loss-scale overflow) while the step counter advanced.
Why it matters: warmup ends that many steps late.
What to do: nothing if the loss scale recovered; the warmup audit accounts for the skipped steps.
"""),
    _rule("WC111", "lr-excursion", _W, "The learning rate left its schedule for a few steps and came back.",
          """
What it detects: a short run of logged steps (at most 1/20 of the log, 50 at most) where the LR is at
least 2x above or below the curve around it, by a consistent factor, after which it returns to where
the schedule was heading. The finding gives the steps, the factor and the LR before, inside and after.
Why it matters: those updates ran at a very different LR (a hand-set LR, a warm restart undone by the
next scheduler step, an LR zeroed for a few steps); a loss spike right after is usually its effect.
The excursion is left out of the warmup and decay inference: the warmup ends at the sustained peak.
What to do: if it was not intended, look for code that sets param_group["lr"] outside the scheduler.
"""),
    # ---- WC2xx: warmup against the configuration -----------------------------------------------
    _rule("WC201", "warmup-mismatch", _E, "The observed warmup disagrees with the configured one.",
          """
What it detects: the number of updates that ran below the peak differs from the configured
warmup_steps, or from warmup_ratio x total under the framework's rounding, beyond what any known
convention explains. The message names the observed value, the configured value and the formula
that produces the observation (another rounding, a ratio applied to micro-batches, a scheduler
stepped per micro-batch or per process, a ratio of the logged run length).
Why it matters: the run did not warm up the way its configuration, paper or README says.
Example: warmup ends at step 27 (27 updates below peak = int(0.2 x 135)); configured warmup_steps=20 disagrees.
What to do: fix whichever side is wrong: the configuration, the code that computes the warmup, or the text.
"""),
    _rule("WC202", "warmup-consistent", _I, "The observed warmup matches the configuration.",
          """
What it detects: the configured warmup explains the observed one; the finding names the rule and
convention (int/ceil rounding, W or W-1 or W+1 first-peak conventions, logging offset).
Why it matters: evidence for a CI log that the warmup was checked.
What to do: nothing.
"""),
    _rule("WC203", "total-steps-mismatch", _E, "The run's length disagrees with the configured total steps.",
          """
What it detects: the number of optimizer updates logged differs from --total-steps (or
--epochs x --steps-per-epoch) under every convention for updates per epoch.
Why it matters: ratio-based warmups and decay horizons are computed from the total.
What to do: check max_steps / epochs and gradient accumulation.
"""),
    _rule("WC204", "peak-lr-mismatch", _E, "The peak learning rate exceeds the configured one.",
          """
What it detects: the highest LR logged is above --peak-lr (or peak-lr in the configuration).
Why it matters: the run trained hotter than configured (a scheduler max_lr overriding the optimizer LR,
a param group scale).
What to do: check the scheduler's max LR and the optimizer's LR.
"""),
    _rule("WC205", "total-steps-consistent", _I,
          "The run's length matches the configured total under a named convention.",
          """
What it detects: the logged number of updates equals epochs x updates per epoch under one of the
conventions (ceil or floor of batches / gradient accumulation, or batches without accumulation).
Why it matters: it names which convention the framework used.
What to do: nothing.
"""),
    _rule("WC206", "warmup-unverifiable", _I, "A warmup is configured but the LR log cannot show where it ended.",
          """
What it detects: the LR never reaches its peak (see WC102/WC105), is not logged, or already sits at
its peak at the first logged step.
Why it matters: the configured warmup could not be checked.
What to do: log the LR every step (or every few steps) from step 0.
"""),
    # ---- WC3xx: loss and gradient-norm spikes ----------------------------------------------------
    _rule("WC301", "loss-spike", _W, "The loss spiked, placed in its learning-rate phase.",
          """
What it detects: a loss episode well above what the trailing window predicts: at least `min-ratio`
(default 1.3) times and `z` (default 4) robust noise scales above the expectation, on log(loss),
with a baseline that follows the normal early descent, clearing the window's maximum by 5%; and
big enough to matter: 2x, or 1.5x held for three logged points (smaller ones are WC304, info).
The finding gives the onset, the peak and its ratio, the recovery step (or that it did not
recover), the LR phase (warmup, end of warmup, just after warmup, at peak, decay) and, if the
gradient norm spiked first, the lead time. With --spike-detector
it uses a published rule instead (olmo-core, olmo2, llm-foundry, megatron, mad).
Why it matters: early spikes at the end of warmup usually mean the warmup is too short, the peak LR
too high or gradients are not clipped; repeated spikes precede divergence.
Example: loss spike at step 31: 3.568 at step 31 is 1.70x the expected 2.099; recovered at step 61; LR
phase: just after warmup.
What to do: lengthen warmup, lower the peak LR, clip gradients; restart from before the onset if it
did not recover.
"""),
    _rule("WC302", "grad-norm-spike", _I, "The gradient norm spiked.",
          """
What it detects: the same test on the gradient norm with a higher ratio (default 2x), since gradient
norms are burstier than losses.
Why it matters: grad-norm spikes often precede loss spikes (the loss finding gives the lead time).
What to do: nothing by itself; look at the loss around the step.
"""),
    _rule("WC303", "clipping-saturated", _I, "The logged gradient norm is pinned at one value.",
          """
What it detects: at least 20% of the logged gradient norms equal their maximum: the logged norm is
the clipped one, or clipping fires on most steps.
Why it matters: a clipped norm hides grad-norm spikes; clipping on most steps means the LR is high.
What to do: log the pre-clip norm (HF logs it); consider a lower LR.
"""),
    _rule("WC304", "minor-loss-spike", _I, "A small, brief loss spike.",
          """
What it detects: the same test as WC301, passed by an episode that stays below 2x its expectation and
does not hold 1.5x for three logged points: one bad batch, or the heavy tail of a noisy per-batch loss.
Why it matters: worth a look when they cluster or precede a larger spike.
What to do: nothing by itself.
"""),
    # ---- WC4xx: divergence and non-finite values ----------------------------------------------
    _rule("WC401", "non-finite", _E, "The loss, learning rate or gradient norm became NaN or infinite.",
          """
What it detects: the first NaN or +/-Inf in a series whose role is loss, learning rate or gradient
norm; the finding gives the first step and the count, and every value is kept.
Why it matters: from that step on the run is not training; optimizer state is usually poisoned.
What to do: restart from the last good checkpoint before the step named, with a lower peak LR,
longer warmup or gradient clipping.
"""),
    _rule("WC402", "nan-disguised", _E, "A NaN loss was hidden by the logger.",
          """
What it detects: the gradient norm is NaN/Inf at a step where the logged loss is finite (0.0 or an
average). HF Trainer's default logging_nan_inf_filter=True replaces NaN/Inf losses in the log by the
average of the earlier ones, so the NaN never reaches the loss column; the NaN gradient norm is the
trace it leaves.
Why it matters: the run is broken from that step although its loss curve looks fine.
What to do: as for WC401; set logging_nan_inf_filter=False to see the NaN.
"""),
    _rule("WC403", "divergence", _E, "The loss blew up and never came back.",
          """
What it detects: a loss episode that never recovers and climbs far above its expectation (default
3x) or ends in NaN/Inf. The onset is where the loss started to climb away (walked back from the
first step that passed the spike test), reported before the first NaN; details carry the last good
step and a restart point about 100 steps earlier (PaLM's recipe), the LR at onset and its phase.
Why it matters: every step after the onset is wasted compute.
What to do: restart from before the onset with a lower LR, a longer warmup or clipping.
"""),
    _rule("WC404", "eval-non-finite", _E, "The evaluation loss became NaN or infinite.",
          """
What it detects: the first NaN or +/-Inf in the evaluation loss (the series with the eval_loss role:
eval_loss, eval/loss, val_loss, ...); the finding gives the first step, the count, the last finite
evaluation and the step where the training loss itself went non-finite, if it did.
Why it matters: the run's evaluations are meaningless from that step; with a finite training loss it
is the evaluation that broke (fp16 overflow in the eval loop, an empty evaluation set, a bad batch).
What to do: with a non-finite training loss, as for WC401; else check the evaluation loop and data.
"""),
    _rule("WC405", "overfitting", _W, "The evaluation loss rose for a sustained stretch while the training loss fell.",
          """
What it detects: after its best value the evaluation loss stays at least 5% above it for at least
3 consecutive evaluations, through the last one, while the training loss fell by at least 2% over the
same stretch. The finding names the best step (the checkpoint to keep), where the rise set in, and the
values of both losses; an eval loss that comes back down, or a training loss that rises too, is not
reported.
Why it matters: the steps after the best evaluation make the model worse on held-out data.
What to do: keep the best checkpoint (load_best_model_at_end, EarlyStopping), stop earlier, or add
data, regularisation or a lower peak LR.
"""),
    # ---- WC5xx: comparison with a baseline (``warmcheck compare``) ----------------------------
    _rule("WC501", "lr-schedule-differs", _E, "The learning-rate schedule differs from the baseline's.",
          """
What it detects: on the steps both runs logged, the learning rate differs from the baseline's by more
than --lr-rtol (relative, default 1e-4: float32 logging is exact to 6e-8). The finding gives the first
step that differs, the largest relative difference and where it is, and both runs' warmup ends and
first steps at the peak, so a changed warmup reads "this run reached its peak at 28, the baseline at
21".
Why it matters: a changed schedule changes training; when nobody meant to change it, it is the bug
(a ratio rounded differently, an epoch count or accumulation that changed the total steps).
What to do: if the change was intended, write a new golden file (warmcheck compare --write-golden);
otherwise compare the configurations (warmcheck analyze prints the warmup audit of each).
"""),
    _rule("WC502", "loss-outside-band", _E, "The loss left the baseline's tolerance band.",
          """
What it detects: on the steps both runs logged, the loss (smoothed by a centred moving average over
--window logged points, default about 5% of them, as the baselines are) leaves the band around the
baseline. The band's half-width is the widest of: atol + rtol x |baseline| (defaults --rtol 0.1,
--atol 0); --sigmas (default 3) standard errors of the batch noise (each loss's local scatter around its
smoothed curve), so a tiny noisy run is not held to a smooth run's precision; and, with several
baseline runs (seeds), --sigmas standard deviations of their spread at that step. On real tiny HF
Trainer runs, three seeds of one configuration stay inside each other's band and a peak LR 3x too high
leaves it. The finding gives the first step outside, the value, the band, which term set it, and the
relative difference there.
Why it matters: training behaves differently from the reference: higher means worse, lower can mean a
changed data pipeline or a leak as well as an improvement.
What to do: if the change was intended, write a new golden file; else bisect the change.
"""),
    _rule("WC503", "new-loss-spike", _W, "A loss spike the baseline did not have.",
          """
What it detects: a loss spike (WC301) in this run with no spike in any baseline near the same step
(within the smoothing window, at least 5 steps).
Why it matters: the change made training less stable, even if the loss came back.
What to do: look at what the change does to the learning rate, warmup or data order around the step.
"""),
    _rule("WC504", "new-non-finite", _E, "NaN/Inf or divergence the baseline did not have.",
          """
What it detects: this run has NaN or Inf values (WC401), a NaN hidden by the logger (WC402) or a
divergence (WC403) that no baseline has; the finding gives the first step and the kind.
Why it matters: the change broke training.
What to do: as for the WC4xx finding named; compare the schedules (WC501) first.
"""),
    _rule("WC505", "incomplete-comparison", _W, "Part of the comparison could not be made.",
          """
What it detects: a series (learning rate, loss) that one side lacks, no step that both runs logged,
or a run that ends before its baseline does (only the common steps are compared).
Why it matters: a gate that compared nothing must not look like a pass.
What to do: log the same series at overlapping steps (--lr-tag, --loss-tag pick them), or compare with
a baseline of the same length.
"""),
)

RULES: Mapping[str, Rule] = {r.code: r for r in _ALL_RULES}
"""Every code warmcheck can emit, keyed by code."""

FAMILIES: Mapping[str, str] = {
    "WC0": "input and data integrity",
    "WC1": "schedule and warmup as observed",
    "WC2": "warmup against the configuration",
    "WC3": "loss and grad-norm spikes",
    "WC4": "divergence and non-finite values",
    "WC5": "comparison with a baseline",
}


def rules_markdown() -> str:
    """The README's rule table, generated from :data:`RULES` (a test keeps the README in sync)."""
    lines = ["| code | name | default severity | what it detects |", "|---|---|---|---|"]
    for rule in RULES.values():
        lines.append(f"| {rule.code} | `{rule.slug}` | {rule.severity.value} | {rule.summary} |")
    return "\n".join(lines)
