"""Batch fusion of many scenes on a Dask cluster, without QGIS: Sentinel-2 scenes, HS + MS and PAN + MS pairs.

    python -m sure_fusion_qgis.batch SCENE... --output-dir OUT [--scheduler tcp://host:8786] [options]

One scene (an S2 product, 10/20/60 m band rasters, or a pair of rasters, optionally with an extent or a pixel
window) is one Dask task, which runs the request the QGIS algorithm would make through the plugin's own driver
(`fusion_request`). Outputs are written under a temporary name and
renamed when complete; finished outputs are skipped on a re-run; a worker lost mid-run costs only its own task.

* `scenes`  — what to fuse: product paths and manifest CSV rows → `Scene`, and the output name of each;
* `outputs` — when an output counts as finished, and the temporary files a killed task leaves behind;
* `task`    — the unit of work run on a worker: `run_scene(scene, settings) -> SceneOutcome`;
* `runner`  — the cluster (a LocalCluster or a scheduler address), submission, retries, progress, summary;
* `__main__` — the command line.

Nothing here imports QGIS; torch is imported on the workers only. The batch runner is not in the plugin's zip
(tools/package.py): it needs Dask, which the plugin's installer does not install, and it runs from a checkout
(workers need the repository on PYTHONPATH), not inside QGIS.
"""
