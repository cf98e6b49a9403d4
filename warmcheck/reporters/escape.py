"""Names are data: shown, never obeyed (terminal escapes, CI workflow commands, markup).

Run names, tags, file names and the messages that quote them come from files warmcheck did not write.
Every human-readable output goes through :func:`visible` (control characters, bidi controls and lone
surrogates as ``\\x1b``/``\\n``/``\\u202e``/``\\udc80`` escapes), and every line of text output through
:func:`ci_line` (no GitHub Actions workflow command can start from data). Each format adds its own
escaping on top (markdown, GitHub properties); JSON stays exact (``json`` escapes it).
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, bidi embedding/override/isolate marks, line/paragraph separators,
# BOM, interlinear annotation marks, the XML-illegal noncharacters and lone surrogates.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}"


def visible(text: str) -> str:
    """``text`` with every control, bidi control and lone surrogate shown as an escape (one line,
    encodable as UTF-8, legal in XML). Backslashes are left as they are (paths stay readable)."""
    return _HIDDEN.sub(_escape, text)


def ci_line(line: str) -> str:
    """One output line that no CI runner reads as a command: GitHub Actions takes a line whose
    first non-blank characters are ``::`` (``::error ...``) and ``##[`` anywhere in a line."""
    if "##[" in line:
        line = line.replace("##[", "##\\x5b")
    body = line.lstrip()
    if body.startswith("::"):
        line = line[:len(line) - len(body)] + "\\x3a" + body[1:]
    return line


def ci_json(text: str) -> str:
    """JSON text with ``##[`` written ``##\\u005b`` (the same string once parsed). ``##[`` occurs only
    inside strings, and :func:`json.dumps` already escapes line breaks, so no line starts with ``::``."""
    return text.replace("##[", "##\\u005b")


def ci_xml(text: str) -> str:
    """XML text with ``##[`` written ``##&#91;`` (the same value once parsed)."""
    return text.replace("##[", "##&#91;")


# Backslash-escaped: what opens code spans, emphasis, strikethrough, links and images (``[``: a link
# or ``![`` image cannot form without it), and the cell separator. ``<``, ``>`` and ``&`` as entities.
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~])")


def md_text(text: str) -> str:
    """Plain text safe in a markdown table cell or paragraph: no HTML, link, image, code span,
    emphasis or cell break; line breaks and controls shown as escapes."""
    text = _MD_PUNCT.sub(r"\\\1", visible(text))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_code(text: str, table: bool = True) -> str:
    """``text`` as a code span (shown literally: no HTML, links or emphasis inside one), fenced with
    more backticks than it holds; ``|`` escaped inside a table row (GFM reads ``\\|`` there)."""
    text = visible(text)
    if not text:
        return ""
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def gh_data(text: str) -> str:
    """A workflow command's message, escaped as the runner unescapes it (``%``, CR, LF)."""
    return visible(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def gh_property(text: str) -> str:
    """A workflow command's property value (also ``:`` and ``,``)."""
    return gh_data(text).replace(":", "%3A").replace(",", "%2C")
