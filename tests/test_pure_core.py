"""The pure core imports with Lightning, Hydra, vLLM and wandb blocked."""

import subprocess
import sys

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'lightning', 'pytorch_lightning', 'hydra', 'omegaconf',
                                  'vllm', 'wandb'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import darling.groups, darling.diversity, darling.fusion, darling.advantages, darling.losses
import darling.rewards, darling.logprobs, darling.partition, darling.metrics, darling.quality
import darling.partition.unionfind, darling.memory_plan
print('ok')
"""


def test_core_imports_without_shell_frameworks():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


EVALUATION_WITHOUT_LIGHTNING = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'lightning', 'pytorch_lightning'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import darling.eval.run, darling.eval.config, darling.eval.compare
print(sorted(m for m in sys.modules if m.startswith('darling.train')))
"""


def test_evaluation_imports_without_lightning_or_the_training_shell():
    # evaluation shares its pieces with training through modules outside darling.train
    out = subprocess.run([sys.executable, "-c", EVALUATION_WITHOUT_LIGHTNING],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
