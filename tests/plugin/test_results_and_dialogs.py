"""What a QGIS user meets: how results load (names, colours), the error estimate in the log, metadata, outputs
and report, what the dialogs say, and the checks made before a run."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsMultiBandColorRenderer, QgsProcessingContext, QgsProcessingFeedback, QgsProject, QgsRasterLayer

import pair_fixtures as pf
from alg_helpers import FAST, SPECTRAL
from sure_fusion_qgis import io_errors, pair_inputs, raster_stack

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample"
SAMPLE_INPUTS = {"INPUT_10M": str(SAMPLE / "sample_10m.tif"), "INPUT_20M": str(SAMPLE / "sample_20m.tif"),
                 "INPUT_60M": str(SAMPLE / "sample_60m.tif")}
VISIBLE = ("s2_sharpening_bands", "s2_sharpening_product", "hsms_fusion", "pansharpening")


class LogFeedback(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)
        super().pushInfo(info)


def run_and_load(parameters: dict, algorithm="s2_sharpening_bands", feedback=None):
    import processing

    return processing.runAndLoadResults(f"sure_fusion:{algorithm}", {**FAST, "ITERATIONS": 1, **parameters},
                                        feedback=feedback)


def loaded(name: str) -> QgsRasterLayer:
    layers = [layer for layer in QgsProject.instance().mapLayers().values() if layer.name() == name]
    assert len(layers) == 1, [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    return layers[0]


# ------------------------------------------------------------------------------------------ loaded results
def test_two_runs_load_under_their_file_names_in_natural_colour(provider, qgis_new_project, tmp_path):
    run_and_load({**SAMPLE_INPUTS, "OUTPUT": str(tmp_path / "first_run.tif")})
    run_and_load({**SAMPLE_INPUTS, "OUTPUT": str(tmp_path / "second_run.tif")})
    for name in ("first_run", "second_run"):
        layer = loaded(name)
        renderer = layer.renderer()
        assert isinstance(renderer, QgsMultiBandColorRenderer)
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == tuple(
            SPECTRAL.index(b) + 1 for b in ("B4", "B3", "B2"))
    # the stretch is a 2–98 % cut of each band, not its minimum and maximum
    data, _, _, _ = raster_stack.read_raster(str(tmp_path / "first_run.tif"))
    red = data[SPECTRAL.index("B4")]
    low, high = np.percentile(red, [2, 98])
    enhancement = loaded("first_run").renderer().redContrastEnhancement()
    assert red.min() < enhancement.minimumValue() < enhancement.maximumValue() < red.max()
    assert enhancement.minimumValue() == pytest.approx(low, rel=0.05)
    assert enhancement.maximumValue() == pytest.approx(high, rel=0.05)


def test_without_60m_bands_natural_colour_is_still_b4_b3_b2(provider, qgis_new_project, tmp_path):
    inputs = {k: v for k, v in SAMPLE_INPUTS.items() if k != "INPUT_60M"}
    run_and_load({**inputs, "OUTPUT": str(tmp_path / "no60.tif")})
    renderer = loaded("no60").renderer()
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)   # B2 B3 B4 B5 … B12


def test_a_temporary_output_gets_a_descriptive_name(provider, qgis_new_project):
    run_and_load({**SAMPLE_INPUTS, "OUTPUT": "TEMPORARY_OUTPUT"})
    assert isinstance(loaded("Sharpened image (sample_10m)").renderer(), QgsMultiBandColorRenderer)


def test_hs_output_with_known_wavelengths_loads_in_natural_colour(provider, qgis_new_project, tmp_path):
    scene = pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=24)
    paths = pf.write_hs_ms(tmp_path / "in", scene)
    run_and_load({**pf.layers(paths), "OUTPUT": str(tmp_path / "fused.tif")}, "hsms_fusion")
    renderer = loaded("fused").renderer()
    wavelengths = scene["wavelengths"]
    expected = tuple(int(np.abs(wavelengths - w).argmin()) + 1 for w in (650, 550, 470))
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == expected


# ------------------------------------------------------------------------------------------ error estimate
@pytest.fixture(scope="module")
def sample_run(provider, tmp_path_factory):
    import processing

    folder = tmp_path_factory.mktemp("estimate")
    feedback = LogFeedback()
    result = processing.run("sure_fusion:s2_sharpening_bands",
                            {**FAST, **SAMPLE_INPUTS, "OUTPUT": str(folder / "sample_sharp.tif"),
                             "REPORT": str(folder / "sample_sharp.html")}, feedback=feedback)
    return result, feedback.lines


def test_error_estimate_is_the_same_in_log_metadata_outputs_and_report(sample_run):
    result, log = sample_run
    ds = gdal.Open(result["OUTPUT"])
    from_metadata = {}
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        if band.GetMetadataItem("ESTIMATED_RMSE"):
            from_metadata[band.GetMetadataItem("BANDNAME")] = float(band.GetMetadataItem("ESTIMATED_RMSE"))
    assert list(from_metadata) == ["B1", "B5", "B6", "B7", "B8A", "B9", "B11", "B12"]   # the sharpened bands
    from_log = {m.group(1): float(m.group(2)) for line in log
                if (m := re.match(r"\s+(B\w+): RMSE ([\d.e+-]+) ± ([\d.e+-]+), PSNR ([\d.]+) dB", line))}
    from_output = {k: float(v.split("±")[0]) for k, v in (item.split("=") for item in
                                                          result["ESTIMATED_RMSE"].split(", "))}
    report = Path(result["REPORT"]).read_text(encoding="utf-8")
    for name, rmse in from_metadata.items():
        assert rmse > 0 and math.isfinite(rmse)
        assert from_log[name] == pytest.approx(rmse, rel=1e-3)
        assert from_output[name] == pytest.approx(rmse, rel=1e-3)
        assert f"<td>{name}</td><td>{from_log[name]:.4g}</td>" in report
    assert "Estimated error per band" in report and "self-check" in report
    assert "self-check" in ds.GetMetadataItem("ESTIMATED_ERROR_COVERS")


def test_error_estimate_is_near_the_sample_truth(provider, tmp_path):
    """The sample is simulated, so its truth and noise are known; with the true σ given (the estimate needs it: the
    σ estimated from the sample is 3× too high for B8, whose fine white texture passes for noise, and the estimate
    then errs 1.4–3× high) it came within 0.85–1.03× of the true RMSE on the 20 m bands and 1.73 / 2.5× on B1 / B9
    (20 × 20 px at 60 m) at 3 iterations."""
    import processing

    bands = {key: raster_stack.read_raster(str(SAMPLE / f"sample_{key}.tif"))[0] for key in ("10m", "20m", "60m")}
    sigma = {name: float(np.sqrt((bands[key][k] ** 2).mean() / 10 ** 4.5))   # 45 dB (resources/sample/README.md)
             for key, names in (("10m", ("B2", "B3", "B4", "B8")), ("20m", ("B5", "B6", "B7", "B8A", "B11", "B12")),
                                ("60m", ("B1", "B9"))) for k, name in enumerate(names)}
    out = tmp_path / "sample.tif"
    processing.run("sure_fusion:s2_sharpening_bands", {**FAST, **SAMPLE_INPUTS, "OUTPUT": str(out),
                                                       "NOISE_SIGMA": ",".join(f"{sigma[n]:.4g}" for n in SPECTRAL)})
    estimate, _, _, _ = raster_stack.read_raster(str(out))
    truth, _, _, _ = raster_stack.read_raster(str(SAMPLE / "truth_10m.tif"))
    ds = gdal.Open(str(out))
    ratios = {}
    for i, name in enumerate(SPECTRAL):
        estimated = ds.GetRasterBand(i + 1).GetMetadataItem("ESTIMATED_RMSE")
        if estimated is not None:
            ratios[name] = float(estimated) / float(np.sqrt(((estimate[i] - truth[i]) ** 2).mean()))
    twenty = [ratios[n] for n in ("B5", "B6", "B7", "B8A", "B11", "B12")]
    assert len(ratios) == 8 and all(0.8 < r < 1.8 for r in twenty), ratios
    assert all(0.8 < ratios[n] < 3.0 for n in ("B1", "B9")), ratios      # 20 × 20 px at 60 m: the weakest
    assert 0.8 < np.median(twenty) < 1.4, ratios


def test_an_area_too_small_for_the_self_check_says_so(provider, tmp_path):
    import processing

    feedback = LogFeedback()
    x0, y0 = 500040.0, 5100000.0   # the sample's corner (UTM 33N): 60 × 60 px at 10 m
    result = processing.run("sure_fusion:s2_sharpening_bands",
                            {**FAST, "ITERATIONS": 1, **SAMPLE_INPUTS, "OUTPUT": str(tmp_path / "small.tif"),
                             "EXTENT": f"{x0},{x0 + 600},{y0 - 600},{y0} [EPSG:32633]"}, feedback=feedback)
    assert gdal.Open(result["OUTPUT"]).RasterXSize == 60
    assert any("No self-check: the area is too small" in line and "B5" in line for line in feedback.lines)


def test_iteration_lines_show_the_loss_not_a_normalised_risk(sample_run):
    _, log = sample_run
    iterations = [line for line in log if "iteration" in line]
    assert iterations and all("loss" in line and "risk" not in line for line in iterations)


# ------------------------------------------------------------------------------------------ report
def test_report_is_made_by_default_and_named_after_the_output(provider, tmp_path):
    import processing

    algorithm = provider.algorithm("s2_sharpening_bands")
    assert algorithm.parameterDefinition("REPORT").createByDefault()
    result = processing.run("sure_fusion:s2_sharpening_bands",
                            {**FAST, "ITERATIONS": 1, **SAMPLE_INPUTS, "OUTPUT": str(tmp_path / "my_field.tif"),
                             "REPORT": "TEMPORARY_OUTPUT"})
    assert Path(result["REPORT"]).name == "my_field report.html" and Path(result["REPORT"]).is_file()
    assert "<title>SURE Fusion — my_field</title>" in Path(result["REPORT"]).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ dialogs
def _algorithms(provider):
    return [provider.algorithm(name) for name in (*VISIBLE, "s2_sharpening")]


def test_s2_inputs_are_marked_required_in_the_toolbox_algorithms(provider):
    from sure_fusion_qgis.compat import FLAG_OPTIONAL, HIDDEN

    def optional(algorithm, name):
        return bool(algorithm.parameterDefinition(name).flags() & FLAG_OPTIONAL)

    bands, product, combined = (provider.algorithm(n) for n in ("s2_sharpening_bands", "s2_sharpening_product",
                                                                "s2_sharpening"))
    assert not optional(bands, "INPUT_10M") and not optional(bands, "INPUT_20M") and optional(bands, "INPUT_60M")
    assert bands.parameterDefinition("PRODUCT") is None
    assert not optional(product, "PRODUCT") and product.parameterDefinition("INPUT_10M") is None
    # the first algorithm keeps every parameter name for qgis_process and models, out of the toolbox
    assert all(optional(combined, n) for n in ("PRODUCT", "INPUT_10M", "INPUT_20M", "INPUT_60M"))
    assert combined.flags() & HIDDEN and not bands.flags() & HIDDEN and not product.flags() & HIDDEN


def test_choices_keep_their_values_and_show_labels(provider):
    expected = {"LOSS": ["sure", "bp"], "DEVICE": ["auto", "cpu", "cuda"], "SMOOTHING": ["auto", "on", "off"],
                "TRAINING": ["auto", "whole", "tiles", "scene"], "SRF": ["estimate", "gaussian", "csv"],
                "MS_SENSOR": ["layer_metadata", "sentinel2", "landsat_oli"]}
    for algorithm in _algorithms(provider):
        for parameter in algorithm.parameterDefinitions():
            if parameter.type() != "enum":
                continue
            assert parameter.usesStaticStrings()
            if parameter.name() in expected:
                assert parameter.options() == expected[parameter.name()]
            labels = parameter.metadata()["widget_wrapper"]["labels"]
            assert set(labels) == set(parameter.options())
            assert all(len(label) <= 30 for label in labels.values()), labels
    sensor = provider.algorithm("pansharpening").parameterDefinition("SENSOR")
    assert sensor.metadata()["widget_wrapper"]["labels"]["spot67"] == "SPOT 6/7"


IDENTIFIER = re.compile(r"\b(?!MTD_MSIL)[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


def test_labels_are_short_and_help_names_nothing_the_dialog_does_not_show(provider):
    for algorithm in _algorithms(provider):
        texts = [algorithm.shortHelpString()]
        for parameter in algorithm.parameterDefinitions():
            label = parameter.description()
            assert len(label) <= 40 and "[optional]" not in label and "=" not in label, label
            texts += [label, parameter.help() or ""]
        for text in texts:
            assert "`" not in text and not IDENTIFIER.search(text), (algorithm.name(), IDENTIFIER.search(text), text)


def test_defaults_are_the_real_recipe_and_the_help_says_what_they_cost(provider):
    from sure_core import SolverOptions
    from sure_fusion_qgis.algorithms.base import CORE_RECIPE

    core = SolverOptions()
    assert CORE_RECIPE == {"iterations": core.iterations, "width": core.width, "learning_rate": core.learning_rate}
    s2 = provider.algorithm("s2_sharpening_bands")
    assert s2.parameterDefinition("ITERATIONS").defaultValue() == 300
    assert s2.parameterDefinition("WIDTH").defaultValue() == 16
    assert "300 iterations take about 1 minute for 120 × 120 px" in s2.parameterDefinition("ITERATIONS").help()
    pan = provider.algorithm("pansharpening")
    assert pan.parameterDefinition("ITERATIONS").defaultValue() == pan.RECIPE["iterations"] == 60
    assert pan.parameterDefinition("WIDTH").defaultValue() == pan.RECIPE["width"] == 8


def test_help_button_page_lists_every_parameter(provider):
    for algorithm in _algorithms(provider):
        url = algorithm.helpUrl()
        assert url.startswith("file://")
        page = Path(url[len("file://"):]).read_text(encoding="utf-8")
        for parameter in algorithm.parameterDefinitions():
            assert f"<code>{parameter.name()}</code>" in page
        assert f"qgis_process run {algorithm.id()}" in page


def test_each_toolbox_algorithm_has_its_own_icon(provider):
    icons = [provider.algorithm(name).svgIconPath() for name in VISIBLE]
    assert len(set(icons)) == len(icons) and all(Path(p).is_file() for p in icons)
    assert all(not provider.algorithm(name).icon().isNull() for name in VISIBLE)


def test_choice_widget_shows_labels_and_returns_the_static_values(provider, qgis_app):
    from sure_fusion_qgis.choices import LabelledChoiceWrapper

    parameter = provider.algorithm("pansharpening").parameterDefinition("SENSOR")
    dialog = type("AlgorithmDialog", (), {})()
    wrapper = LabelledChoiceWrapper(parameter, dialog)
    texts = [wrapper.widget.itemText(i) for i in range(wrapper.widget.count())]
    assert texts[:3] == ["Other / unknown", "Pléiades", "WorldView-2"] and wrapper.value() == "generic"
    wrapper.setValue("spot67")
    assert wrapper.widget.currentText() == "SPOT 6/7" and wrapper.value() == "spot67"


# ------------------------------------------------------------------------------------------ before a run
def test_swapped_10m_and_20m_layers_are_named_before_the_run(provider):
    algorithm = provider.algorithm("s2_sharpening_bands")
    ok, message = algorithm.checkParameterValues(
        {**SAMPLE_INPUTS, "INPUT_10M": SAMPLE_INPUTS["INPUT_20M"], "INPUT_20M": SAMPLE_INPUTS["INPUT_10M"],
         "OUTPUT": "TEMPORARY_OUTPUT"}, QgsProcessingContext())
    assert not ok
    assert "look swapped" in message and "20 m pixels and bands B5, B6" in message and "10 m pixels" in message


def test_pair_layer_chosen_twice_or_swapped_is_named_before_the_run(provider, tmp_path):
    scene = pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=8)
    paths = pf.write_hs_ms(tmp_path, scene)
    algorithm = provider.algorithm("hsms_fusion")
    context = QgsProcessingContext()
    ok, message = algorithm.checkParameterValues({"HS": paths["ms"], "MS": paths["ms"], "OUTPUT": "x.tif"}, context)
    assert not ok and "same layer" in message
    ok, message = algorithm.checkParameterValues({"HS": paths["ms"], "MS": paths["hs"], "OUTPUT": "x.tif"}, context)
    assert not ok and "look swapped" in message and "10 m pixels" in message and "30 m pixels" in message


def test_pixel_sizes_in_messages_carry_their_unit(tmp_path):
    scene = pf.synthetic_hs_ms(size=48, ratio=3, hs_bands=8)
    paths = pf.write_hs_ms(tmp_path, scene)
    with pytest.raises(io_errors.RasterInputError, match=r"pixel size of 10 m, .* 30 m"):
        pair_inputs.open_pair(paths["ms"], paths["hs"], low_label="HS", high_label="MS")


def test_multi_band_pan_message_points_to_a_band_extraction_that_exists(tmp_path):
    scene = pf.synthetic_pan_ms(size=32, ratio=4, bands=4)
    paths = pf.write_pan_ms(tmp_path, scene, pan=np.stack([scene["pan"][0]] * 2))
    with pytest.raises(io_errors.RasterInputError, match="Rearrange bands"):
        pair_inputs.open_pair(paths["ms"], paths["pan"], low_label="MS", high_label="PAN", single_band_high=True)
