"""What decides a run's numbers besides the code is recorded with it: the CPU's model and vector units, the
threads and the kernels torch dispatched to (probe results), and the environment the sweep set (run.json)."""

import torch

from jepa_lit.eval.results import build_results
from jepa_lit.precision import cpu_description


def test_cpu_description_reads_the_model_and_the_units_that_choose_kernels(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 sha_ni\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9B14\n")
    assert cpu_description(str(info)) == {"model": "AMD EPYC 9B14", "units": ["avx2", "avx512f", "avx512_bf16"]}
    assert cpu_description(str(tmp_path / "missing")) == {"model": "unknown", "units": []}
