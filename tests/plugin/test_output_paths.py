"""Every output path is checked before training (issue 14): an output that is an input or another output (also
through symbolic and hard links), a format the plugin does not write, names beyond the file system's limit — each
fails at once with a message that says what to do, and every file that was there is left byte for byte.

Also the naming of temporary files (`safe_output`): a valid 250-byte name is written (its temporary name is
shortened), and a temporary file that a running writer holds is never deleted as "stale".
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

import pair_fixtures as pf
import s2_fixtures
from alg_helpers import fingerprint, run_alg, temporaries
from sure_fusion_qgis import output_paths, safe_output


@pytest.fixture()
def rasters(tmp_path):
    """48×48 px (the smallest area with 60 m input and σ estimated) in a folder of the test's own."""
    return s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(48, seed=3))


def _inputs(paths):
    return {"INPUT_10M": paths["10m"], "INPUT_20M": paths["20m"], "INPUT_60M": paths["60m"]}


def _refused(parameters, expected, untouched):
    """The run fails with `expected` in its message, and no file in `untouched` changed."""
    before = {p: fingerprint(p) for p in untouched}
    with pytest.raises(QgsProcessingException) as error:
        run_alg(parameters)
    assert expected.lower() in str(error.value).lower(), str(error.value)
    assert {p: fingerprint(p) for p in untouched} == before
    for folder in {Path(p).parent for p in untouched}:
        assert temporaries(folder) == []
    return str(error.value)


@pytest.mark.parametrize("key", ["10m", "20m", "60m"])
def test_output_equal_to_an_input_is_refused(provider, rasters, key):
    message = _refused({**_inputs(rasters), "OUTPUT": rasters[key]}, "would destroy the input", rasters.values())
    assert f"INPUT_{key.upper()}" in message


def test_report_equal_to_an_input_is_refused(provider, rasters, tmp_path):
    _refused({**_inputs(rasters), "OUTPUT": str(tmp_path / "out.tif"), "REPORT": rasters["20m"]},
             "is the input INPUT_20M", rasters.values())
    assert not (tmp_path / "out.tif").exists()


def test_output_equal_to_report_is_refused(provider, rasters, tmp_path):
    same = tmp_path / "same.tif"
    _refused({**_inputs(rasters), "OUTPUT": str(same), "REPORT": str(same)}, "are the same file", rasters.values())
    assert not same.exists()


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_output_linked_to_an_input_is_refused(provider, rasters, tmp_path, link):
    alias = tmp_path / "alias.tif"
    (os.link if link == "hard" else os.symlink)(rasters["10m"], alias)
    _refused({**_inputs(rasters), "OUTPUT": str(alias)}, "is the input INPUT_10M", [*rasters.values(), alias])


def test_output_equal_to_the_pansharpening_ms_is_refused(provider, tmp_path):
    paths = pf.write_pan_ms(tmp_path, pf.synthetic_pan_ms(32, ratio=4, bands=4))
    before = fingerprint(paths["ms"])
    with pytest.raises(QgsProcessingException) as error:
        pf.run_pair_alg("pansharpening", {**pf.layers(paths), "OUTPUT": paths["ms"]})
    assert "is the input MS" in str(error.value)
    assert fingerprint(paths["ms"]) == before


def test_hsms_report_equal_to_the_hs_layer_is_refused(provider, tmp_path):
    paths = pf.write_hs_ms(tmp_path, pf.synthetic_hs_ms(24, ratio=3, hs_bands=6))
    before = fingerprint(paths["hs"])
    with pytest.raises(QgsProcessingException) as error:
        pf.run_pair_alg("hsms_fusion", {**pf.layers(paths), "OUTPUT": str(tmp_path / "o.tif"), "REPORT": paths["hs"]})
    assert "is the input HS" in str(error.value)
    assert fingerprint(paths["hs"]) == before and not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.vrt", "out.nc", "out.html", "out"])
def test_output_in_a_format_not_written_is_refused(provider, rasters, tmp_path, name):
    message = _refused({**_inputs(rasters), "OUTPUT": str(tmp_path / name)}, "written as a GeoTIFF only",
                       rasters.values())
    assert ".tif" in message and not (tmp_path / name).exists()


def test_report_not_html_is_refused(provider, rasters, tmp_path):
    _refused({**_inputs(rasters), "OUTPUT": str(tmp_path / "o.tif"), "REPORT": str(tmp_path / "r.txt")},
             "written as an HTML report only", rasters.values())


def test_name_beyond_the_file_system_limit_is_refused(provider, rasters, tmp_path):
    long = tmp_path / ("n" * 300 + ".tif")
    _refused({**_inputs(rasters), "OUTPUT": str(long)}, "file name is 304 bytes long", rasters.values())


def test_long_odd_name_is_written_and_replaces_the_old_file(provider, rasters, tmp_path):
    """A valid 250-byte name in a folder with spaces, accents, CJK and '<b>' (QA #70, #78): its temporary name
    is shortened to fit NAME_MAX, and a stale temporary file of a killed run is deleted on the way."""
    folder = tmp_path / "dossier été 東京 <b>"
    folder.mkdir()
    out = folder / ("é" * 20 + "x" * 206 + ".tif")          # 20 × 2 + 206 + 4 = 250 bytes
    assert len(os.fsencode(out.name)) == 250
    out.write_bytes(b"an old version")
    stale = folder / (safe_output.temporary_prefix(out) + "deadbeef.tif")
    stale.write_bytes(b"left by a killed run")
    report = folder / "rapport <b> ü.html"
    result = run_alg({**_inputs(rasters), "OUTPUT": str(out), "REPORT": str(report)})
    assert result["OUTPUT"] == str(out) and result["REPORT"] == str(report)
    ds = gdal.Open(str(out))
    assert (ds.RasterCount, ds.RasterXSize) == (12, 48) and np.isfinite(ds.ReadAsArray()).all()
    assert "&lt;b&gt;" in report.read_text(encoding="utf-8")
    assert temporaries(folder) == []


# ------------------------------------------------------------------------------------------- safe_output
def test_temporary_names_fit_the_file_system(tmp_path):
    for length in (1, 200, 240, 251):
        target = tmp_path / ("a" * length + ".tif")
        prefix = safe_output.temporary_prefix(target)
        assert len(os.fsencode(prefix)) + 8 + len(".tif.aux.xml") <= 255
        assert prefix.startswith(".") and prefix.endswith(".partial-")
    short = tmp_path / "out.tif"
    assert safe_output.temporary_prefix(short) == ".out.tif.partial-"     # as the batch runner has always named them


def test_a_held_temporary_file_is_never_removed_as_stale(tmp_path):
    """Two runs writing one output at once (QA #90): the second one's clean-up must not delete the first one's file.
    The holder is another process, as in real life (flock is per open file)."""
    target = tmp_path / "out.tif"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sure_fusion_qgis.safe_output import StagedFile\n"
        f"staged = StagedFile({str(target)!r}); print(staged.path, flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        held = Path(holder.stdout.readline().strip())
        assert held.exists()
        orphan = tmp_path / (safe_output.temporary_prefix(target) + "0badf00d.tif")
        orphan.write_bytes(b"x")
        Path(str(orphan) + ".aux.xml").write_bytes(b"x")
        removed = output_paths.check_outputs([output_paths.geotiff_output("OUTPUT", str(target), 4, 4, 1)], {})
        assert sorted(p.name for p in removed) == sorted([orphan.name, orphan.name + ".aux.xml"])
        assert held.exists()
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in safe_output.remove_stale_temporaries(target)] == [held.name]   # its holder is gone


def test_gdal_sources_name_their_files(tmp_path):
    tif = tmp_path / "a.tif"
    tif.write_bytes(b"x")
    mtd = tmp_path / "P.SAFE" / "MTD_MSIL2A.xml"
    mtd.parent.mkdir()
    mtd.write_text("<x/>")
    assert output_paths.referenced_file(f"{tif}|layername=a") == tif
    assert output_paths.referenced_file(f"SENTINEL2_L2A:{mtd}:10m:EPSG_32633") == mtd
    assert output_paths.referenced_file(f'HDF5:"{tif}"://im10') == tif
    assert output_paths.referenced_file(f"/vsizip/{tif}/inner.tif") == tif


# ------------------------------------------------------------------------------------------------- batch
def test_batch_output_that_is_an_input_is_refused_before_any_cluster(tmp_path, capsys):
    """Scene b reads the raster that scene a would write: exit 2 before a cluster starts, the raster unchanged."""
    from sure_fusion_qgis.batch.__main__ import main

    paths = s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(48, seed=1))
    out = tmp_path / "out"
    out.mkdir()
    victim = out / "a_sharpened.tif"
    victim.write_bytes(Path(paths["10m"]).read_bytes())
    before = fingerprint(victim)
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("name,bands_10m,bands_20m\n"
                        f"a,{paths['10m']},{paths['20m']}\n"
                        f"b,{victim},{paths['20m']}\n")
    code = main([str(manifest), "-o", str(out), "--iterations", "3", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "is the input b: bands_10m" in err and "Dask:" not in err, err
    assert fingerprint(victim) == before


def test_batch_task_refuses_an_output_that_is_its_input(tmp_path):
    from sure_fusion_qgis.batch.scenes import Scene
    from sure_fusion_qgis.batch.task import BatchSettings, run_scene

    paths = s2_fixtures.write_band_rasters(tmp_path, s2_fixtures.synthetic_scene(48, seed=1))
    before = fingerprint(paths["20m"])
    scene = Scene("x", paths["20m"], rasters=(("10m", paths["10m"]), ("20m", paths["20m"])))
    outcome = run_scene(scene, BatchSettings(iterations=2, device="cpu", overwrite=True))
    assert outcome.status == "failed" and "would destroy the input" in outcome.message
    assert fingerprint(paths["20m"]) == before


def test_batch_summary_that_is_an_input_is_refused(tmp_path, capsys):
    """--summary is an output too: it may not overwrite the manifest (or any input), checked before anything runs."""
    from sure_fusion_qgis.batch.__main__ import main

    paths = s2_fixtures.write_band_rasters(tmp_path / "in", s2_fixtures.synthetic_scene(48, seed=1))
    manifest = tmp_path / "scenes.csv"
    manifest.write_text(f"name,bands_10m,bands_20m\na,{paths['10m']},{paths['20m']}\n")
    before = fingerprint(paths["10m"])
    code = main([str(manifest), "-o", str(tmp_path / "out"), "--summary", paths["10m"]])
    assert code == 2 and "--summary" in capsys.readouterr().err and fingerprint(paths["10m"]) == before
