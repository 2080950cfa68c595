"""The prompt formats users already hold (issue 22): chat-message prompts (TRL's conversational
format), verl's Parquet rows, DeepScaleR's rows and NoveltyBench's rows; bad rows of each fail
naming the file and the line (item, row)."""

import json
import sys
import types

import pytest

from darling.tasks.chat import chat_prompt
from darling.tasks.prompts import PromptRow, apply_template, load_prompts

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _verl_rows():
    """Two rows as verl's data preprocessing writes them (gsm8k.py / deepscaler recipes)."""
    return [
        {"data_source": "agentica-org/DeepScaleR-Preview-Dataset",
         "prompt": [{"role": "user", "content": "What is 2 + 3?"}], "ability": "math",
         "reward_model": {"style": "rule", "ground_truth": "5"},
         "extra_info": {"split": "train", "index": 0}},
        {"data_source": "agentica-org/DeepScaleR-Preview-Dataset",
         "prompt": [{"role": "user", "content": "What is 1/2 + 1/4?"}], "ability": "math",
         "reward_model": {"style": "rule", "ground_truth": "\\frac{3}{4}"},
         "extra_info": {"split": "train", "index": 1}},
    ]


def _parquet(path, rows):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame(rows).to_parquet(path)
    return path


class _RecordingTokenizer:
    """Renders messages as ``role: content`` lines, so the test sees what the template got."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"


def test_chat_message_prompts_keep_the_conversation(tmp_path):
    rows = load_prompts(_jsonl(tmp_path / "trl.jsonl", [{"prompt": CHAT}, {"prompt": CHAT[1:]}]))
    assert rows[0].kind == "open" and rows[0].prompt == "Name a fruit."
    assert rows[0].messages == (("system", "Be brief."), ("user", "Name a fruit."))
    assert rows[0].chat == CHAT
    tok = _RecordingTokenizer()
    # the row's own system message wins; a row without one gets data.system_prompt first
    assert chat_prompt(tok, rows[0], "Other.") == (
        "system: Be brief.\nuser: Name a fruit.\nassistant:")
    assert chat_prompt(tok, rows[1], "Other.") == "system: Other.\nuser: Name a fruit.\nassistant:"
    assert chat_prompt(tok, "Name a fruit.") == chat_prompt(tok, rows[1])


def test_verl_parquet_rows(tmp_path):
    rows = load_prompts(_parquet(tmp_path / "train.parquet", _verl_rows()))
    assert [r.kind for r in rows] == ["ground_truth", "ground_truth"]
    assert [r.ground_truth for r in rows] == ["5", "\\frac{3}{4}"]
    assert rows[1].prompt == "What is 1/2 + 1/4?"
    assert rows[1].messages == (("user", "What is 1/2 + 1/4?"),)
    assert rows[0].category == "agentica-org/DeepScaleR-Preview-Dataset"
    assert [r.id for r in rows] == ["0", "1"]


def test_verl_rows_without_ground_truth_are_open(tmp_path):
    row = {"data_source": "wildchat", "prompt": CHAT[1:], "reward_model": {"style": "model"}}
    (loaded,) = load_prompts(_jsonl(tmp_path / "chat.jsonl", [row]))
    assert loaded.kind == "open" and loaded.category == "wildchat"


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_deepscaler_rows(tmp_path, suffix):
    items = [{"problem": "Compute $1+1$.", "answer": "2", "solution": "1+1=2"},
             {"problem": "Find $x$ if $2x=3$.", "answer": "\\frac{3}{2}", "solution": "..."}]
    path = tmp_path / f"deepscaler{suffix}"
    if suffix == ".json":  # deepscaler.json is one JSON array
        path.write_text(json.dumps(items, indent=1), encoding="utf-8")
    else:
        _jsonl(path, items)
    rows = load_prompts(path)
    assert [(r.kind, r.prompt, r.ground_truth) for r in rows] == [
        ("ground_truth", "Compute $1+1$.", "2"), ("ground_truth", "Find $x$ if $2x=3$.",
                                                  "\\frac{3}{2}")]


def test_noveltybench_rows(tmp_path):
    items = [
        {"id": "curated-0", "category": "Creativity",
         "prompt": "Tell me a story in five sentences about a girl and her dog.",
         "prompt_paraphrases": ["Create a five-sentence story."]},
        {"id": "WildChat-c5266fe6", "prompt": "Write a description of a franchise model.",
         "chosen": True, "original_prompt": "write a description"},
    ]
    rows = load_prompts(_jsonl(tmp_path / "curated.jsonl", items))
    assert [(r.id, r.kind, r.category) for r in rows] == [
        ("curated-0", "open", "Creativity"), ("WildChat-c5266fe6", "open", None)]


def test_prompt_template_wraps_the_user_text(tmp_path):
    path = _jsonl(tmp_path / "m.jsonl", [{"problem": "1+1?", "answer": "2"},
                                         {"problem": "2+2?", "answer": "4"}])
    template = "{prompt} Put the final answer within \\boxed{}."
    rows = load_prompts(path, template)
    assert rows[0].prompt == "1+1? Put the final answer within \\boxed{}."
    chat_row = PromptRow("c", "Hi", "open", messages=(("system", "S"), ("user", "Hi")))
    assert apply_template(chat_row, template).chat[-1]["content"].startswith("Hi Put")
    with pytest.raises(ValueError, match="must contain"):
        load_prompts(path, "no placeholder")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "ok"}, {"prompt": []}], "line 2: 'prompt' is an empty list"),
        ([{"prompt": ["hi"]}], "line 1: prompt message 1 must be an object"),
        ([{"prompt": [{"role": "user"}]}], "line 1: prompt message 1 must be an object"),
        ([{"prompt": [{"role": "bot", "content": "x"}]}], "line 1: prompt message 1 has role"),
        ([{"prompt": CHAT + [{"role": "assistant", "content": "Kiwi"}]}],
         "line 1: the last prompt message is the assistant's"),
        ([{"prompt": [{"role": "user", "content": " "}]}], "line 1: 'prompt' is empty"),
        ([{"problem": "1+1?", "answer": "2"}, {"problem": "2+2?"}],
         "line 2: a DeepScaleR row ('problem') needs its 'answer'"),
        ([{"problem": "1+1?", "answer": ""}], "line 1: 'answer' is empty"),
        ([{"problem": "1+1?", "answer": ["2"]}], "line 1: 'answer' must be a string or a number"),
        ([{"prompt": CHAT[1:], "reward_model": "5"}], "line 1: 'reward_model' must be an object"),
        ([{"prompt": CHAT[1:], "reward_model": {"ground_truth": ["5"]}}],
         "line 1: 'reward_model.ground_truth' must be a string or a number"),
        ([{"prompt": "a", "ground_truth": "1", "reward_model": {"ground_truth": "1"}}],
         "line 1: the row has 'reward_model.ground_truth' and also"),
        ([{"id": "curated-0", "prompt": "a"}, {"id": "curated-0", "prompt": "b"}],
         "line 2: id 'curated-0' repeats line 1"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, rows, message):
    with pytest.raises(ValueError, match="bad.jsonl") as error:
        load_prompts(_jsonl(tmp_path / "bad.jsonl", rows))
    assert message in str(error.value)


def test_bad_verl_parquet_row_names_the_row(tmp_path):
    rows = _verl_rows()
    rows[1]["prompt"] = [{"role": "assistant", "content": "What is 1/2 + 1/4?"}]
    with pytest.raises(ValueError, match=r"bad.parquet: row 2: the last prompt message"):
        load_prompts(_parquet(tmp_path / "bad.parquet", rows))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"problem": "1+1?", "answer": "2"}', "holds one array of row objects, got a dict"),
        ('[{"problem": "1+1?", "answer": "2"},\n {"problem": ', "bad JSON at line 2"),
        ('[{"problem": "1+1?", "answer": "2"}, {"problem": "x"}]', "item 2: a DeepScaleR row"),
        ('[{"problem": "1+1?", "answer": "2"}, 7]', "item 2: a row must be a JSON object"),
    ],
)
def test_bad_json_array_files(tmp_path, content, message):
    path = tmp_path / "deepscaler.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="deepscaler.json") as error:
        load_prompts(path)
    assert message in str(error.value)


def test_json_file_of_json_lines_reads_as_jsonl(tmp_path):
    path = _jsonl(tmp_path / "rows.json", [{"prompt": "a"}, {"prompt": "b"}])
    assert [r.prompt for r in load_prompts(path)] == ["a", "b"]


def test_hub_dataset_goes_through_the_same_checks(monkeypatch):
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        return [{"id": "curated-0", "prompt": "Tell me a joke."}, {"id": "curated-1"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(ValueError, match=r"hf:yimingzhang/novelty-bench:curated: row 2: .*"
                                         r"no string 'prompt'"):
        load_prompts("hf:yimingzhang/novelty-bench:curated")
    assert calls == [("yimingzhang/novelty-bench", "curated")]


def test_hub_dataset_without_the_datasets_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"darling\[hub\]"):
        load_prompts("hf:agentica-org/DeepScaleR-Preview-Dataset")
