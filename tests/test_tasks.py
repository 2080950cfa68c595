"""Prompt loading, answer checking and the built-in task."""

from __future__ import annotations

import doctest
import json
import sys
import threading

import pytest

from darling.tasks import answers as answers_module
from darling.tasks import prompts
from darling.tasks.answers import (
    MathVerifyError,
    answer_in_set,
    extract_final_answer,
    math_equivalent,
    normalise_answer,
)
from darling.tasks.data import build_builtin
from darling.tasks.prompts import PromptRow, builtin_path, load_prompts


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- load_prompts -------------------------------------------------------------------------


def test_load_prompts_reads_each_kind(tmp_path):
    answers = _write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"prompt": "Name a colour.", "answers": ["red", "RGB"], "aliases": {"RGB": "red"}},
            {"id": "x7", "prompt": "Name a fruit.", "answers": ["apple"], "category": "fruit"},
        ],
    )
    rows = load_prompts(answers)
    expected = PromptRow("0", "Name a colour.", "answers", ("red", "RGB"), (("RGB", "red"),))
    assert rows[0] == expected
    assert rows[1].id == "x7" and rows[1].category == "fruit" and rows[1].aliases == ()
    assert rows[0].alias_map == {"RGB": "red"}

    math = tmp_path / "m.jsonl"
    math.write_text(
        '{"prompt": "1+1?", "ground_truth": 2}\n\n'
        '{"prompt": "1/2?", "ground_truth": "\\\\frac{1}{2}"}\n'
    )
    rows = load_prompts(str(math))
    assert [(r.id, r.kind, r.ground_truth, r.answers) for r in rows] == [
        ("0", "ground_truth", "2", None),
        ("2", "ground_truth", "\\frac{1}{2}", None),  # the blank line keeps its index
    ]

    open_rows = load_prompts(_write_jsonl(tmp_path / "o.jsonl", [{"prompt": "Write a poem."}]))
    assert open_rows[0].kind == "open" and open_rows[0].ground_truth is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ('{"prompt": "a"}\n{"prompt": \n', "line 2: bad JSON"),
        ('["prompt"]\n', "line 1: a row must be a JSON object"),
        ('{"question": "a"}\n', "line 1: the row has no string 'prompt'"),
        ('{"prompt": "  "}\n', "line 1: 'prompt' is empty"),
        ('{"prompt": "a", "answers": "red"}\n', "'answers' must be a non-empty list"),
        ('{"prompt": "a", "answers": []}\n', "'answers' must be a non-empty list"),
        ('{"prompt": "a", "answers": ["red", 3]}\n', "'answers' must be a non-empty list"),
        ('{"prompt": "a", "answers": ["red", ""]}\n', "'answers' must be a non-empty list"),
        ('{"prompt": "a", "answers": null}\n', "'answers' must be a non-empty list"),
        ('{"prompt": "a", "answers": ["red"], "aliases": {"r": "red"}}\n', "not in 'answers'"),
        ('{"prompt": "a", "answers": ["red"], "aliases": ["red"]}\n', "'aliases' must map"),
        ('{"prompt": "a", "aliases": {"r": "red"}}\n', "'aliases' needs an 'answers'"),
        ('{"prompt": "a", "answers": ["1"], "ground_truth": "1"}\n', "not both"),
        ('{"prompt": "a", "ground_truth": ""}\n', "'ground_truth' is empty"),
        ('{"prompt": "a", "ground_truth": true}\n', "'ground_truth' must be a string"),
        ('{"prompt": "a", "answer": "1"}\n', "name it 'answers'"),
        ('{"id": 1, "prompt": "a"}\n{"id": "1", "prompt": "b"}\n', "line 2: id '1' repeats line 1"),
    ],
)
def test_load_prompts_errors_name_path_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl") as error:
        load_prompts(path)
    assert message in str(error.value)


def test_load_prompts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl: prompt file not found"):
        load_prompts(tmp_path / "nope.jsonl")


def test_a_folder_given_as_prompt_file_is_called_a_folder(tmp_path):
    # issue 23.18: was "prompt file not found"
    with pytest.raises(IsADirectoryError, match="is a directory, not a prompt file"):
        load_prompts(tmp_path)


def test_load_prompts_rejects_mixed_kinds_and_names_the_lines(tmp_path):
    path = _write_jsonl(
        tmp_path / "mixed.jsonl",
        [{"prompt": "a", "answers": ["x"]}, {"prompt": "b"}, {"prompt": "c", "answers": ["y"]}],
    )
    with pytest.raises(ValueError, match=r"'answers' at lines 1, 3; 'open' at lines 2"):
        load_prompts(path)


def test_load_prompts_parquet_needs_pandas_and_pyarrow(tmp_path, monkeypatch):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas pyarrow"):
        load_prompts(path)


def test_load_prompts_parquet_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "p.parquet"
    pd.DataFrame({"prompt": ["a", "b"], "answers": [["x", "y"], ["z"]]}).to_parquet(path)
    rows = load_prompts(path)
    assert [(r.id, r.answers) for r in rows] == [("0", ("x", "y")), ("1", ("z",))]


def test_builtin_path_rejects_unknown_split():
    with pytest.raises(ValueError, match="'test'"):
        builtin_path("test")


# --- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mars", "mars"),
        ("  The United States of America. ", "united states of america"),
        ("São Tomé and Príncipe", "sao tome and principe"),
        ("Côte d'Ivoire", "cote d ivoire"),
        ("Guinea-Bissau", "guinea bissau"),
        ("Fifty-three", "53"),
        ("fifty three", "53"),
        ("Twenty", "20"),
        ("nineteen", "19"),
        ("**53**", "53"),
        ("C++", "c plus plus"),
        ("C#", "c sharp"),
        ("An apple", "apple"),
        ("", ""),
    ],
)
def test_normalise_answer_golden(text, expected):
    assert normalise_answer(text) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Sure! The answer is Mars.", "Mars"),
        ("My final answer: 53", "53"),
        ("The result is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("Of course! Here's one: Saturn", "Saturn"),
        ("Certainly.\nNeptune", "Neptune"),
        ("Venus is a planet of the solar system.", "Venus"),
        ("One prime number between 50 and 100 is 53.", "53"),
        ("A fruit that is yellow is a banana.", "a banana"),
        ("- Earth", "Earth"),
        ('"Mercury"', "Mercury"),
        ("", ""),
    ],
)
def test_extract_final_answer_golden(response, expected):
    assert extract_final_answer(response) == expected


PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Mars", (True, "Mars")),
        ("mars.", (True, "Mars")),
        ("Sure! Jupiter is the largest planet.", (True, "Jupiter")),
        ("I would pick Saturn, because of its rings.", (True, "Saturn")),  # one mention
        ("Mars, Venus and Earth are planets.", (False, None)),  # a list is a hedge
        ("Earth. Mars is also a planet.", (True, "Earth")),  # the final answer decides first
        ("Pluto", (False, None)),
        ("", (False, None)),
        ("Marsupial", (False, None)),  # whole words only
    ],
)
def test_answer_in_set_golden(response, expected):
    assert answer_in_set(response, PLANETS) == expected


def test_answer_in_set_aliases_plurals_numbers_and_longest_match():
    countries = ["United States", "USA", "Guinea", "Equatorial Guinea", "Canada"]
    aliases = {"USA": "United States"}
    assert answer_in_set("The USA!", countries, aliases) == (True, "United States")
    assert answer_in_set("united states", countries, aliases) == (True, "United States")
    assert answer_in_set("I'd say Equatorial Guinea.", countries) == (True, "Equatorial Guinea")
    assert answer_in_set("Bananas are yellow.", ["banana", "lemon"]) == (True, "banana")
    assert answer_in_set("Fifty-three is prime.", ["53", "59"]) == (True, "53")
    assert answer_in_set("It was the 1990s.", ["1990", "1991"]) == (False, None)
    with pytest.raises(ValueError, match="non-empty list"):
        answer_in_set("Mars", [])
    with pytest.raises(ValueError, match="non-empty list"):
        answer_in_set("Mars", "Mars")


@pytest.mark.parametrize(
    ("response", "ground_truth", "expected"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("0.5", "\\frac{1}{2}", True),
        ("The answer is \\boxed{3}.", "3", True),
        ("So we get $1+x^2$.", "x^2+1", True),
        ("$\\frac{2}{4}$", "$\\frac{1}{2}$", True),
        ("The answer is \\boxed{4}.", "3", False),
        ("I do not know.", "3", False),
    ],
)
def test_math_equivalent(response, ground_truth, expected):
    assert math_equivalent(response, ground_truth) is expected


def test_math_equivalent_reports_failures_instead_of_false(monkeypatch):
    import math_verify

    with pytest.raises(ValueError, match="cannot parse the ground truth"):
        math_equivalent("3", "")

    def broken_verify(*args, **kwargs):
        raise RuntimeError("sympy exploded")

    monkeypatch.setattr(math_verify, "verify", broken_verify)
    with pytest.raises(MathVerifyError, match="verify failed"):
        math_equivalent("3", "3")


def test_math_equivalent_outside_the_main_thread():
    outcome = {}

    def worker():
        try:
            math_equivalent("0.5", "1/2")
        except MathVerifyError as error:
            outcome["with_timeout"] = str(error)
        outcome["without_timeout"] = math_equivalent("0.5", "\\frac{1}{2}", timeout_seconds=None)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert "main thread" in outcome["with_timeout"]
    assert outcome["without_timeout"] is True


def test_task_module_doctests():
    for module in (answers_module, prompts, build_builtin):
        assert doctest.testmod(module).failed == 0


# --- the built-in task --------------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin_rows():
    return {split: load_prompts(builtin_path(split)) for split in ("train", "heldout")}


def test_builtin_splits_are_disjoint_by_category(builtin_rows):
    train, heldout = builtin_rows["train"], builtin_rows["heldout"]
    assert {r.category for r in train}.isdisjoint({r.category for r in heldout})
    assert {r.id for r in train}.isdisjoint({r.id for r in heldout})
    assert {r.prompt for r in train}.isdisjoint({r.prompt for r in heldout})
    total = len(train) + len(heldout)
    assert 80 <= total <= 120
    assert 0.2 <= len(heldout) / total <= 0.3
    assert len({r.category for r in train + heldout}) >= 40


def test_builtin_answer_sets_are_consistent(builtin_rows):
    for row in builtin_rows["train"] + builtin_rows["heldout"]:
        aliases = row.alias_map
        canonical_by_key: dict[str, str] = {}
        for answer in row.answers:
            canonical = aliases.get(answer, answer)
            key = normalise_answer(answer)
            # no two canonical answers share a normalised form
            assert canonical_by_key.setdefault(key, canonical) == canonical, (row.id, answer)
            # every accepted answer is recognised as itself, also inside a sentence
            assert answer_in_set(answer, row.answers, aliases) == (True, canonical)
            assert answer_in_set(f"{answer} is my answer.", row.answers, aliases) == (
                True,
                canonical,
            )
        assert len(set(canonical_by_key.values())) >= 3, row.id
        # the prompt itself names none of its accepted answers
        assert answer_in_set(row.prompt, row.answers, aliases) == (False, None), row.id


def test_build_builtin_reproduces_the_committed_files(tmp_path):
    build_builtin.main(["--out", str(tmp_path)])
    for split in ("train", "heldout"):
        rebuilt = (tmp_path / f"builtin_{split}.jsonl").read_bytes()
        assert rebuilt == builtin_path(split).read_bytes(), split
