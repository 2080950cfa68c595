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
