"""Text with highlights, as escaped HTML: answer / step matches, verbatim spans shared with the completion, and
per-token influence shading. Pure functions (no Streamlit); every piece of run text is HTML-escaped.

A `Mark` is a character range of the shown text with a kind (a CSS class in `STYLE`) and a tooltip. Matches use
the analysis' rule (precompute.analysis.occurrence): a value occurs as a whole token; the answer counts as "in context"
when it shares a line or sentence with every context term of the query (the prompt's numbers or names). One
difference: on cards a value of one or two characters is marked only where stated as a result ("= 1", "is 1"), so
the marks tell documents apart; the analysis tables and the Answers page count every occurrence."""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import numpy as np

from precompute.analysis.occurrence import contains_value, value_pattern

RED = (214, 39, 40)  # positive: training on the document makes the completion more likely
TEAL = (20, 163, 154)  # negative
SEGMENT_BREAK = re.compile(r"\n|(?<=[.?!;])\s+")
STYLE = """<style>
.ie-text{white-space:pre-wrap;line-height:1.7}
.ie-text .m-answer{box-shadow:inset 0 -3px 0 #2ca02c;font-weight:600}
.ie-text .m-answer-bare{box-shadow:inset 0 -2px 0 #9ccf9c}
.ie-text .m-step{box-shadow:inset 0 -3px 0 #ff7f0e}
.ie-text .m-model{box-shadow:inset 0 -3px 0 #9467bd}
.ie-text .m-span{border-top:1px dashed #6a3d9a;border-bottom:1px dashed #6a3d9a}
.ie-text .m-span-on{border-top:2px solid #6a3d9a;border-bottom:2px solid #6a3d9a;background:rgba(106,61,154,.12)}
.ie-text sup.span-no{color:#6a3d9a;font-size:70%;margin-left:1px}
.ie-text .m-term{background:rgba(255,200,0,.45);border-radius:2px}
.ie-legend{display:flex;align-items:center;gap:6px;font-size:12px;color:#555;margin:2px 0 4px}
.ie-legend .bar{width:140px;height:10px;border-radius:2px;
 background:linear-gradient(90deg,rgb(20,163,154),#f7f7f7,rgb(214,39,40))}
.ie-key{font-size:12px;color:#555}
.ie-key span{padding:0 3px;margin-right:6px}
</style>"""
KEY_HTML = ('<div class="ie-key ie-text">Marks: <span class="m-answer">answer (in context)</span>'
            '<span class="m-answer-bare">answer (anywhere)</span><span class="m-step">step</span>'
            '<span class="m-model">model\'s own answer</span><span class="m-span">words shared with the '
            'completion</span><span class="m-span-on">the chosen span</span></div>')


@dataclass(frozen=True)
class Mark:
    start: int
    end: int
    kind: str  # answer, answer-bare, step, model, span, span-on, term
    title: str
    number: int | None = None  # span number shown as a superscript (links completion and document spans)


def escape(text: str) -> str:
    """HTML-escaped text; newlines as <br> so that a block stays one HTML block (markdown is not interpreted)."""
    return html.escape(text).replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def _segments(text: str):
    start = 0
    for found in SEGMENT_BREAK.finditer(text):
        yield start, found.start()
        start = found.end()
    yield start, len(text)


SHORT_VALUE_CHARS = 2  # values this short ("1", "22") occur almost anywhere: marked only where stated as a result
STATED_RESULT = re.compile(r"(?:=|≈|\banswer(?: is)?:?|\b(?:is|equals|was|are))\s*\**\s*$", re.IGNORECASE)


def stated_as_result(text: str, start: int) -> bool:
    """Does the text right before `start` state a result ("= ", "answer is ", "is ", "equals ")?"""
    return STATED_RESULT.search(text[max(0, start - 20):start]) is not None


def target_marks(text: str, targets: list[tuple[str, str]], context: list[str]) -> list[Mark]:
    """Where each (name, value) target occurs in `text`. name: `answer`, `step_N` or `model_answer`. A value of
    at most SHORT_VALUE_CHARS characters is marked only where stated as a result (`stated_as_result`): a bare
    "1" in a document says nothing about the query."""
    marks = []
    context_segments = [(a, b) for a, b in _segments(text) if all(contains_value(text[a:b], t) for t in context)]
    for name, value in targets:
        for found in value_pattern(value).finditer(text):
            if len(value) <= SHORT_VALUE_CHARS and not stated_as_result(text, found.start()):
                continue
            if name == "answer":
                inside = any(a <= found.start() and found.end() <= b for a, b in context_segments)
                kind, title = ("answer", f"answer {value} in the query's context") if inside else (
                    "answer-bare", f"answer {value}, not next to the query's context terms")
            elif name == "model_answer":
                kind, title = "model", f"the model's own (wrong) answer {value}"
            else:
                kind, title = "step", f"{name.replace('_', ' ')}: {value}"
            marks.append(Mark(found.start(), found.end(), kind, title))
    return marks


def clipped(marks: list[Mark], length: int) -> list[Mark]:
    """The marks that start within the first `length` characters, cut at `length` (for a text's preview)."""
    return [mark if mark.end <= length else Mark(mark.start, length, mark.kind, mark.title, mark.number)
            for mark in marks if mark.start < length]


def badges(marks: list[Mark]) -> list[str]:
    """Badge texts for a card, strongest first: answer in context, bare answer, model answer, steps."""
    kinds = {mark.kind for mark in marks}
    steps = sorted({mark.title.split(":")[0] for mark in marks if mark.kind == "step"})
    named = [("answer", "answer in context"), ("answer-bare", "answer (anywhere)"), ("model", "model answer")]
    return [label for kind, label in named if kind in kinds] + steps


def shaded_below(scale: float) -> float:
    """Token scores smaller than this in magnitude get no shading (their colour would be 0.00 opaque)."""
    return 0.005 / 0.85 * scale


def colour(score: float, scale: float) -> str:
    if scale <= 0 or not math.isfinite(score) or score == 0:
        return "transparent"
    alpha = min(1.0, abs(score) / scale) * 0.85
    if alpha < 0.005:  # shown as 0.00: no shading (`shaded_below`)
        return "transparent"
    red, green, blue = RED if score > 0 else TEAL
    return f"rgba({red},{green},{blue},{alpha:.2f})"


def _piece(text: str, background: str, title: str, marks: list[Mark]) -> str:
    classes = " ".join(f"m-{mark.kind}" for mark in marks)
    tips = [title] if title else []
    tips += [mark.title for mark in marks]
    attributes = f' class="{classes}"' if classes else ""
    if background != "transparent":
        attributes += f' style="background:{background}"'
    if tips:
        attributes += f' title="{html.escape(" · ".join(tips))}"'
    return f"<span{attributes}>{escape(text)}</span>" if attributes else escape(text)


def render(text: str, marks: list[Mark], tokens: list[tuple[int, int, float]] | None = None,
           scale: float = 0.0) -> str:
    """`text` as one escaped HTML block with `marks`, shaded by `tokens` ((start, end, score) into `text`)."""
    cuts = {0, len(text)} | {m.start for m in marks} | {m.end for m in marks}
    token_at = []
    for start, end, score in tokens or []:
        cuts |= {start, end}
        token_at.append((start, end, score))
    edges = sorted(cut for cut in cuts if 0 <= cut <= len(text))
    ends_here = {m.end: m for m in marks if m.number is not None}
    parts, token_index = [], 0
    for a, b in zip(edges, edges[1:]):
        while token_index < len(token_at) and token_at[token_index][1] <= a:
            token_index += 1
        background, title = "transparent", ""
        if token_index < len(token_at) and token_at[token_index][0] <= a:
            score = token_at[token_index][2]
            background = colour(score, scale)
            if background != "transparent":  # unshaded tokens stay plain text (a DOM node less each)
                title = f"token score {score:+.3g}"
        parts.append(_piece(text[a:b], background, title, [m for m in marks if m.start <= a and b <= m.end]))
        if b in ends_here:
            parts.append(f'<sup class="span-no">{ends_here[b].number}</sup>')
    return f'<div class="ie-text">{"".join(parts)}</div>'


def token_layout(tokens: list[str], scores: np.ndarray) -> tuple[str, list[tuple[int, int, float]]]:
    """The tokens' decoded texts joined, and each token's (start, end, score) in that text."""
    layout, position = [], 0
    for token, score in zip(tokens, scores):
        layout.append((position, position + len(token), float(score)))
        position += len(token)
    return "".join(tokens), layout


def legend_html(scale: float, what: str) -> str:
    """A colour bar from −scale (teal) through 0 to +scale (red), with what the colour means and which tokens are
    left unshaded (hover a shaded token for its score)."""
    return (f'<div class="ie-legend"><span>{-scale:+.3g}</span><span class="bar"></span><span>{scale:+.3g}</span>'
            f"<span>{html.escape(what)}; hover a shaded token for its score, unshaded: |score| &lt; "
            f"{shaded_below(scale):.2g}</span></div>")
