"""Spectral responses from band tables: Gaussian overlaps, presets, CSV band tables and user matrices."""
import numpy as np
import pytest

from sure_core.errors import InputShapeError, InvalidInputValueError
from sure_core.spectral_response import (
    BandTable,
    band_coverage,
    gaussian_response,
    parse_band_table,
    parse_response_matrix,
    preset_bands,
    validate_response_matrix,
)

# a Hyperion-like sensor: 10 nm sampling from 400 to 2500 nm, 10 nm wide bands
HS = BandTable(np.arange(400.0, 2500.0, 10.0), 10.0)


@pytest.mark.parametrize("sensor", ["sentinel2", "landsat8", "landsat9", "S2"])
def test_gaussian_rows_sum_to_one_and_peak_at_the_nearest_hs_band(sensor):
    ms = preset_bands(sensor)
    r = gaussian_response(HS, ms)
    assert r.shape == (len(ms), len(HS))
    np.testing.assert_allclose(r.sum(axis=1), 1.0, atol=1e-12)
    assert (r >= 0).all()
    peak = HS.centres_nm[r.argmax(axis=1)]
    assert np.all(np.abs(peak - ms.centres_nm) <= 5.0), (peak, ms.centres_nm)


def test_gaussian_width_follows_the_fwhm():
    ms = preset_bands("sentinel2", ["B8", "B8A"])  # 106 nm and 21 nm wide, close centres
    r = gaussian_response(HS, ms)
    broad, narrow = (r > 0.01 * r.max(axis=1, keepdims=True)).sum(axis=1)
    assert broad > 3 * narrow


def test_arrays_instead_of_tables():
    r = gaussian_response(np.array([500.0, 600.0, 700.0]), np.array([600.0]), hs_fwhm=np.array([50.0] * 3),
                          ms_fwhm=np.array([60.0]))
    assert r.shape == (1, 3)
    assert r[0, 1] > r[0, 0] and r[0, 0] == pytest.approx(r[0, 2])


def test_ms_band_outside_hs_range_is_named():
    vnir = BandTable(np.arange(400.0, 1000.0, 10.0), 10.0)
    with pytest.raises(InvalidInputValueError, match=r"B11.*B12|B12.*B11"):
        gaussian_response(vnir, preset_bands("sentinel2"))
    # B1..B9 are inside
    inside = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9"]
    ok = gaussian_response(vnir, preset_bands("sentinel2", inside))
    assert ok.shape == (10, 60)


def test_ms_band_in_a_deleted_absorption_window_is_not_covered():
    kept = HS.centres_nm[(HS.centres_nm < 1340) | (HS.centres_nm > 1450)]  # water-vapour bands removed
    hs = BandTable(kept, 10.0)
    cirrus = BandTable(np.array([1373.5]), np.array([31.0]), ("B10",))
    assert band_coverage(hs, cirrus)[0] < 0.1
    with pytest.raises(InvalidInputValueError, match="B10"):
        gaussian_response(hs, cirrus)


def test_preset_subset_and_unknown_names():
    t = preset_bands("landsat_oli", ["B4", "B3", "B2"])
    assert t.names == ("B4", "B3", "B2") and t.centres_nm[0] > t.centres_nm[2]
    with pytest.raises(InvalidInputValueError, match="B10"):
        preset_bands("sentinel2", ["B2", "B10"])
    with pytest.raises(InvalidInputValueError, match="preset"):
        preset_bands("worldview9")


def test_sentinel2_preset_reuses_the_band_table_centres():
    from sure_core import sentinel2
    t = preset_bands("sentinel2")
    assert t.names == sentinel2.SPECTRAL_ORDER
    np.testing.assert_allclose(t.centres_nm, [b.centre_nm for b in sentinel2.BANDS])


# ---------------------------------------------------------------------------------------------------------------
# band-table CSV
# ---------------------------------------------------------------------------------------------------------------
def test_band_table_in_nm_with_names_and_header(tmp_path):
    path = tmp_path / "bands.csv"
    path.write_text("name,centre (nm),fwhm (nm)\nblue,490,60\nred,665,30\n")
    for source in (path, str(path)):
        t = parse_band_table(source)
        assert t.names == ("blue", "red")
        np.testing.assert_allclose(t.centres_nm, [490, 665])
        assert "nm" in t.note and "header" in t.note


def test_band_table_in_micrometres_is_detected_and_stated():
    t = parse_band_table("0.49;0.06\n0.665;0.03\n")
    np.testing.assert_allclose(t.centres_nm, [490, 665])
    np.testing.assert_allclose(t.fwhm_nm, [60, 30])
    assert "µm" in t.note
    t2 = parse_band_table("wavelength_um fwhm_um\n0.49 0.06\n")
    np.testing.assert_allclose(t2.centres_nm, [490])
    assert parse_band_table("490,60", unit="nm").centres_nm[0] == 490


@pytest.mark.parametrize("text, error, match", [
    ("", InvalidInputValueError, "no band rows"),
    ("490,60,7\n", InputShapeError, "2 values"),
    ("490\n", InputShapeError, "2 values"),
    ("490,abc\n", InvalidInputValueError, "numbers"),
    ("490,\n", InvalidInputValueError, "numbers"),
    ("490,-5\n", InvalidInputValueError, "positive"),
])
def test_bad_band_tables(text, error, match):
    with pytest.raises(error, match=match):
        parse_band_table(text)


def test_missing_band_table_file():
    with pytest.raises(InvalidInputValueError, match="does not exist"):
        parse_band_table("/nonexistent/bands.csv")


# ---------------------------------------------------------------------------------------------------------------
# response-matrix CSV
# ---------------------------------------------------------------------------------------------------------------
def test_matrix_with_header_and_names(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("band,h1,h2,h3\nblue,0.5,0.5,0\nred,0,0.2,0.8\n")
    r = parse_response_matrix(path, ms_bands=2, hs_bands=3)
    np.testing.assert_allclose(r, [[0.5, 0.5, 0], [0, 0.2, 0.8]])
    np.testing.assert_allclose(parse_response_matrix("1 0\n0 1"), np.eye(2))


@pytest.mark.parametrize("text, error, match", [
    ("1,0\n0,1\n", InputShapeError, "rows but the MS image has 3"),
    ("1,0,0\n0,1,0\n", InputShapeError, "transpose"),
    ("1,0,0,0\n0,1,0,0\n0,0,1,0\n", InputShapeError, "columns"),
    ("1,0\n0,1,0\n0,0,1\n", InputShapeError, "different numbers"),
    ("1,-0.1\n0,1\n1,1\n", InvalidInputValueError, "negative"),
    ("1,nan\n0,1\n1,1\n", InvalidInputValueError, "NaN"),
    ("1,\n0,1\n1,1\n", InvalidInputValueError, "empty"),
    ("1,0\n0,0\n1,1\n", InvalidInputValueError, r"row\(s\) \[2\] are all zero"),
    ("1,x\n0,1\n1,1\n", InvalidInputValueError, "non-numeric"),
])
def test_bad_matrices(text, error, match):
    with pytest.raises(error, match=match):
        parse_response_matrix(text, ms_bands=3, hs_bands=2)


def test_validate_matrix_needs_2d():
    with pytest.raises(InputShapeError):
        validate_response_matrix(np.ones(3))
