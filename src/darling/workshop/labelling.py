"""Label mined rollout pairs: by a verifier where the task defines equivalence, else by an LM judge.

Labels are 1 (equivalent), 0 (not) or None (**missing**: no verifier verdict and no judge
answer). A missing label is never read as "not equivalent"; the pair is left out of training.

Verifier labels (``verifier_label``), by the prompt row's kind:

- ``answers``: each response's key is the ``AnswerSetPartition`` key (the canonical answer from
  ``answer_in_set``, aliases included). Both correct: equivalent iff the canonical answers are
  equal. One correct: not equivalent (one gives an accepted answer, the other does not). Both
  incorrect: missing (two wrong answers are not defined equal or different by the task).
- ``ground_truth``: correctness by ``math_equivalent`` against the ground truth. Both correct:
  equivalent; one: not; both incorrect: ``math_equivalent(a, final answer of b)``. Any
  math-verify error: missing.
- ``open``: missing (no verifier), so the judge decides.

Judge labels (``PairJudge``): an OpenAI-compatible endpoint through ``JudgeQuality.ask`` (its
retries, backoff and key handling), with the prompt template in a file
(``prompts/pair_judge.txt`` by default; fields ``{prompt}``, ``{response_a}``,
``{response_b}``) and a label cache on disk (``LabelCache``, JSONL) keyed by the judge model,
the template and the unordered pair, so a label is never requested twice; failed calls are not
cached (they are retried on the next run).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from darling.workshop.mining import MinedPair
from darling.workshop.pairs_data import PairRow

DEFAULT_JUDGE_PROMPT = Path(__file__).with_name("prompts") / "pair_judge.txt"
JUDGE_FIELDS = ("{prompt}", "{response_a}", "{response_b}")
_VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_FIELD = re.compile(r"\{(prompt|response_a|response_b)\}")


def parse_verdict(reply: str) -> int | None:
    """1 for a reply whose first yes/no word is "yes", 0 for "no", None for neither.

    >>> parse_verdict("YES."), parse_verdict("No, they differ"), parse_verdict("maybe")
    (1, 0, None)
    """
    match = _VERDICT.search(reply)
    return None if match is None else int(match.group(1).lower() == "yes")


def verifier_key(text: str, row: Any) -> Hashable:
    """A rollout's answer key for balancing mined pairs: the ``AnswerSetPartition`` key on
    ``answers`` rows, the ``MathAnswerPartition`` key on ``ground_truth`` rows, None otherwise."""
    from darling.partition.keyed import AnswerSetPartition, MathAnswerPartition

    if row.kind == "answers":
        return AnswerSetPartition().class_keys([text], [row])[0]
    if row.kind == "ground_truth":
        return MathAnswerPartition().class_keys([text], None)[0]
    return None


def verifier_label(text_a: str, text_b: str, row: Any) -> int | None:
    """The verifier's label of a pair of responses to ``row`` (rules in the module docstring)."""
    if row.kind == "answers":
        key_a, key_b = verifier_key(text_a, row), verifier_key(text_b, row)
        correct = (key_a[0] == "answer", key_b[0] == "answer")
        if all(correct):
            return int(key_a == key_b)
        return 0 if any(correct) else None
    if row.kind == "ground_truth":
        from darling.tasks.answers import MathVerifyError, math_equivalent, math_final_answer

        try:
            correct_a = math_equivalent(text_a, row.ground_truth)
            correct_b = math_equivalent(text_b, row.ground_truth)
            if correct_a or correct_b:
                return int(correct_a and correct_b)
            final_b = math_final_answer(text_b)
            return int(math_equivalent(text_a, final_b)) if final_b else None
        except (MathVerifyError, ValueError):
            return None
    return None


def pair_cache_key(model: str, template: str, prompt: str, text_a: str, text_b: str) -> str:
    """SHA-256 of the judge model, the template, the prompt and the unordered pair."""
    first, second = sorted((text_a, text_b))
    payload = json.dumps([model, template, prompt, first, second])
    return hashlib.sha256(payload.encode()).hexdigest()


class LabelCache:
    """Judge labels on disk: one ``{"key": ..., "label": 0|1}`` per line, appended as they come.

    A corrupt line is an error naming the file and line (delete the file to start over).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.labels: dict[str, int] = {}
        if self.path.is_file():
            for line_no, line in enumerate(self.path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    label = record["label"]
                    if label not in (0, 1):
                        raise ValueError(f"label {label!r} is not 0 or 1")
                    self.labels[str(record["key"])] = int(label)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                    raise ValueError(f"{self.path}:{line_no}: corrupt label cache line: {err}; "
                                     "delete the file to relabel") from err

    def get(self, key: str) -> int | None:
        return self.labels.get(key)

    def put(self, key: str, label: int) -> None:
        self.labels[key] = label
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "label": label}) + "\n")


class PairJudge:
    """Equivalence labels from an LM judge (``client.ask``), cached on disk.

    Args:
        client: a ``darling.quality.judge.JudgeQuality`` (endpoint, model, retries, key).
        template: prompt text with ``{prompt}``, ``{response_a}`` and ``{response_b}``.
        cache: a ``LabelCache``, or None for no cache.
    """

    def __init__(self, client: Any, template: str, cache: LabelCache | None = None):
        missing = [f for f in JUDGE_FIELDS if f not in template]
        if missing:
            raise ValueError(f"the pair-judge prompt must contain {missing}")
        self.client, self.template, self.cache = client, template, cache

    def __call__(self, prompts: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list:
        """One label (1, 0 or None = missing) per pair; cached labels are not requested."""
        keys = [pair_cache_key(self.client.model, self.template, p, a, b)
                for p, (a, b) in zip(prompts, pairs, strict=True)]
        labels: list[int | None] = [self.cache.get(k) if self.cache else None for k in keys]
        todo = [k for k, label in enumerate(labels) if label is None]
        with ThreadPoolExecutor(max_workers=self.client.max_workers) as pool:
            asked = list(pool.map(lambda k: self._ask(prompts[k], *pairs[k]), todo))
        for k, label in zip(todo, asked, strict=True):
            labels[k] = label
            if label is not None and self.cache is not None:
                self.cache.put(keys[k], label)
        return labels

    def _ask(self, prompt: str, text_a: str, text_b: str) -> int | None:
        values = {"prompt": prompt, "response_a": text_a, "response_b": text_b}
        content = _FIELD.sub(lambda m: values[m.group(1)], self.template)
        return self.client.ask(content, parse_verdict)


def label_pairs(
    mined: Sequence[MinedPair], rows_by_id: dict[str, Any], judge: PairJudge | None, source: str
) -> tuple[list[PairRow], dict[str, int]]:
    """Labelled ``PairRow``s of the mined pairs: the verifier's label where it has one, else the
    judge's (when given); pairs left missing are dropped and counted.

    ``labeler`` of a row is ``"verifier"`` or ``"judge"``, its ``id`` ``"<source>/<step>/<group>"``.
    Returns ``(rows, counts)`` with counts of pairs labelled by each and missing, and of labels 1.
    """
    unknown = sorted({p.prompt_id for p in mined} - set(rows_by_id))
    if unknown:
        raise ValueError(f"rollouts name prompt ids {unknown[:5]} that the run's prompt file "
                         "does not hold: is data.train_path of the run's config.yaml the file "
                         "it trained on?")
    labels = [verifier_label(p.text_a, p.text_b, rows_by_id[p.prompt_id]) for p in mined]
    by = ["verifier" if label is not None else "" for label in labels]
    todo = [k for k, label in enumerate(labels) if label is None]
    if judge is not None and todo:
        asked = judge([rows_by_id[mined[k].prompt_id].prompt for k in todo],
                      [(mined[k].text_a, mined[k].text_b) for k in todo])
        for k, label in zip(todo, asked, strict=True):
            labels[k], by[k] = label, "judge" if label is not None else ""
    out = [
        PairRow(prompt=rows_by_id[p.prompt_id].prompt, text_a=p.text_a, text_b=p.text_b,
                label=int(label), labeler=who, id=f"{source}/{p.step}/{p.group_id}")
        for p, label, who in zip(mined, labels, by, strict=True) if label is not None
    ]
    counts = {
        "mined": len(mined),
        "verifier": by.count("verifier"),
        "judge": by.count("judge"),
        "missing": by.count(""),
        "equivalent": sum(r.label for r in out),
    }
    return out, counts
