"""Correctness checks for verifiable prompts (spec section 3).

Two kinds of verifiable prompt:

- **answer sets** (the built-in task): many distinct answers are correct ("Name a planet").
  ``answer_in_set`` decides correctness and returns the canonical answer, a natural class key.
- **math** with one ground truth: ``math_equivalent`` decides mathematical equivalence with
  ``math-verify`` (``verify(parse(gold), parse(pred))``), never string equality;
  ``math_final_answer`` and ``canonical_math_answer`` give the exact class key of a solution
  (``darling.partition.keyed.MathAnswerPartition``).

This module is the one home of final-answer extraction and answer canonicalisation: the quality
functions, the key partitions and the evaluation all use it.

Everything here is pure: no I/O, no logging. ``math_verify`` is imported lazily (it pulls in
sympy, which is slow to import).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import lru_cache

ARTICLES = frozenset({"a", "an", "the"})
"""Words dropped by ``normalise_answer`` wherever they occur (SQuAD-style normalisation)."""

_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_UNIT_VALUE = {word: value for value, word in enumerate(_UNITS)}
_TENS_VALUE = {word: 20 + 10 * i for i, word in enumerate(_TENS)}

_PLUS_PLUS = re.compile(r"(?<=\w)\+\+")  # C++, Notepad++
_SHARP = re.compile(r"(?<=\b[^\W\d_])#")  # C#, F#: one letter then '#'
_NON_WORD = re.compile(r"[\W_]+")

_BOXED = "\\boxed{"
_MARKER = re.compile(r"\b(?:final answer|answer)\s*(?:is\b|:)\s*", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_FLUFF = re.compile(
    r"^(?:sure(?: thing)?|certainly|of course|okay|ok|absolutely|yes|great question"
    r"|good question|here(?:'s| is) (?:one|an answer|my answer))\b[\s,!.:;-]*",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"\*\*|__")  # markdown bold
_BULLET = re.compile(r"^[-*\u2022]+\s+")
_COPULA = re.compile(r"\s+(?:is|are|was|would be)\s+", re.IGNORECASE)
_WRAPPING = " \t\"'`*_.,;:!?()[]"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_FRAC = re.compile(r"^\\[dt]?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$")
_ANSWER_PREFIX = re.compile(r"^(?:final answer|the answer is|answer)\s*[:=]?\s*", re.IGNORECASE)
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}")

PLURAL_SUFFIXES = ("s", "es")
"""A mention may carry a plural suffix when the accepted answer ends in a letter
("Bananas" names "banana"); number answers never do ("1990s" does not name 1990)."""


class MathVerifyError(RuntimeError):
    """``math_verify`` failed (internal error or timeout): the answer is neither right nor wrong.

    Raised instead of returning False, so that a verifier failure is never read as "incorrect".
    """


def normalise_answer(text: str) -> str:
    """Canonical form of a short answer, used on both sides of every comparison.

    Steps: strip accents (NFKD, drop combining marks); casefold; ``x++`` -> ``x plus plus`` and a
    single letter followed by ``#`` -> ``<letter> sharp`` (so C, C++ and C# stay distinct);
    every run of punctuation/whitespace -> one space; drop the articles a/an/the; number words
    0-99 -> digits ("fifty-three" -> "53").

    >>> normalise_answer("  The Côte d'Ivoire! ")
    'cote d ivoire'
    >>> normalise_answer("Fifty-three")
    '53'
    >>> normalise_answer("C++"), normalise_answer("C#"), normalise_answer("C")
    ('c plus plus', 'c sharp', 'c')
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = _SHARP.sub(" sharp ", _PLUS_PLUS.sub(" plus plus ", text))
    words = [w for w in _NON_WORD.sub(" ", text).split() if w not in ARTICLES]
    return " ".join(_number_words_to_digits(words))


def _number_words_to_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _TENS_VALUE:
            value = _TENS_VALUE[word]
            following = _UNIT_VALUE.get(words[i + 1], 0) if i + 1 < len(words) else 0
            if 1 <= following <= 9:
                value += following
                i += 1
            out.append(str(value))
        elif word in _UNIT_VALUE:
            out.append(str(_UNIT_VALUE[word]))
        else:
            out.append(word)
        i += 1
    return out


def extract_final_answer(response: str) -> str:
    """The short answer inside a chat response (raw text; compare with ``normalise_answer``).

    Heuristics, first that applies:

    1. the content of the last ``\\boxed{...}``;
    2. the rest of the sentence after the last "answer is" / "answer:" / "final answer:";
    3. otherwise the first sentence or line that is not pure fluff ("Sure!", "Of course.",
       "Here's one:"), with a leading bullet removed; if it contains a colon, the part after
       the last colon ("Here is a prime: 53"); if it contains a copula (is/are/was/would be),
       the shorter of the part before the first copula and the part after the last one
       ("Mars is a planet." -> "Mars"; "One prime between 50 and 100 is 53." -> "53").

    Markdown bold markers are removed first; surrounding quotes and punctuation are stripped.

    >>> extract_final_answer("Sure! The answer is Mars.")
    'Mars'
    >>> extract_final_answer("Jupiter is the largest planet of the solar system.")
    'Jupiter'
    >>> extract_final_answer("A yellow fruit is a **banana**.")
    'a banana'
    """
    text = _EMPHASIS.sub("", response).strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    markers = list(_MARKER.finditer(text))
    if markers:
        rest = text[markers[-1].end() :]
        return _SENTENCE_BREAK.split(rest, maxsplit=1)[0].strip(_WRAPPING)
    for sentence in _SENTENCE_BREAK.split(text):
        sentence = _FLUFF.sub("", _BULLET.sub("", sentence.strip())).strip(_WRAPPING)
        if sentence:
            return _core_of_sentence(sentence)
    return ""


def _core_of_sentence(sentence: str) -> str:
    if ":" in sentence:
        after_colon = sentence.rsplit(":", 1)[1].strip(_WRAPPING)
        sentence = after_colon or sentence
    parts = _COPULA.split(sentence)
    if len(parts) >= 2:
        left, right = parts[0], parts[-1]
        sentence = right if len(right.split()) < len(left.split()) else left
    return sentence.strip(_WRAPPING)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (nested braces allowed), or None.

    >>> last_boxed(r"so \\boxed{\\frac{1}{2}} and \\boxed{3}")
    '3'
    """
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, begin = 0, start + len(_BOXED)
    for pos in range(begin, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            if depth == 0:
                return text[begin:pos]
            depth -= 1
    return None


def math_final_answer(text: str) -> str:
    """The final answer of a solution: the last ``\\boxed{}``, else the last number, else the
    last non-empty line (raw, canonicalise with ``canonical_math_answer``)."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    if numbers:
        return numbers[-1]
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def canonical_math_answer(answer: str) -> str | Fraction:
    """Canonical form of a final answer: an exact ``Fraction`` for numbers, else clean text.

    Strips ``$``, ``\\text{}``, an "answer:" prefix, surrounding whitespace and trailing
    punctuation; lower-cases; collapses whitespace; removes thousands commas. ``"0.50"``,
    ``"1/2"`` and ``"\\frac{1}{2}"`` all give ``Fraction(1, 2)``.
    """
    text = _TEXT_WRAPPER.sub(r"\1", answer.replace("$", "")).strip()
    text = _ANSWER_PREFIX.sub("", text).strip().rstrip(".,;:!?").strip().lower()
    text = " ".join(text.split())
    frac = _FRAC.match(text)
    candidate = f"{frac.group(1)}/{frac.group(2)}" if frac else text
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", candidate):
        candidate = candidate.replace(",", "")
    try:
        return Fraction(candidate)
    except (ValueError, ZeroDivisionError):
        return text


def answer_in_set(
    response: str, answers: Sequence[str], aliases: Mapping[str, str] | None = None
) -> tuple[bool, str | None]:
    """Whether ``response`` gives one of the accepted ``answers``; returns ``(correct, canonical)``.

    ``answers`` lists every accepted answer (aliases included); ``aliases`` maps an alias to its
    canonical answer (``{"USA": "United States"}``); an answer without an entry is canonical.
    All comparisons are between ``normalise_answer`` forms. Rules, in order:

    1. the normalised ``extract_final_answer(response)`` is an accepted answer -> correct;
    2. otherwise the response is scanned for accepted answers as whole words/phrases (longest
       first, so "Equatorial Guinea" is not also read as "Guinea"; alphabetic answers may carry a
       plural "s"/"es"). Exactly one canonical answer mentioned -> correct. Several different
       canonical answers -> **incorrect**: a list of candidates is a hedge, not an answer, and
       rewarding it would teach the policy to enumerate the set. None -> incorrect.

    The canonical answer (``None`` when incorrect) is a class key: "USA" and "United States"
    give the same one.

    >>> answer_in_set("Sure! Mars is a planet.", ["Mars", "Venus"])
    (True, 'Mars')
    >>> answer_in_set("I'd go with the USA.", ["United States", "USA"], {"USA": "United States"})
    (True, 'United States')
    >>> answer_in_set("Mars or Venus", ["Mars", "Venus"])
    (False, None)
    """
    if isinstance(answers, str) or len(answers) == 0:
        raise ValueError(f"answers must be a non-empty list of strings, got {answers!r}")
    aliases = aliases or {}
    canonical_of, pattern = _answer_index(tuple(answers), tuple(sorted(aliases.items())))
    final = normalise_answer(extract_final_answer(response))
    if final in canonical_of:
        return True, canonical_of[final]
    mentioned = {canonical_of[m.group(1)] for m in pattern.finditer(normalise_answer(response))}
    if len(mentioned) == 1:
        return True, mentioned.pop()
    return False, None


@lru_cache(maxsize=1024)
def _answer_index(
    answers: tuple[str, ...], aliases: tuple[tuple[str, str], ...]
) -> tuple[dict[str, str], re.Pattern[str]]:
    """Normalised form (and plural forms) -> canonical answer, and a whole-phrase regex."""
    alias_to_canonical = dict(aliases)
    canonical_of: dict[str, str] = {}
    for answer in answers:
        key = normalise_answer(answer)
        if key:
            canonical_of.setdefault(key, alias_to_canonical.get(answer, answer))
    for key, canonical in list(canonical_of.items()):
        if key[-1].isalpha():
            for suffix in PLURAL_SUFFIXES:
                canonical_of.setdefault(key + suffix, canonical)
    if not canonical_of:
        raise ValueError(f"no accepted answer survives normalisation: {answers!r}")
    alternatives = "|".join(re.escape(k) for k in sorted(canonical_of, key=len, reverse=True))
    return canonical_of, re.compile(rf"(?<![^\W_])({alternatives})(?![^\W_])")


def math_equivalent(response: str, ground_truth: str, *, timeout_seconds: int | None = 5) -> bool:
    """Whether ``response`` is mathematically equivalent to ``ground_truth`` (spec section 3).

    ``verify(parse(gold), parse(pred))`` from ``math-verify``; the ground truth is wrapped in
    ``$...$`` unless it already holds ``$`` or ``\\boxed``, so that bare LaTeX such as ``x^2+1``
    parses. A response with no extractable answer is incorrect (False).

    Errors are never read as "incorrect":

    - ``ValueError`` when the ground truth itself cannot be parsed;
    - ``MathVerifyError`` when math-verify raises or times out, and when called outside the
      main thread with a timeout: math-verify's timeouts use ``signal.alarm``, which only works
      in the main thread. Pass ``timeout_seconds=None`` to run without a timeout there (then a
      pathological input can hang the caller).

    >>> math_equivalent("so the answer is $\\\\frac{1}{2}$", "0.5")
    True
    """
    if timeout_seconds is not None and threading.current_thread() is not threading.main_thread():
        raise MathVerifyError(
            "math_equivalent with a timeout must run in the main thread (math-verify uses "
            "signal.alarm); pass timeout_seconds=None to run without a timeout in a worker thread"
        )
    from math_verify import parse, verify

    gold_text = ground_truth
    if "$" not in ground_truth and "\\boxed" not in ground_truth:
        gold_text = f"${ground_truth}$"
    gold = _guarded(parse, gold_text, parsing_timeout=timeout_seconds, raise_on_error=True)
    if not gold:
        raise ValueError(f"math-verify cannot parse the ground truth {ground_truth!r}")
    pred = _guarded(parse, response, parsing_timeout=timeout_seconds, raise_on_error=True)
    return bool(_guarded(verify, gold, pred, timeout_seconds=timeout_seconds, raise_on_error=True))


def _guarded(function, *args, **kwargs):
    """Call a math-verify function; any failure (its timeout is a BaseException) becomes a
    ``MathVerifyError``."""
    from math_verify.errors import TimeoutException

    try:
        return function(*args, **kwargs)
    except (Exception, TimeoutException) as error:
        raise MathVerifyError(f"math-verify {function.__name__} failed") from error
