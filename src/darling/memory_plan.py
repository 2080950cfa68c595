"""What each device holds for a training configuration, estimated before anything is loaded.

A pure function of the model's shape and the settings (no torch, no I/O): ``train`` logs the
plan at start and names the knob to turn when a phase exceeds the device. Four phases:

- **load** (``trainer=fsdp``): from a checkpoint on disk (``read_files``), every rank reads its
  own rows, so it holds its float32 shards ``4 P / N`` plus one slice in the load dtype,
  ``largest_tensor * load_bytes / N``. Weights built in code are read once by rank 0: what is
  left of that read (in the load dtype) while the float32 shards fill unit by unit (the read
  shrinks as the shards grow), ``max(P * load_bytes, 4 P / N)``, plus the slices of the unit
  being filled before its read is freed, ``unit * load_bytes / N``; the other ranks hold at
  most their shards plus one unit's full tensors in flight, ``4 P / N + unit * load_bytes``.
- **rollout**: the sharded training state, the awake vLLM engine (``gpu_memory_utilization`` of
  the device: its weights plus KV cache), the reward model and the classifier.
- **update**: the training state, two gathered units in the compute dtype (the one computing and
  the one prefetched), activations; vLLM sleeps (sleep mode) and holds nothing.
- **save** (rank 0): the training state plus one shard of the final policy, the arriving weight
  included: the shard is written before a weight that would not fit is gathered, a weight
  larger than a shard is a shard of its own, and the other ranks cast their rows before sending
  them. (A LoRA-adapted weight is merged in float32 before its cast: not counted.)

On a GPU the load phase and the shard being written are host memory, so only rollout and update
are checked against the device.

Bytes per parameter: float32 master weights 4, gradients 4, AdamW moments 8 (all sharded over
the N ranks; ``trainable`` parameters only for gradients and moments), a full-parameter KL
reference 4 (sharded). Activations are an estimate after V. Korthikanti et al., 2022
("Reducing Activation Recomputation in Large Transformer Models", section 4.1): ``34 s b h``
bytes per layer in 16-bit, without its ``5 a s^2 b`` attention-score term (SDPA and flash
attention keep no score matrix); with activation checkpointing each layer keeps only its 16-bit
input ``2 s b h`` and one layer is recomputed at a time. Logits: ``b r V`` 16-bit values for the
``r`` response positions plus one float32 log-softmax chunk of 256 positions and its gradient
(``darling.logprobs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 2**30
ACTIVATION_BYTES_PER_TOKEN_HIDDEN = 34
"""Korthikanti et al. (2022): 16-bit activations per layer per token per hidden unit, without the
attention-score term."""
LOGPROB_CHUNK = 256
"""Positions per float32 log-softmax chunk (``darling.logprobs``)."""
GATHERED_UNITS = 2
"""FSDP2 holds the unit computing and the one it prefetches."""
PHASES = ("load", "rollout", "update", "save")
DEVICE_PHASES = ("rollout", "update")
"""The phases checked against the device (the others are mostly host memory on a GPU)."""


@dataclass(frozen=True)
class ModelShape:
    """Counts read from a model built on the meta device (nothing loaded)."""

    params: int
    """All parameters (a tied embedding counted once)."""
    trainable: int
    """Parameters the optimiser updates (LoRA: the adapters only)."""
    layers: int
    hidden: int
    vocab: int
    largest_unit: int
    """Parameters of the largest FSDP unit: a decoder layer, or the root's own (embeddings,
    head, final norm)."""
    largest_tensor: int
    """Elements of the largest single weight (usually the embedding)."""


@dataclass(frozen=True)
class PlanSettings:
    """The configuration's numbers that decide memory (``plan_settings`` reads them)."""

    ranks: int = 1
    sharded: bool = True
    """trainer=fsdp; False: every rank holds the whole training state (one process or DDP)."""
    load_bytes: int = 4
    """Bytes per parameter of the loaded checkpoint (model.dtype)."""
    read_files: bool = False
    """Under sharding, each rank reads its own rows of a checkpoint on disk (safetensors); False:
    rank 0 reads the weights (built in code, or a hub id) and sends them."""
    compute_bytes: int = 4
    """Bytes per gathered parameter (trainer.strategy.param_dtype; float32 when null)."""
    reference: bool = False
    """A full-parameter KL reference (optim.kl_coef > 0 without LoRA)."""
    cpu_offload: bool = False
    """FSDP2's CPUOffloadPolicy: master weights, gradients and AdamW state in host memory."""
    engine_fraction: float = 0.0
    """vLLM's gpu_memory_utilization (0: no vLLM engine)."""
    engine_weight_bytes: int = 2
    engine_sleeps: bool = True
    device_bytes: int | None = None
    """Memory of one device; None (CPU processes share the host): no fit check."""
    reward_model_params: int = 0
    reward_model_bytes: int = 2
    reward_model_placement: str = "replicated"
    """replicated: a full copy on every rank's device at all times; offload: in host memory,
    moved to the device for scoring only."""
    classifier_params: int = 0
    classifier_bytes: int = 4
    micro_batch: int = 1
    """Sequences per forward/backward."""
    seq_len: int = 1
    """Prompt + response tokens of one sequence."""
    response_len: int = 1
    gradient_checkpointing: bool = False
    max_shard_bytes: int = 5 * 10**9
    save_bytes: int = 4
    """Bytes per parameter of the written policy."""


@dataclass
class MemoryPlan:
    """Bytes per device by phase and component; ``advice`` names the knobs, largest saving
    first, for the phases that exceed ``device_bytes``."""

    phases: dict[str, dict[str, int]]
    device_bytes: int | None
    advice: list[str] = field(default_factory=list)

    def peak(self, phase: str) -> int:
        return sum(self.phases[phase].values())

    @property
    def over(self) -> list[str]:
        """The device phases (rollout, update) whose total exceeds the device. Load and save are
        left out: on a GPU, rank 0's read of the weights and the shard being written are host
        memory."""
        if self.device_bytes is None:
            return []
        return [p for p in DEVICE_PHASES if self.peak(p) > self.device_bytes]

    def table(self) -> str:
        """The plan as text: one line per component, a total per phase, GiB."""
        lines = []
        for phase, parts in self.phases.items():
            lines.append(f"{phase}: {self.peak(phase) / GIB:.2f} GiB")
            lines += [f"  {name}: {size / GIB:.2f} GiB" for name, size in parts.items() if size]
        if self.device_bytes is not None:
            lines.append(f"device: {self.device_bytes / GIB:.2f} GiB")
        return "\n".join(lines)


def memory_plan(shape: ModelShape, s: PlanSettings) -> MemoryPlan:
    """Per-device bytes of each phase for ``shape`` trained under ``s`` (see the module
    docstring for the formulas)."""
    n = s.ranks if s.sharded else 1
    on_device = 0 if s.cpu_offload else 1
    state = {
        "master weights (fp32)": on_device * 4 * shape.params // n,
        "gradients (fp32)": on_device * 4 * shape.trainable // n,
        "AdamW moments (fp32)": on_device * 8 * shape.trainable // n,
        "KL reference (fp32)": on_device * 4 * shape.params // n if s.reference else 0,
    }
    engine = int(s.engine_fraction * s.device_bytes) if s.device_bytes else 0
    if s.engine_fraction and not s.device_bytes:  # no device size: at least the weights
        engine = s.engine_weight_bytes * shape.params
    rm = s.reward_model_params * s.reward_model_bytes
    classifier = s.classifier_params * s.classifier_bytes
    gathered = GATHERED_UNITS * shape.largest_unit * s.compute_bytes if s.sharded else 0
    shards = 4 * shape.params // n * (2 if s.reference else 1)
    phases = {
        "load": {
            "own shards read from the files": shards,
            "one slice in flight": shape.largest_tensor * s.load_bytes // n,
        } if s.sharded and s.read_files else {
            "rank 0's read of the weights": max(shape.params * s.load_bytes, shards)
            if s.sharded else shape.params * s.load_bytes,
            "slices of the unit being filled": shape.largest_unit * s.load_bytes // n
            if s.sharded else 0,
        },
        "rollout": {
            **state,
            "vLLM weights + KV cache": engine,
            "reward model": rm,
            "classifier": classifier,
        },
        "update": {
            **state,
            "gathered units": gathered,
            "activations (estimate)": activation_bytes(shape, s),
            "vLLM (asleep)": 0 if s.engine_sleeps else engine,
            "reward model": rm if s.reward_model_placement == "replicated" else 0,
            "classifier": classifier,
        },
        "save": {
            **state,
            "one shard of the policy": min(max(s.max_shard_bytes,
                                               s.save_bytes * shape.largest_tensor),
                                           s.save_bytes * shape.params),
        },
    }
    plan = MemoryPlan(phases, s.device_bytes)
    plan.advice = _advice(plan, shape, s, state, engine, rm) if plan.over else []
    return plan


def activation_bytes(shape: ModelShape, s: PlanSettings) -> int:
    """Activations of one micro-batch's forward and backward (estimate, 16-bit)."""
    tokens = s.micro_batch * s.seq_len
    per_layer = ACTIVATION_BYTES_PER_TOKEN_HIDDEN * tokens * shape.hidden
    if s.gradient_checkpointing:
        layers = shape.layers * 2 * tokens * shape.hidden + per_layer
    else:
        layers = shape.layers * per_layer
    logits = s.micro_batch * s.response_len * shape.vocab * 2 + 2 * LOGPROB_CHUNK * shape.vocab * 4
    return layers + logits


def _advice(plan: MemoryPlan, shape: ModelShape, s: PlanSettings, state: dict[str, int],
            engine: int, rm: int) -> list[str]:
    """The knobs that shrink the phases over the device, the largest saving first."""
    over = plan.over
    saves: list[tuple[int, str]] = []
    trained_state = state["gradients (fp32)"] + state["AdamW moments (fp32)"]
    if shape.trainable == shape.params and trained_state:
        saves.append((trained_state, "model.lora.enabled=true (gradients and AdamW state of "
                      "the adapters only)"))
    if not s.cpu_offload and sum(state.values()):
        saves.append((sum(state.values()), "trainer.strategy.cpu_offload=true (FSDP2's "
                      "CPUOffloadPolicy: master weights, gradients and AdamW state in host "
                      "memory)"))
    if engine and "rollout" in over:
        saves.append((engine // 2, f"rollout.gpu_memory_utilization below {s.engine_fraction} "
                      "(vLLM's weights + KV cache)"))
    if "update" in over:
        act = plan.phases["update"]["activations (estimate)"]
        if not s.gradient_checkpointing:
            saves.append((act - activation_bytes(
                shape, PlanSettings(**{**s.__dict__, "gradient_checkpointing": True})),
                "model.gradient_checkpointing=true"))
        if s.micro_batch > 1:
            saves.append((act // 2, f"optim.micro_batch_size={s.micro_batch // 2} (activations)"))
    if rm and s.reward_model_placement == "replicated" and "update" in over:
        saves.append((rm, "quality.placement=offload (the reward model leaves the device "
                      "outside scoring)"))
    if s.sharded and sum(state.values()):
        saves.append((sum(state.values()) // 2, f"more ranks ({2 * s.ranks} instead of "
                      f"{s.ranks}: the sharded state halves; trainer.num_nodes / devices)"))
    saves.sort(key=lambda x: -x[0])
    return [f"{text}: saves about {size / GIB:.1f} GiB" for size, text in saves if size > 0]
