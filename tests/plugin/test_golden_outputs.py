"""Golden outputs: the three algorithms on small inputs give what tests/golden/ recorded (see golden_cases.py).

Bit for bit where the libraries and the CPU are those of the recording; elsewhere float sums may be ordered
differently (other SIMD widths, other torch builds), so the data must agree to 1e-4 of its range and everything
else exactly. `make golden` records them anew — only for a change that is meant to change the outputs.
"""
import os

import numpy as np
import pytest

import golden_cases

WRITE = os.environ.get("GOLDEN_WRITE") == "1"


@pytest.fixture(scope="module")
def results(provider, tmp_path_factory):
    return golden_cases.run_all(tmp_path_factory.mktemp("golden"))


def test_record(results):
    if not WRITE:
        pytest.skip("GOLDEN_WRITE=1 records the golden outputs (make golden)")
    golden_cases.write(results)


@pytest.mark.parametrize("case", ["s2_window", "s2_scene", "hsms_window", "pan_window", "pan_scene"])
def test_output_equals_the_golden_one(results, case):
    if WRITE:
        pytest.skip("recording")
    expected, got = golden_cases.read(case), results[case]
    assert got["descriptions"] == expected["descriptions"]
    assert got["geotransform"] == expected["geotransform"]
    assert got["metadata"] == expected["metadata"]
    assert got["data"].shape == expected["data"].shape
    if golden_cases.environment() == golden_cases.recorded_environment():
        np.testing.assert_array_equal(got["data"], expected["data"])
    else:
        scale = float(np.ptp(expected["data"])) or 1.0
        np.testing.assert_allclose(got["data"], expected["data"], rtol=0, atol=1e-4 * scale)
