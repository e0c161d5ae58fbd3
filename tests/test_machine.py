"""retconf.machine: the provenance a run records about the machine its numbers came from."""
from __future__ import annotations

import os

from retconf.machine import cpu_name, machine_record, onednn_isa


def test_machine_record_names_the_cpu_and_onednns_kernels() -> None:
    m = machine_record()
    assert set(m) == {"cpu", "onednn_isa", "onednn_max_cpu_isa", "accelerator", "torch", "python"}
    assert m["cpu"] == cpu_name() and m["cpu"]
    assert m["onednn_max_cpu_isa"] == os.environ.get("ONEDNN_MAX_CPU_ISA")
    assert m["onednn_isa"] != "unknown"  # the x86 torch wheels print oneDNN's verbose line


def test_a_cap_changes_the_kernels_onednn_reports() -> None:
    # Both CPU families this project runs on (AMD EPYC with avx512_bf16, Intel with AMX) use
    # native bfloat16 kernels by default; capped at AVX512_CORE oneDNN emulates bfloat16 and says so.
    capped = onednn_isa("AVX512_CORE")
    assert "AVX-512" in capped and capped != onednn_isa()
