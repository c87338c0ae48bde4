import numpy as np
import pytest

from tests.conftest import shared_file


@pytest.fixture(scope="session")
def apex():
    from sure_core.simulation import load_apex
    return load_apex(shared_file("apex_gt.mat"))


@pytest.fixture(scope="session")
def apex_crop(apex):
    """A 72×72 crop (a multiple of 6) of the APEX scene, 12 bands in spectral order."""
    return np.ascontiguousarray(apex[:, 60:132, 40:112])
