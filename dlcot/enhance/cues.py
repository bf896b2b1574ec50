"""Text units and the cue lexicons the offline segmenter reads: where a trace turns, checks, or states an answer.

A *unit* is a paragraph (real long-CoT traces separate steps with blank lines); a paragraph over `MAX_UNIT`
characters is split at single newlines and then at sentence ends, so traces written line by line (Gemini) or
with no blank lines at all still get units small enough for cues to be local. Units tile the text: each runs
from its first character to the first character of the next, so segment boundaries land on paragraph starts,
as in the gold files.

Cues are matched on a unit's *head* (its first two sentences, lowercased): DLCoT's transitions ("Alternatively",
"Let me try a different approach", "Wait", "Let me double-check", "plug back") open a paragraph. A cue alone is
not proof of a new approach: the segmenter weighs it with where it occurs (see `segment.py`).

An *answer statement* is a sentence that states a candidate value ("Therefore, the probability is 33/100.",
"So, \\(x = 5\\) is a valid solution.", a `\\boxed{}`); `stated_value` returns the value as written. This is a
structural cue (where an answer is stated), not answer checking: comparing values with gold is
`dlcot.answers`' job and happens in `label.py`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from dlcot.answers import extract_answer, last_boxed

MAX_UNIT = 1200  # characters; longer paragraphs are split at newlines, then at sentence ends

_PARA = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n\s*")
_TAG_ONLY = re.compile(r"\s*<\|?[\w_]+\|?>\s*")
# A sentence inside a paragraph that turns the reasoning: it starts a unit of its own.
_MID_TURN = re.compile(r"(?<=[.!?])[ \t]+(?P<turn>(?:But wait|Wait|Hold on|Alternatively)\b)")
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z\\$])")

# ---- cue lexicons (matched on the lowercased head of a unit) --------------------------------------------------
_LEAD = r"^(?:[*#>\-\s]|\d+\.\s)*(?:(?:but|so|and|okay|ok|alright|hmm+|well|now|oh|ah|actually|um)[,.!]?\s+)*"
# A different method, said in so many words: the strongest sign of a new approach.
ALT_METHOD = re.compile(
    r"\b(?:another|different|alternative|other|new|better|simpler|easier|cleaner|smarter|quicker|faster|more "
    r"(?:direct|straightforward|efficient|elegant|systematic|clever))\s+(?:way|approach|method|strategy|idea|"
    r"technique|route|formula|tack)\b"
    r"|\b(?:approach|set|set up|think about|look at|tackle|solve|do) (?:this|it|the problem)(?: up)? differently\b"
    r"|\bthink differently\b")
ALTERNATIVELY = re.compile(r"(?:" + _LEAD + r"|[.!?]\s+)(?:alternatively\b|(?:instead|or maybe|or perhaps)\b[ ,])")
RESTART = re.compile(
    r"\b(?:start(?:ing)? over|start again|restart|from scratch|back to the drawing board|"
    r"try (?:it )?again|redo (?:this|it|everything|the (?:problem|whole))|re-?approach|"
    r"go back to (?:the|my) (?:original|"
    r"first|earlier|initial) (?:idea|approach|method))\b")
CHECK = re.compile(
    r"\b(?:double[- ]?check|re-?check|verify|verifying|verification|confirm|make sure|sanity check|sanity-check|"
    r"cross[- ]?check|plug(?:ging)? (?:\w+ )?(?:\w+ )?back|substitut\w* (?:\w+ )?back|check(?:ing)? (?:if|whether|"
    r"my|this|that|the|again|it|by|for|with|each|all|these|those)|let(?:'s| me) check|to check|re-?examine|"
    r"re-?evaluate|re-?calculate|recompute|go (?:over|through) (?:it|this|that|my|the) (?:again|once more)|"
    r"once more|to be (?:sure|safe|thorough|certain)|is (?:that|this|it) (?:correct|right|possible)|"
    r"does (?:that|this|it|\S+) make sense|makes? sense|reread|re-read|look back|mistake|error)\b")
# Self-negation: the trace judges what it just wrote to be wrong (a check, unless it restarts).
NEGATION = re.compile(
    r"\b(?:doesn't|does not|can't|cannot|don't|isn't) (?:seem |look |be |sound )?(?:right|correct)|something(?:'s| is) "
    r"(?:off|wrong)|that's (?:not right|wrong|incorrect)|(?:doesn't|does not|don't) (?:match|agree|add up)|"
    r"contradict\w*|inconsistent|discrepancy\b")
HEDGE = re.compile(r"\b(?:perhaps|maybe|might|could|possibly|not sure|wonder|if there(?:'s| is| are))\b|\?")
WAIT = re.compile(_LEAD + r"(?:wait|hold on|hang on|hmm+|oh|oops|no,|actually|but)\b")
# Weak openers: a new approach only right after the trace gives up on the current one.
WEAK_NEW = re.compile(
    _LEAD + r"(?:maybe|perhaps|let me|let's|i (?:could|can|might|should|will|'ll)|what if|suppose|consider)\b"
    r".{0,40}\b(?:use|using|try|trying|apply|consider|think|approach|set up|look|compute|express|write|instead)\b")
STUCK = re.compile(
    r"\b(?:complicated|messy|tedious|stuck|dead end|not (?:getting|leading) anywhere|doesn't (?:seem to )?(?:help|"
    r"work|lead)|not helpful|not sure (?:this|that) is the (?:best|right)|too (?:complicated|messy|long|hard)|isn't "
    r"working|not working|no progress|going in circles|getting nowhere|giving up|abandon|losing track|this is "
    r"getting|not the best way|not (?:making|getting) progress|can't (?:see|figure))\b")
# Opening of the first approach (as opposed to restating or planning).
WORK_START = re.compile(
    _LEAD + r"(?:first,? |so,? |now,? |then,? )?(?:let(?:'s| me| us)(?: just| first)?|"
    r"i(?:'ll| will| can| could)(?: just| first)?|"
    r"maybe i (?:can|could|should)|we (?:can|could)|i'm going to) (?:start|begin|try|compute|calculate|evaluate|"
    r"solve|set|denote|define|call|write|rewrite|put|express|expand|substitute|plug|simplify|factor|find|use|apply|"
    r"list|count|go through|follow|work|isolate|multiply|divide|add|subtract|place|assign|convert|consider using|"
    r"model|represent|parametri[sz]e|draw|sketch|tabulate|enumerate|check each|square|take)\b"
    r"|" + _LEAD + r"(?:maybe |perhaps )?(?:one (?:way|approach|method)|another idea|the (?:cleanest|simplest|easiest|"
    r"best|most direct) way|assuming|"
    r"starting with|to (?:begin|start) with|using)\b")
PLAN = re.compile(
    _LEAD + r"(?:first(?:ly)?,? (?:i|let me|let's|we) (?:need|should|want|have|must|know|recall|notice|note|"
    r"understand|think|remember|see|observe|should probably)|i (?:need|know|recall|remember|notice|think)|"
    r"let(?:'s| me) (?:understand|recall|think|see what|break|first understand|make sure i understand|parse|read)|"
    r"to (?:solve|tackle|approach|find|answer) this|the (?:problem|question) (?:is|asks|gives|says|wants)|"
    r"(?:this|that) (?:means|is asking)|recall that|remember that|note that|i should)\b")
CLOSER = re.compile(
    r"\b(?:i think (?:that's|this is|it's|i've|i have|that is|we're|i'm)|i'm (?:confident|sure|pretty sure|"
    r"satisfied)|final answer|that's (?:it|the answer|correct|right|all)|i(?:'ve| have) (?:covered|checked|verified|"
    r"confirmed|approached)|(?:seems|looks) (?:correct|right|solid|consistent|good)|everything (?:checks out|is "
    r"consistent)|so the answer is|the answer is)\b")
ANSWER_WORD = re.compile(r"\b(?:final answer|the answer|answer is|answer should be|answer would be|answer:)\b", re.I)
CONCLUSIVE = re.compile(
    r"^(?:[*#>\-\s]|\d+\.\s)*(?:(?:and|but|okay|ok|alright|yes|again|then)[,.!]?\s+)*(?:so|therefore|thus|hence|"
    r"consequently|in conclusion|in either case|in any case|in both cases|in all cases|either way|finally|overall|"
    r"this (?:means|gives|shows|confirms|implies)|that (?:means|gives|confirms)|which (?:means|gives)|it follows|"
    r"i (?:get|got|find|found|obtain|conclude)|we (?:get|have|find|obtain|conclude)|the (?:answer|result|solution|"
    r"value|final)|my answer|this is|the only)\b", re.I)
_VALUE_TAIL = (r"[\s.,;:!)]*(?:$|[,;]\s+(?:which|achieved|since|because|as|so|and|when|where|with|for|giving|i\b|"
               r"that)\b|\s+is (?:the|our|my|a|indeed the) (?:only |unique |correct |final |right )?"
               r"(?:valid |real |positive )?"
               r"(?:solution|answer|value|root|result)\b)")
_INLINE_MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]|\$\$(.+?)\$\$|\$(.+?)\$", re.S)
_PLAIN_VALUE = re.compile(
    r"(?:\bis|\bare|'s|=|\bequals?|\bbe|\bget|\bgot|\bgives?|\bto|:)\s+(?:exactly |just |equal to |approximately |"
    r"still |again |indeed |also )?"
    r"(?P<v>[-+]?(?:\d[\d,]*(?:\.\d+)?(?:\s*[/^*×]\s*\d+(?:\.\d+)?)*(?:\s*\*?\s*\\?sqrt[({]?\d+[)}]?)?|"
    r"[a-z]\s*=\s*-?\d[\d,./]*|\\?[a-z]+\{[^{}]*\}(?:\{[^{}]*\})?|\\pi|π|√\d+|\d*\s*\\?sqrt[({]?\d+[)}]?|"
    r"\([^()]{1,40}\)|\[[^\[\]]{1,40}\])(?:\s*(?:\\%|%|°|degrees|\\circ|\^\\circ))?)"
    r"(?:\s+[a-z]+){0,2}?" + _VALUE_TAIL,  # a unit may follow: "42 inches", "1.25 miles"
    re.I)
_AS_ANSWER = re.compile(r"(?P<v>[-+]?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)\s+as (?:the|my|our) (?:final )?"
                        r"(?:answer|result)\b", re.I)
# "$\\frac{\\sqrt{3}}{3}$ is the simplified form": a bare expression named as the result
_IS_ANSWER = re.compile(r"\s*is (?:the|my|our|indeed the) (?:\w+ ){0,2}(?:answer|result|form|value|solution)\b", re.I)
_CURRENCY = re.compile(r"(?<![\\$])\$(?=\d)")
_ARITH = re.compile(r"\d\s*[-+*/×÷^]\s*\(?\d|=\s*-?\d")
_MULTI = re.compile(r"\\text\{\s*(?:or|and)\s*\}|\bor\b|\band\b|\\quad|,\s*[a-z]\s*=", re.I)
_CLAUSE = re.compile(r",\s+(?:which|achieved|attained|since|because|as|when|where|with|giving|so that|but|and "
                     r"(?:this|that|it))\b")
# Every value form above (a box, inline math, a number, "\\pi", "x = 3", "\\frac{..}", "(a, b)", "[1, 2]") holds one of
# these characters: a sentence without any states no value.
_MAY_STATE = re.compile(r"[\d\\${(\[π√]")
_MATH_VALUE = re.compile(r"[\d\\]|^[a-z]$|^[-+]?\w{1,3}$", re.I)


def head_of(text: str, n_sentences: int = 2, limit: int = 240) -> str:
    """The first `n_sentences` sentences (at most `limit` characters), lowercased: where a paragraph's cue sits."""
    text = text.lstrip()[:limit]
    cut = 0
    for _ in range(n_sentences):
        m = _SENT_END.search(text, cut + 1) if cut < len(text) else None
        if not m:
            cut = len(text)
            break
        cut = m.end()
    return text[:cut].lower()


def sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences of `text` (a line break also ends one), shifted by `offset`; the
    spans exclude surrounding whitespace."""
    out = []
    line_start = 0
    for line in text.split("\n"):
        cut = 0
        for m in _SENT_END.finditer(line):
            out.append((line_start + cut, line_start + m.start()))
            cut = m.end()
        out.append((line_start + cut, line_start + len(line)))
        line_start += len(line) + 1
    spans = []
    for a, b in out:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append((offset + a, offset + b))
    return spans


def stated_value(sentence: str) -> str | None:
    """The candidate answer a sentence states, as written, or None.

    `\\boxed{...}` first; then the right-hand side of the last `=` in the last inline-math span near the end
    ("so \\(x = 5\\) is valid" -> "5"); then a plain value after "is"/"="/"equals" at the end of the sentence
    ("the probability is 33/100." -> "33/100", "the smallest sum is 129, achieved when ..." -> "129").
    """
    if not _MAY_STATE.search(sentence):
        return None  # most sentences of a trace are prose: nothing below can match without one of these
    if "\\boxed" in sentence or "\\fbox" in sentence:
        boxed = last_boxed(sentence)
        if boxed:
            return boxed
    dollars = sentence.count("$")
    if dollars % 2 or (dollars and dollars == len(_CURRENCY.findall(sentence))):
        sentence = _CURRENCY.sub("", sentence)  # "$14.40 * 2.5 = $36": currency, not math delimiters
    head = _CLAUSE.split(sentence, maxsplit=1)[0]
    if head != sentence:
        return _value_in(head) or _value_in(sentence)
    return _value_in(sentence)


_PARAS_BACK = 3  # trailing paragraphs ("I think that's correct.") skipped when looking for the final statement


@lru_cache(maxsize=8)  # segmenting, labelling and enhancing one trace each read its final statement
def final_statement(text: str) -> tuple[str | None, int | None]:
    """(answer, offset of the paragraph stating it): the answer a reasoning text ends with, or (None, None).

    The answer is read from the last paragraph that states one, after skipping up to three trailing closers
    (short paragraphs that state no value: "I think that's correct." after "Therefore, r = 4."), and only from
    it (or the paragraph before it): first with `dlcot.answers.extract_answer`, then, for the forms it does not
    read ("I'm confident that the remainder is 3.", "so 6/3 + 5/3 + 3/3 = 14/3."), as answer statements are
    read here (`stated_value`, last sentence first). Reading one paragraph means an "is the answer 1/3?"
    musing elsewhere never stands in for the conclusion; the segmenter starts the conclusion no later than this
    paragraph, so every policy keeps it and the enhanced text is read from the same words as the raw one.
    Comparing the answer with gold is `dlcot.answers`' job.
    """
    paras, pos = [], 0
    for part in text.split("\n\n"):
        if part.strip():
            paras.append((pos, part))
        pos += len(part) + 2
    k = len(paras)
    while k > 1 and len(paras) - k < _PARAS_BACK and _is_closer(paras[k - 1][1]):
        k -= 1
    for start, para in reversed(paras[max(0, k - 2):k]):  # the last stating paragraph, else the one before it
        ans = extract_answer(para)
        if ans:
            return ans, start
        tail = para[-4000:]
        for a, b in reversed(sentences(tail)):
            value = stated_value(tail[a:b])
            if value:
                return value, start
    return None, None


_FRAGMENT_END = re.compile(r"[\w,;:=+\-/\\({\[<^_|&']\s*$")  # a word, a number or a connective: no sentence end


def trails_off(text: str, stated_at: int) -> str | None:
    """The last words of `text` when it goes on past the paragraph of its final statement (at `stated_at`) and
    stops mid-sentence ("...s = 2107.\n\nAlternatively, I can think"): a generation cut at a length limit
    whose thought has no tags to show it. None when the statement is in the last paragraph ("The answer is 145")
    or the text ends as a sentence does. Deliberately looser than `answer_prose._ends_complete`, which asks
    whether a value can be read from the end (a closing tag or a list item fails it): here only a cut counts."""
    body = text.rstrip()
    if stated_at >= body.rfind("\n\n") or not _FRAGMENT_END.search(body):
        return None
    return body[-60:]


def _is_closer(para: str) -> bool:
    """A short closing paragraph that states no value ("I think that's correct.", "**Final Answer**")."""
    return len(para) < 200 and "\\boxed" not in para and extract_answer(para) is None and not any(
        stated_value(para[a:b]) for a, b in sentences(para))


def _value_in(sentence: str) -> str | None:
    maths = list(_INLINE_MATH.finditer(sentence))
    if maths:
        after = sentence[maths[-1].end():]
        plain = _PLAIN_VALUE.search(after)
        if plain:  # "... $\\lceil\\sqrt{20}\\rceil^2$ is 25."
            return plain.group("v").strip().rstrip(",.")
        for m in reversed(maths[-2:]):
            after = sentence[m.end():]
            if len(after) > 60:
                break
            body = next(g for g in m.groups() if g is not None).strip()
            # an equation gives its right-hand side; a bare expression counts only at the very end of the sentence
            if "=" not in body and after.strip(" .,;:!)") != "" and not _IS_ANSWER.match(after):
                continue
            value = _rhs(body)
            if value and _MATH_VALUE.search(value):
                return value
    as_answer = _AS_ANSWER.search(sentence)
    if as_answer:
        return as_answer.group("v")
    m = None
    for m in _PLAIN_VALUE.finditer(sentence):  # noqa: B007  (the last match is the one we want)
        pass
    if m is not None:
        value = m.group("v").strip()
        if "=" in value:
            value = value.rsplit("=", 1)[1].strip()
        return value.rstrip(",.") or None
    return None


def _rhs(math: str) -> str | None:
    """Right-hand side of the last top-level `=` of a math span, or the span itself if it is short and has none."""
    depth, cut = 0, -1
    for i, ch in enumerate(math):
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        elif ch == "=" and depth <= 0:
            cut = i
    if cut >= 0 and _MULTI.search(math) and math.count("=") >= 2:
        return None  # "x = 1 \\quad \\text{or} \\quad x = 5": a list of candidates, not an answer
    value = math[cut + 1:] if cut >= 0 else math
    value = re.sub(r"\\(?:quad|qquad|,|;|!)|\\text\{\s*\}|\\(?:left|right)(?=[()\[\]|.])", " ", value).strip()
    value = re.sub(r"\\pmod\{[^{}]*\}|\(\s*\\bmod[^)]*\)", "", value).strip()
    if not value or len(value) > 60:
        return None
    if cut < 0 and len(value) > 25:
        return None
    return value.rstrip(".,;")


def canon(value: str | None) -> str:
    """A loose canonical form for comparing stated values without math-verify (spacing, \\dfrac, $, braces)."""
    if not value:
        return ""
    v = value.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    v = re.sub(r"\\text\{([^{}]*)\}|\\mathrm\{([^{}]*)\}", lambda m: m.group(1) or m.group(2) or "", v)
    v = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", v)
    v = re.sub(r"\\frac(\d)(\d)", r"\1/\2", v)
    v = re.sub(r"[\s${}]|\\[,;!]|\\quad", "", v).lower()
    v = re.sub(r"^[a-z]=(?=-?\d)", "", v)
    v = re.sub(r"(?<=\d),(?=\d{3}\b)", "", v)
    return v.rstrip(".")


@dataclass
class Unit:
    """A paragraph (or a piece of a long one): text[start:end] including its trailing separator."""

    start: int
    end: int
    text: str  # the unit's own text (text[start:end])

    @cached_property
    def head(self) -> str:
        return head_of(self.text)

    @cached_property
    def body(self) -> str:
        return self.text.strip()

    @cached_property
    def n_equals(self) -> int:
        return self.text.count("=") - self.text.count("==")

    @cached_property
    def has_display_math(self) -> bool:
        return "\\[" in self.text or "$$" in self.text or "\\begin{" in self.text

    @cached_property
    def computes(self) -> bool:
        """Does the unit carry out a computation (display math, chained equations, arithmetic on numbers)?"""
        return self.has_display_math or self.n_equals >= 2 or bool(_ARITH.search(self.text))

    @cached_property
    def mathy(self) -> bool:
        """Does the unit compute something (display math, or equations with numbers)?"""
        if self.has_display_math or self.n_equals >= 2:
            return True
        return self.n_equals >= 1 and sum(map(str.isdigit, self.text)) >= 2

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        return sentences(self.text, self.start)


def split_units(text: str, max_unit: int = MAX_UNIT) -> list[Unit]:
    """Tile `text` with units: paragraphs, with long ones split at newlines and then at sentence ends."""
    if not text:
        return []
    starts = [0] + [m.end() for m in _PARA.finditer(text) if m.end() < len(text)]
    if len(starts) > 1 and _TAG_ONLY.fullmatch(text[: starts[1]]):
        starts.pop(1)  # "<|begin_of_thought|>\n\n" opens the restatement
    bounds = [*starts, len(text)]
    out: list[int] = []
    for s, e in zip(bounds, bounds[1:], strict=False):
        out.extend(_split_long(text, s, e, max_unit))
        out.extend(m.start("turn") for m in _MID_TURN.finditer(text, s, e) if m.start("turn") - s >= 50)
    out = sorted(set(out))
    ends = [*out[1:], len(text)]
    return [Unit(s, e, text[s:e]) for s, e in zip(out, ends, strict=False) if e > s]


def _split_long(text: str, s: int, e: int, max_unit: int) -> list[int]:
    """Start offsets of the pieces of text[s:e]: itself, or its lines, or its sentences (then fixed chunks)."""
    if e - s <= max_unit:
        return [s]
    starts = [s] + [m.end() for m in _LINE.finditer(text, s, e) if m.end() < e]
    if len(starts) == 1:
        starts = [s] + [m.end() for m in _SENT_END.finditer(text, s, e) if m.end() < e]
    # merge tiny pieces (display-math lines, list items) so no piece is needlessly small
    merged: list[int] = []
    for i, st in enumerate(starts):
        nxt = starts[i + 1] if i + 1 < len(starts) else e
        if merged and st - merged[-1] < 80 and nxt - st < 80:
            continue
        merged.append(st)
    out: list[int] = []
    bounds = [*merged, e]
    for a, b in zip(bounds, bounds[1:], strict=False):
        if b - a > 4 * max_unit:  # no sentence breaks at all: fixed chunks at whitespace
            pos = a
            while b - pos > 4 * max_unit:
                out.append(pos)
                cut = text.rfind(" ", pos + max_unit, pos + 4 * max_unit)
                pos = cut + 1 if cut > pos else pos + 4 * max_unit
            out.append(pos)
        else:
            out.append(a)
    return out
