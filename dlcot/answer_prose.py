"""Reading an answer stated in prose at the end of an output (the convention rule 4 of `dlcot.answers`).

Long-CoT students often stop without a box, ending on a statement ("The height is 5 cm.", "…so the sum is
indeed 284. I think that's the final answer.", "I'm confident that 5 students participate in both."). The peers
a user compares against (math-verify on the completion, the Qwen2.5-Math and SkyThought evaluators) credit
these, so dlcot reads them too, but only *at the end*: the last sentences of the text, after at most three short
closing remarks, and only when the text ends on a complete sentence. A text cut mid-sentence or ending in doubt
("Wait, …", "Alternatively") states nothing, and a sentence that recalls or rejects a value ("I recall 1/2, but
that ignores y<3") is never its answer. Nor are the sentences of unfinished work, which a held-out set of real
outputs showed being read as answers (tests/benchmarks/bench_grading.py): a text cut inside a display `\\[`, a
sentence that explores or supposes ("Alternatively, perhaps …", "perhaps the median is 6"), a range ("from 01 to
31"), an expression in words ("1 minus the probability …"), a value found "not an integer", a lead-in ending in ":", a
pattern ("…, and so on", "1, 2, ..., 12"), or a fragment with unbalanced braces. Only the tail is read, so the cost
does not grow with the trace.
"""
from __future__ import annotations

import re

_TAIL = 3000  # characters read from the end
_MAX_CLOSERS = 3
_MATH = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$[^$\n]*\$", re.DOTALL)
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n\s*")
_UNWRAP = re.compile(r"\\[()\[\]]|\$+")
# Word verbs are tried before "=": "the plane is 5x - 7y + 11z + 4 = 0" states the equation, not 0.
_VERBS = re.compile(r"\b(?:is|are|was|were|equals|be|becomes|gives|get|gets|got|yields|makes|to)\b|:(?=\s)"
                    r"|\b(?:increases?|decreases?|increased|decreased|reduced|grows?|drops?|rises?|falls?) by\b")
_RANGE = re.compile(r"\bfrom\s+\S+\s*$", re.IGNORECASE)  # "varies from 01 to 31": a range, not a result
_EQUALS = re.compile(r"(?<![<>!\\])=")
# The left side of "x = 5", "a_5 = 2", "p(8) = 3", "\\tan A = 2": one symbol, so the value is the right side.
_SYMBOL = re.compile(r"^\s*(?:\\[A-Za-z]+\s*)?[A-Za-z]{1,2}(?:_\{?\w+\}?)?(?:\^\{?\w+\}?)?(?:\([^()]*\))?\s*$")
_CLAUSE = re.compile(r"(?:\s+\((?=[A-Za-z]{2})|,\s*not\b|(?:,\s*|\s+)(?:which|since|because|as|so|but|achieved|"
                     r"where|when|that|for|if|given|thus|therefore|hence|and so|satisfying|i\.e\.|so that)\b).*$",
                     re.IGNORECASE | re.DOTALL)
_LEADING = re.compile(r"^(?:indeed|just|simply|exactly|clearly|still|also|then|now|therefore|thus|actually|"
                      r"equal to|approximately|about|around|only|precisely|definitely|obviously|:|=|"
                      r"(?:so|hence)(?=\W))\s*", re.I)
_UNITS = re.compile(r"((?:\s+(?:\\text\{[^{}]*\}|[A-Za-z][A-Za-z'’-]*[²³]?\.?)){1,6})$")
_OPERATOR_WORDS = re.compile(r"\s*(?:minus|plus|times|divided|multiplied|over)\b", re.IGNORECASE)
_FUNCS = {"sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod", "pi", "arcsin", "arccos",
          "arctan", "inf", "infty"}
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_TEXT_CMD = re.compile(r"\\(?:text|mathrm|mbox|textbf)\s*\{[^{}]*\}")
NUMBER_WORDS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}
NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
                     "ninety": 90, "hundred": 100})
_NUMBER_WORD = re.compile(r"^(" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")(?:-(one|two|three|"
                          r"four|five|six|seven|eight|nine))?\b(.*)$", re.IGNORECASE | re.DOTALL)
_HEDGES = r"wait|but wait|hold on|hmm+|perhaps|maybe"
# A sentence opening like this, with no value of its own, ends the search for an answer stated at the end.
_DOUBT = re.compile(rf"^(?:{_HEDGES}|alternatively|but|however|or|although|"
                    r"let me|let's|let us|now,? let|next|first|then,? let)\b", re.IGNORECASE)
# "at first", "earlier" alone are often plain facts ("bottle caps at first = 42 - 29"): only with a thinker.
_RECALLS = re.compile(r"\b(?:recall|remember|recalled|thought|(?:initially|at first|earlier|previously|originally),? "
                      r"(?:I|we)|suppose|supposing|assume|assuming|if|whether|mistakenly|wrongly|"
                      r"guess(?:ed)?|seem(?:ed|s)? like|perhaps|maybe)\b", re.IGNORECASE)
# A sentence opening like this explores or doubts: a value in it is a candidate, never the stated answer. A bare
# "Alternatively, …" is not enough: "Alternatively, I can count it as 9 * 7 = 63." re-derives the answer.
_EXPLORES = re.compile(rf"^(?:alternatively,?\s+)?(?:{_HEDGES})\b", re.IGNORECASE)
_REJECTS = re.compile(r"^[^.\n]{0,80}?\b(?:but|however|although|though)\b[^.\n]{0,80}?\b(?:wrong|incorrect|ignor\w*|"
                      r"mistake\w*|not|n't|forgot|miss\w*|invalid|error|overcount\w*|undercount\w*)\b|"
                      r"^\W{0,3}(?:is|was)?\s*(?:wrong|incorrect|not correct|a mistake)\b|"
                      r"^[^.\n]{0,120}?,\s*(?:(?:which is |that is )?not (?:an? )?(?:integer|whole number|valid|"
                      r"possible|allowed)|invalid|impossible)\b", re.IGNORECASE)
_CLAUSE_START = re.compile(r"[,;:]\s+|\b(?:so|but|then|therefore|thus|hence|since)\b", re.IGNORECASE)
_CUES = re.compile(r"\b(?:therefore|thus|hence|so|in conclusion|confident|conclude|final|answer|total|in all|"
                   r"altogether|in summary|overall)\b", re.IGNORECASE)
_ELLIPSIS = re.compile(r",\s*(?:\.\.\.|…|\\[lc]?dots)\s*,")  # an elided list: "1, 2, ..., 9"
_ENUMERATION = re.compile(r"\b(?:and so on|and so forth|etc)\W*$", re.IGNORECASE)
_COUNTED = re.compile(r"(?<![\w.\\/^])(-?\d+(?:,\d{3})*(?:\.\d+)?)(?!\w|/\d|\.\d)")


def is_rejection(before: str, after: str) -> bool:
    """Whether a value between `before` (its sentence so far) and `after` (what follows) is only recalled,
    supposed or rejected rather than adopted: "I recall the answer is 1/2", "…is 1/2, but that ignores y<3"."""
    sentence = re.split(r"[.!?](?:\s+|(?=[A-Z])|$)", before)[-1]
    clause = _CLAUSE_START.split(sentence)[-1]  # "I recall 1/2, but …, so the probability is 5/9": its own clause
    return bool(_RECALLS.search(clause) or _REJECTS.search(after))


def _number_word(text: str) -> str | None:
    m = _NUMBER_WORD.match(text.strip())
    if not m or (m.group(3).strip() and not _UNITS.fullmatch(" " + m.group(3).strip().rstrip("."))):
        return None
    n = NUMBER_WORDS[m.group(1).lower()] + (NUMBER_WORDS[m.group(2).lower()] if m.group(2) else 0)
    return str(n)


def clean_value(text: str) -> str | None:
    """The value at the start of `text` (what follows "is" / "=" / "answer is"), without math delimiters,
    hedges, a trailing clause, or a unit / count noun ("5 cm" → `5`, "three boxes" → `3`); None when the text
    does not begin with a value (prose, a judgement, an unfinished expression)."""
    t = _UNWRAP.sub(" ", text).strip()
    t = _CLAUSE.sub("", t).strip().rstrip(".!;,: ").strip()
    for _ in range(3):
        t = re.sub(r"^[,;]\s*", "", _LEADING.sub("", t).strip())
    if not t:
        return None
    if (word := _number_word(t)) is not None:
        return word
    expr = t
    units = _UNITS.search(t)
    if units and _OPERATOR_WORDS.match(units.group(1)):
        return None  # "1 minus the probability that …": an expression in words, not a value and its unit
    if units and units.start() > 0 and not re.search(r"[-+*/^=(\[{,]\s*$", t[:units.start()]):
        expr = t[:units.start()].strip()
    expr = re.sub(r"^\$(?=\d)", "", expr).rstrip(".,;: ")
    if expr.endswith(")") and expr.count(")") > expr.count("("):
        expr = expr[:-1].rstrip()  # "…the correct answer is 14)" closing a remark in parentheses
    if expr.startswith("\\$"):
        expr = expr[2:]
    if not expr or not re.search(r"[\d\\π√∞]", expr) or re.search(r"[-+*/^=(\[{,]$", expr) or (
            expr.count("{") != expr.count("}")):
        return None  # no value, an unfinished one, or a fragment cut out of a longer expression
    if any(w.lower() not in _FUNCS for w in _WORD.findall(_TEXT_CMD.sub("", expr))):
        return None  # words left inside: prose, not a value
    return _right_side(expr)


def _right_side(expr: str) -> str:
    """`x = 5` and `93 - 15 = 78` → the last right-hand side; an equation answer (`5x - 7y + 4 = 0`) as is."""
    sides = _EQUALS.split(expr)
    if len(sides) < 2:
        return expr
    lhs = re.sub(r"\\[A-Za-z]+", "", sides[0])
    if re.search(r"[A-Za-z]", lhs) and not _SYMBOL.match(sides[0]):
        return expr.strip()
    return sides[-1].strip() or expr.strip()


def _sentences(tail: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences of `tail`; math spans are never split."""
    spans = [m.span() for m in _MATH.finditer(tail)]
    cuts, k = [0], 0
    for m in _BOUNDARY.finditer(tail):
        while k < len(spans) and spans[k][1] <= m.start():
            k += 1
        if k < len(spans) and spans[k][0] < m.start() < spans[k][1]:
            continue
        cuts.append(m.end())
    cuts.append(len(tail))
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if tail[a:b].strip()]


def _statement(sentence: str) -> str | None:
    """The value one sentence states: after its last "is" / "=" / ":" that is followed by a value, else the one
    number of a concluding sentence ("so I'm confident that 5 students participate"); None when it states none
    or only recalls or rejects one."""
    flat = _UNWRAP.sub(" ", sentence)
    if _ENUMERATION.search(flat) or _EXPLORES.match(flat.strip()) or _ELLIPSIS.search(flat) or (
            flat.rstrip().endswith(":")):
        return None  # a pattern ("…, and so on", "1, 2, ..., 9"), an exploration, or a lead-in ("For k = 18:")
    verbs = [v for v in _VERBS.finditer(flat) if not (v.group(0) == "to" and _RANGE.search(flat, 0, v.start()))]
    for v in reversed(verbs):
        value = clean_value(flat[v.end():])
        if value:
            return None if is_rejection(flat[:v.start()], flat[v.end():]) else value
    start = verbs[-1].end() if verbs else 0
    equals = list(_EQUALS.finditer(flat, start))
    if equals:  # an equation after the last word verb, whole ("5x - 7y + 4 = 0") or its right side ("x = 5")
        value = clean_value(flat[start:]) or clean_value(flat[equals[-1].end():])
        if value:
            return None if is_rejection(flat[:start], flat[equals[-1].end():]) else value
    if _CUES.search(flat) and not _RECALLS.search(flat):
        numbers = _COUNTED.findall(flat)
        if len(numbers) == 1:
            return numbers[0].replace(",", "")
        words = [w for w in re.findall(r"[A-Za-z]+", flat) if w.lower() in NUMBER_WORDS and w.lower() != "one"]
        if len(words) == 1 and not numbers:
            return str(NUMBER_WORDS[words[0].lower()])
    return None


def _ends_complete(tail: str) -> bool:
    """The text ends on a finished sentence or math span, not mid-sentence ("…for some", "…is 1/", "So,",
    a list item's number "1.", an unclosed brace, `\\(` or display `\\[`)."""
    last = tail.rsplit("\n", 1)[-1]
    if re.fullmatch(r"\s*\d{1,2}\.", last) or last.count("{") > last.count("}") or (
            last.count("\\(") > last.count("\\)")) or tail.rfind("\\[") > tail.rfind("\\]"):
        return False
    if re.search(r"(?:\$|\\\)|\\\]|[.!])\s*$", tail):
        return True
    return bool(re.search(r"[\d}%)]\s*$", tail)) and not re.search(r"[-+*/=^]\s*\S{0,3}\s*$", tail)


def stated_at_end(text: str) -> tuple[int, str] | None:
    """(offset in `text`, value) of the answer `text` states at its end, or None."""
    offset = max(0, len(text) - _TAIL)
    tail = text[offset:].rstrip()
    if not tail or not _ends_complete(tail):
        return None
    for skipped, (a, b) in enumerate(reversed(_sentences(tail))):
        sentence = tail[a:b].strip()
        if sentence.endswith("?"):
            return None
        value = _statement(sentence)
        if value:
            return offset + a, value
        if _DOUBT.match(sentence):
            return None
        if skipped >= _MAX_CLOSERS or len(sentence) > 160:  # else a closing remark ("I think that's it.")
            return None
    return None
