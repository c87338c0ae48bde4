"""Batch sharpening of many Sentinel-2 scenes on a Dask cluster, without QGIS.

    python -m sure_fusion_qgis.batch SCENE... --output-dir OUT [--scheduler tcp://host:8786] [options]

One scene (an S2 product, or 10/20/60 m band rasters, optionally with an extent or a pixel window) is one Dask
task, which calls the plugin's own `sharpening.run_sharpening`. Outputs are written under a temporary name and
renamed when complete; finished outputs are skipped on a re-run; a worker lost mid-run costs only its own task.

* `scenes`  — what to sharpen: product paths and manifest CSV rows → `Scene`, and the output name of each;
* `outputs` — when an output counts as finished, and the temporary files a killed task leaves behind;
* `task`    — the unit of work run on a worker: `sharpen_scene(scene, settings) -> SceneOutcome`;
* `runner`  — the cluster (a LocalCluster or a scheduler address), submission, retries, progress, summary;
* `__main__` — the command line.

Nothing here imports QGIS; torch is imported on the workers only.
"""
