"""CUDA against the CPU on the thinned real nets, both batch-norm formulas, plain and fused, at
batch 2 (batched) and at another input size.  Skipped without a GPU; ``pytest -m cuda`` (run by
scripts/gpu_check.sh) selects these and every other CUDA-parametrised test."""

from __future__ import annotations

import pytest
import torch
from fixture_util import FIXTURES, rel_err

from darkconv.nn.builder import load

NETS = sorted(p.name for p in (FIXTURES / "nets").iterdir() if p.is_dir())
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("bn", ["cpu", "gpu"])
@pytest.mark.parametrize("name", NETS)
def test_cuda_equals_cpu(name: str, bn: str, fused: bool) -> None:
    folder = FIXTURES / "nets" / name
    cfg, weights = folder / f"{name}.cfg", folder / f"{name}.weights"
    gpu = load(cfg, weights, bn_mode=bn, device="cuda")
    if fused:
        gpu.fuse()
    c, h, w = gpu.input_shape
    for model in (gpu, gpu.at_size((w + 32, h))):
        _, mh, mw = model.input_shape
        x = torch.rand(2, c, mh, mw, generator=torch.Generator().manual_seed(0))
        ref = load(cfg, weights, bn_mode=bn, size=(mw, mh))
        with torch.no_grad():
            want = ref(x, all_outputs=True)
            got = model(x.cuda(), all_outputs=True)
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert rel_err(a.cpu().numpy(), b.numpy()) <= 5e-4, (name, i)
