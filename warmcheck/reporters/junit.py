"""JUnit XML: one test suite per run, one test case per rule family, a failure per finding at or
above the fail level (the common schema Jenkins, GitLab and CI dashboards read).

Names, messages and details are data: their controls (illegal in XML 1.0 but for tab and line
breaks, and line breaks would let a log line start in a text node) and lone surrogates are shown as
escapes (``escape.visible``); ElementTree escapes ``&``, ``<``, ``>`` and quotes."""

from __future__ import annotations

from ..config import FailOn
from ..findings import FAMILIES, Finding, Severity
from ..model import Run
from ..pipeline import Outcome
from .common import summarize
from .escape import ci_xml, visible


class JunitReporter:
    """``--format junit``. Findings below ``fail_on`` are written to ``system-out``, not as failures."""

    def __init__(self, fail_on: FailOn = FailOn.ERROR) -> None:
        self.fail_on = fail_on

    def _fails(self, f: Finding) -> bool:
        return self.fail_on is not FailOn.NEVER and f.severity.rank >= Severity(self.fail_on.value).rank

    def render(self, outcome: Outcome) -> str:
        """See :class:`~warmcheck.reporters.interface.Reporter`."""
        import xml.etree.ElementTree as ET

        root = ET.Element("testsuites", name="warmcheck")
        total = failures = 0
        groups: list[tuple[str, list[Finding], Run | None]] = [(visible(r.name), list(r.findings), r)
                                                               for r in outcome.runs]
        if outcome.findings:
            groups.insert(0, ("(discovery)", list(outcome.findings), None))
        # WC5xx (comparison with a baseline) is a test case of `warmcheck compare` only.
        compared = outcome.comparison is not None
        families = {k: v for k, v in FAMILIES.items() if compared or k != "WC5"}
        for name, findings, run in groups:
            suite = ET.SubElement(root, "testsuite", name=name)
            if run is not None:
                props = ET.SubElement(suite, "properties")
                s = summarize(run)
                for key, value in (("warmup_end", s.warmup_end), ("audit", s.audit), ("spikes", s.spikes),
                                   ("divergence", s.divergence)):
                    ET.SubElement(props, "property", name=key, value=visible(value))
            n_fail = 0
            for family, title in families.items():
                case = ET.SubElement(suite, "testcase", classname=name, name=f"{family}xx {title}")
                mine = [f for f in findings if f.code.startswith(family)]
                failing = [f for f in mine if self._fails(f)]
                for f in failing:
                    step = f" at step {f.step}" if f.step is not None else ""
                    fail = ET.SubElement(case, "failure", message=visible(f"{f.code}{step}: {f.message}"),
                                         type=f.code)
                    fail.text = "\n".join(visible(f"{k}: {v}") for k, v in f.details.items() if k != "traceback")
                passing = [f for f in mine if not self._fails(f)]
                if passing:
                    out = ET.SubElement(case, "system-out")
                    out.text = "\n".join(visible(f"{f.code} {f.severity.value} {f.message}") for f in passing)
                n_fail += bool(failing)
            suite.set("tests", str(len(families)))
            suite.set("failures", str(n_fail))
            suite.set("errors", "0")
            suite.set("skipped", "0")
            total += len(families)
            failures += n_fail
        root.set("tests", str(total))
        root.set("failures", str(failures))
        root.set("errors", "0")
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ci_xml(ET.tostring(root, encoding="unicode")) + "\n"
