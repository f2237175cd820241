"""bench/common.py names the machine on every run (issue 16 item 6): CPU model, code name, ISA flags."""
from bench.common import _cpuinfo, cpu_isa_flags, cpu_model

_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile

processor\t: 1
vendor_id\t: SomethingElse
"""


def test_machine_line_parses_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(_CPUINFO)
    info = _cpuinfo(str(path))
    assert info["vendor_id"] == "GenuineIntel"  # the second block is not read
    assert cpu_model(info) == "Intel(R) Xeon(R) Processor (family 6 model 143, Sapphire Rapids)"
    assert cpu_isa_flags(info) == ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]


def test_machine_line_without_cpuinfo(tmp_path):
    info = _cpuinfo(str(tmp_path / "missing"))
    assert info == {}
    assert cpu_isa_flags(info) == []
    assert cpu_model(info)  # falls back to the platform module's name


def test_machine_line_names_amd_parts(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
                    "flags\t\t: avx2 fma avx512f avx512_bf16\n")
    assert cpu_model(_cpuinfo(str(path))) == "AMD EPYC (family 25 model 17, Zen 4, Genoa)"


def test_roundtrip_probe():
    """The core-to-core probe: a positive time per round trip where two CPUs exist, 0 on one; bad rounds refused."""
    import os

    import pytest

    from pyengine import _C
    ns = _C.probe_roundtrip_ns(2000)
    assert (ns > 0) if (os.cpu_count() or 1) > 1 else ns == 0
    with pytest.raises(ValueError, match="probe_roundtrip_ns: rounds"):
        _C.probe_roundtrip_ns(0)
