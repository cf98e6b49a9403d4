"""``warmcheck watch``: follow runs while they are written, report each finding once.

Every poll discovers runs again (new runs and new files in known runs are picked up), reads only
the bytes appended to each file since the last poll and analyses the new points incrementally
(:class:`~warmcheck.live.engine.LiveRun`). A partly written last record or line is waited for;
it is reported (WC003) only once its file has not changed for ``settle`` seconds, i.e. the
writer is gone. :meth:`Watcher.finish` analyses every run as a whole (what only the end can tell).

A PATH may be a storage URL (``s3://``, ``gs://``, ``memory://``...): each poll lists it once, and an
object whose size or ETag changed is read from where it ended (:mod:`.remote`). Object storage that
does not answer is said on stderr and tried again at the next poll (:class:`_Outage`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import WarmcheckError
from ..findings import Finding, Severity
from ..model import Format, Run
from ..readers import RunSpec, discover, is_training_csv
from ..readers.interface import diag
from ..readers.tailing import Tailer, tailer_for
from ..reporters.escape import ci_json, ci_line, visible
from ..storage import FileStat, StorageError, is_url
from .alerts import AlertLog, alert_key, default_state_path
from .buffer import Limits
from .engine import LiveRun, config_dir_of

if TYPE_CHECKING:
    from .remote import Spool

_SNIFF_BYTES = 1 << 20  # what discovery's CSV sniff reads of a file (its head)
MAX_FAILED_POLLS = 10
STORAGE_PATIENCE = 300.0
"""``watch`` gives up (exit 2) when object storage has not answered in ``MAX_FAILED_POLLS`` polls in a row
and for ``STORAGE_PATIENCE`` seconds: a restart of the endpoint is waited for, one that is gone is not."""


@dataclass
class _Followed:
    tailer: Tailer
    changed_at: float  # when a poll last found the file changed
    tail_reported: bool = False
    gone: bool = False
    generation: int = 0  # the tailer's generation whose points the run holds


@dataclass
class _RunState:
    live: LiveRun
    files: dict[str, _Followed] = field(default_factory=dict)


class Watcher:
    """Polls ``paths`` for runs and new data; see the module docstring."""

    def __init__(self, paths: Sequence[str], settings: Settings | None = None, *, settle: float = 30.0,
                 limits: Limits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.paths = list(paths)
        self.settings = settings or Settings()
        self.settle = settle
        self.limits = limits or Limits()
        self.clock = clock
        self.runs: dict[str, _RunState] = {}
        self.tree_findings: list[Finding] = []
        self._tree_keys: set[tuple[object, ...]] = set()
        self.storage_errors: list[StorageError] = []  # the last poll's: object storage did not answer
        self._remote = any(is_url(p) for p in self.paths)
        self._spool: Spool | None = None  # once an object is followed
        self._sniffed: dict[str, tuple[FileStat | None, bool]] = {}  # URL -> (its stat, a training CSV?)
        self._followed_urls: set[str] = set()

    def poll(self) -> list[Finding]:
        """One round: discover, read what is new, analyse; the findings reported for the first time.

        Object storage that does not answer: the listing's failure raises :class:`StorageError`
        (nothing changed); a read's failure is kept in :attr:`storage_errors`, the objects not read
        this round are read at the next one.
        """
        now = self.clock()
        self.storage_errors = []
        if self._remote:
            from .. import storage

            storage.forget_listings()  # this poll's listing is the truth: deleted objects are gone
        found = discover(self.paths, self._is_training_csv if self._remote else is_training_csv)
        out = self._tree(found.findings)
        present = {shown for spec in found.runs for _, shown, _ in spec.files}
        for known in self.runs.values():
            for shown, old in known.files.items():
                if shown not in present and not old.gone and not _superseded_copy(old.tailer.path):
                    if old.tailer.identity.moved() is not None:  # rotated: read its rest, wait for the new file
                        out.extend(self._follow(known.live, shown, old, now))
                        continue
                    old.gone = True  # deleted or moved: what was read from it stays in the analysis
                    _discard(old.tailer)
                    self._followed_urls.discard(old.tailer.path)
                    known.live.note([diag("WC001", "file disappeared while being watched (deleted or moved); "
                                          "the points read from it are kept", shown)])
                    out.extend(known.live.analyse())
        for spec in found.runs:
            state = self.runs.get(spec.name) or self._adopt(spec)
            files = [f for f in spec.files if state is not None and f[1] in state.files or not self._rotated(f[0])]
            if state is None:
                if spec.files and not files:
                    continue  # only files rotated away from a followed run, which reads them
                config_dir = config_dir_of(*spec.files[0][:2]) if spec.files else None
                state = self.runs[spec.name] = _RunState(
                    LiveRun(spec.name, spec.path, self.settings, self.limits, config_dir))
                state.live.note(spec.findings)
            for path, shown, fmt in files:
                followed = state.files.get(shown)
                if followed is None or followed.gone:  # new, or back again (rewritten): follow it afresh
                    if followed is not None:
                        state.live.forget(shown)  # a new file at the path: the old one's points are void
                    followed = state.files[shown] = _Followed(self._tailer(path, shown, fmt), now)
                out.extend(self._follow(state.live, shown, followed, now))
            out.extend(state.live.analyse())
        return out

    def _tailer(self, path: str, shown: str, fmt: Format) -> Tailer:
        if not is_url(path):
            return tailer_for(path, shown, fmt)
        from .remote import RemoteTailer, Spool

        if self._spool is None:
            self._spool = Spool()
        self._followed_urls.add(path)
        return RemoteTailer(path, shown, fmt, self._spool)

    def _is_training_csv(self, path: str) -> bool:
        """Discovery's CSV sniff; for an object, asked once per version (a followed one: never again)."""
        if not is_url(path):
            return is_training_csv(path)
        if path in self._followed_urls:
            return True
        from .. import storage

        st = storage.known_stat(path)
        cached = self._sniffed.get(path)
        if cached is not None and (cached[0] == st or (
                st is not None and cached[0] is not None and st.size >= cached[0].size >= _SNIFF_BYTES)):
            return cached[1]  # the same object, or one grown past the head the sniff read
        verdict = is_training_csv(path)
        self._sniffed[path] = (st, verdict)
        return verdict

    def close(self) -> None:
        """Remove the local copies of followed objects."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def _rotated(self, path: str) -> bool:
        """Whether ``path`` is a file a followed log was rotated to (its tailer reads it, as part of that log)."""
        if self._remote and is_url(path):
            return False  # objects are not renamed in place
        try:
            st = os.stat(path)
        except OSError:
            return False
        return any(f.tailer.identity.owns(path, st) for s in self.runs.values() for f in s.files.values())

    def _adopt(self, spec: RunSpec) -> _RunState | None:
        """A followed run whose files are now joined into ``spec`` (its HF output dir got a trainer_state.json):
        it continues under the joined run's name, so nothing is read or reported twice."""
        files = {shown for _, shown, _ in spec.files}
        for name, state in list(self.runs.items()):
            if files & set(state.files):
                del self.runs[name]
                state.live.name, state.live.path = spec.name, spec.path
                self.runs[spec.name] = state
                return state
        return None

    def _follow(self, live: LiveRun, shown: str, f: _Followed, now: float) -> list[Finding]:
        out: list[Finding] = []
        while True:  # more than one read only while catching up
            if self.storage_errors and is_url(f.tailer.path):
                return out  # object storage did not answer this round: the next one reads it
            try:
                read = f.tailer.poll()
            except StorageError as exc:
                self.storage_errors.append(exc)
                return out
            if read is None:
                break
            f.changed_at, f.tail_reported = now, False  # a tailer polls None when its file is unchanged
            if f.tailer.generation != f.generation:  # rewritten: its points so far no longer describe it
                f.generation = f.tailer.generation
                live.forget(shown)
            out.extend(live.feed(shown, read))
            if not any(len(frag) for frag in read.fragments):
                break
        if not f.tail_reported and now - f.changed_at >= self.settle and f.tailer.pending_bytes():
            finding = f.tailer.incomplete_tail()
            f.tail_reported = True
            if finding is not None:
                live.note([finding])
        return out

    def _tree(self, findings: Sequence[Finding]) -> list[Finding]:
        out = []
        for f in findings:
            key = (f.code, f.source, f.message)
            if key not in self._tree_keys and self.settings.enabled(f.code):
                self._tree_keys.add(key)
                self.tree_findings.append(f)
                out.append(f)
        return out

    def idle(self) -> bool:
        """Whether every followed file has been unchanged for ``settle`` seconds (the writers are done)."""
        now = self.clock()
        files = [f for s in self.runs.values() for f in s.files.values()]
        return bool(files) and all(now - f.changed_at >= self.settle for f in files)

    def finish(self) -> list[Finding]:
        """Analyse every run as a whole; the findings not reported before."""
        out: list[Finding] = []
        for state in self.runs.values():
            out.extend(state.live.finish())
        return out

    def outcome_runs(self) -> list[Run]:
        """The runs as last analysed, with the findings reported (for the closing summary)."""
        return [s.live.outcome_run() for s in self.runs.values()]


def _discard(tailer: Tailer) -> None:
    """Drop what a tailer of a vanished object keeps on local disk (its spool file)."""
    discard = getattr(tailer, "discard", None)
    if discard is not None:
        discard()


def _superseded_copy(path: str) -> bool:
    """A file discovery no longer lists that is not gone: an HF checkpoint's copy of the log history
    (superseded by a later checkpoint, or rotated away by ``save_total_limit``)."""
    parent = os.path.basename(os.path.dirname(path))
    return os.path.exists(path) or (os.path.basename(path) == "trainer_state.json"
                                    and parent.startswith("checkpoint-"))


def watch_loop(paths: Sequence[str], settings: Settings, *, interval: float = 5.0, settle: float = 30.0,
               exit_on: str | None = None, exec_cmd: str | None = None, exec_on: str = "warning",
               stop_when_idle: bool = False, fmt: str = "text", quiet: bool = False, colour: bool = False,
               sleep: Callable[[float], None] = time.sleep, state: str | None = None) -> int:
    """``warmcheck watch``: poll until Ctrl-C/SIGTERM, ``--exit-on`` or idleness; the exit code.

    ``state``: the file remembering what ``--exec`` alerted on across restarts (:mod:`.alerts`);
    ``None``: the default one in the XDG state directory; ``""``: none (alert again after a restart).
    Object storage that does not answer is said on stderr and tried again at the next poll; after
    :data:`MAX_FAILED_POLLS` failed polls in a row over :data:`STORAGE_PATIENCE` seconds the watch stops
    with exit 2.
    """
    watcher = Watcher(paths, settings, settle=settle)
    try:
        return _watch(watcher, paths, settings, interval=interval, exit_on=exit_on, exec_cmd=exec_cmd,
                      exec_on=exec_on, stop_when_idle=stop_when_idle, fmt=fmt, quiet=quiet, colour=colour,
                      sleep=sleep, state=state)
    finally:
        watcher.close()


def _watch(watcher: Watcher, paths: Sequence[str], settings: Settings, *, interval: float, exit_on: str | None,
           exec_cmd: str | None, exec_on: str, stop_when_idle: bool, fmt: str, quiet: bool, colour: bool,
           sleep: Callable[[float], None], state: str | None) -> int:
    import signal

    from ..pipeline import Outcome, exit_code

    alerts = None
    if exec_cmd and state != "":
        alerts = AlertLog(state, owned=False) if state else AlertLog(default_state_path(paths, exec_cmd), owned=True)
    printer = _Printer(fmt, colour, exec_cmd, Severity(exec_on), Severity(exit_on) if exit_on else None, alerts)
    import threading

    # SIGTERM (a scheduler ending the job) ends the watch like Ctrl-C; signals reach the main thread only.
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    try:
        first = watcher.poll()  # a missing PATH raises here: exit 2 before anything is watched
        if not quiet:
            what = f"{len(watcher.runs)} run{'s' if len(watcher.runs) != 1 else ''}" if watcher.runs else \
                "no training logs yet"
            _say(f"warmcheck: watching {', '.join(paths)}: {what}; polling every {interval:g} s"
                 + ("" if stop_when_idle else " (Ctrl-C to stop)"))
        outage = _Outage(watcher.clock, interval, quiet)
        outage.update(watcher.storage_errors)
        if printer.emit(first):
            return _close(watcher, printer, settings, quiet, stopped="--exit-on")
        while True:
            if stop_when_idle and not outage.polls and watcher.idle():
                break
            sleep(interval)
            try:
                found = watcher.poll()
            except StorageError as exc:  # the listing: nothing was read, nothing changed
                found, watcher.storage_errors = [], [exc]
            except WarmcheckError as exc:  # a watched path vanished: say so, keep watching the rest
                if not quiet:
                    _say(f"warmcheck: {visible(str(exc))}")
                continue
            give_up = outage.update(watcher.storage_errors)
            if printer.emit(found):
                return _close(watcher, printer, settings, quiet, stopped="--exit-on")
            if give_up:
                _say(f"warmcheck: error: object storage did not answer in {outage.polls} polls in a row "
                     f"({outage.lasting():.0f} s); stopping (last error: {visible(str(watcher.storage_errors[-1]))})")
                return _close(watcher, printer, settings, quiet, stopped="storage-error", code=2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if printer.emit(watcher.finish()):
        return _close(watcher, printer, settings, quiet, stopped="--exit-on", finished=True)
    outcome = Outcome(tuple(watcher.outcome_runs()), tuple(watcher.tree_findings), settings)
    code = exit_code(outcome, settings.fail_on)
    return _close(watcher, printer, settings, quiet, code=code,
                  stopped="interrupted" if interrupted else "idle", finished=True)


class _Outage:
    """Object storage not answering: said on stderr at each failed poll and when it answers again."""

    def __init__(self, clock: Callable[[], float], interval: float, quiet: bool) -> None:
        self.clock, self.interval, self.quiet = clock, interval, quiet
        self.polls = 0  # failed polls in a row
        self.since = 0.0  # when the first of them ended

    def lasting(self) -> float:
        return self.clock() - self.since if self.polls else 0.0

    def update(self, errors: Sequence[StorageError]) -> bool:
        """Count a poll (failed if ``errors``); whether to give up."""
        if not errors:
            if self.polls and not self.quiet:
                _say("warmcheck: object storage answers again; what was not read meanwhile is read now")
            self.polls = 0
            return False
        if not self.polls:
            self.since = self.clock()
        self.polls += 1
        if self.polls >= MAX_FAILED_POLLS and self.lasting() >= STORAGE_PATIENCE:
            return True
        if not self.quiet:
            _say(f"warmcheck: {visible(str(errors[0]))}; what was not read is read at the next poll, in "
                 f"{self.interval:g} s (failed polls in a row: {self.polls}; the watch stops after "
                 f"{MAX_FAILED_POLLS} and {STORAGE_PATIENCE:g} s)")
        return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _close(watcher: Watcher, printer: _Printer, settings: Settings, quiet: bool, stopped: str,
           code: int = 1, finished: bool = False) -> int:
    """The closing summary (stderr for people, a summary line for JSON) and the exit code."""
    from ..reporters.common import summarize
    from ..reporters.text import summary_table

    runs = watcher.outcome_runs()
    reported = [*watcher.tree_findings, *(f for r in runs for f in r.findings)]
    counts = {s: sum(f.severity is s for f in reported) for s in Severity}
    printer.summary(len(runs), counts, stopped, code)
    if not quiet:
        if runs and finished:
            _say("\n".join(summary_table([summarize(r) for r in runs])))
        parts = ", ".join(f"{counts[s]} {s.value}{'s' if counts[s] != 1 and s is not Severity.INFO else ''}"
                          for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
        _say(f"warmcheck watch: {len(runs)} run{'s' if len(runs) != 1 else ''}, {parts} "
             f"({'stopped by ' + stopped if stopped == '--exit-on' else stopped}; exit {code})")
    return code


class _Printer:
    """Writes each finding to stdout (text line or JSON line) and runs ``--exec``; says when to exit."""

    def __init__(self, fmt: str, colour: bool, exec_cmd: str | None, exec_on: Severity,
                 exit_on: Severity | None, alerts: AlertLog | None = None) -> None:
        self.fmt, self.colour = fmt, colour
        self.exec_cmd, self.exec_on, self.exit_on = exec_cmd, exec_on, exit_on
        self.alerts = alerts

    def emit(self, findings: Sequence[Finding]) -> bool:
        """Print ``findings``; whether one of them is at or above ``--exit-on``."""
        stop = False
        for f in findings:
            if self.fmt == "json":
                from ..reporters.json import finding_dict

                line = ci_json(json.dumps({"event": "finding", "run": f.run, **finding_dict(f)}, allow_nan=False))
            else:
                from ..reporters.text import finding_line

                line = ci_line(f"{visible(f.run or '-')}: {finding_line(f, self.colour)}")  # names are data
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            if self.exec_cmd and f.severity.rank >= self.exec_on.rank:
                self._exec(f)
            if self.exit_on is not None and f.severity.rank >= self.exit_on.rank:
                stop = True
        return stop

    def summary(self, runs: int, counts: dict[Severity, int], stopped: str, code: int) -> None:
        if self.fmt == "json":
            per = {s.value: counts[s] for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}
            sys.stdout.write(json.dumps({"event": "summary", "runs": runs, **per, "stopped": stopped,
                                         "exit_code": code}) + "\n")
            sys.stdout.flush()

    def _exec(self, f: Finding) -> None:
        assert self.exec_cmd is not None
        # Names are data: NUL (which no environment can hold), controls and lone surrogates as escapes.
        env = {**os.environ, "WARMCHECK_CODE": f.code, "WARMCHECK_SEVERITY": f.severity.value,
               "WARMCHECK_RUN": visible(f.run or ""), "WARMCHECK_STEP": "" if f.step is None else str(f.step),
               "WARMCHECK_TAG": visible(f.tag or ""), "WARMCHECK_MESSAGE": visible(f.message)}
        key = alert_key(f)
        if self.alerts is not None and key in self.alerts:
            _say(f"warmcheck: --exec already ran for {f.code} in {visible(f.run or '-')} before a restart "
                 f"(state {visible(self.alerts.path)}); not run again")
            return
        try:
            proc = subprocess.Popen(self.exec_cmd, shell=True, env=env)  # noqa: S602
        except OSError as exc:
            _say(f"warmcheck: --exec command failed to start: {exc}")
            return
        if self.alerts is not None:  # started: a kill from now on must not start it again
            self.alerts.add(key)
        try:
            returncode = proc.wait(timeout=EXEC_TIMEOUT)
        except subprocess.TimeoutExpired:
            _say(f"warmcheck: --exec command still running after {EXEC_TIMEOUT:g} s; left running")
            return
        if returncode != 0:
            _say(f"warmcheck: --exec command exited {returncode} for {f.code} in {visible(f.run or '-')}")


EXEC_TIMEOUT = 60.0
