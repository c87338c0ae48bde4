"""Test inputs built on the fly: georeferenced 10/20/60 m GeoTIFFs and fake Sentinel-2 .SAFE products.

The fake products follow the layout GDAL's own autotest uses for its SENTINEL2 driver (compact SAFE:
MTD_MSIL2A.xml / MTD_MSIL1C.xml, GRANULE/<id>/MTD_TL.xml with the tile geocoding, IMG_DATA with one
lossless JPEG 2000 file per band) but are tiny and written here, so no download is needed.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from sure_fusion_qgis import raster_writer
from tests import synthetic_s2

EPSG = 32648
ORIGIN = (600000.0, 1200000.0)          # UTM 48N (Vietnam), upper-left corner shared by the three grids
NAMES = {"10m": ("B2", "B3", "B4", "B8"), "20m": ("B5", "B6", "B7", "B8A", "B11", "B12"), "60m": ("B1", "B9")}
PIXEL = {"10m": 10.0, "20m": 20.0, "60m": 60.0}


def write_band_rasters(folder: Path, arrays: dict, origin=ORIGIN, epsg=EPSG, shifts=None, epsgs=None,
                       describe=True, nodata=None, suffix="", gdal_type=gdal.GDT_UInt16) -> dict[str, str]:
    """GeoTIFFs per group from (bands, rows, cols) arrays; `shifts` moves a group's origin (metres)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, data in arrays.items():
        if data is None:
            continue
        dx, dy = (shifts or {}).get(key, (0.0, 0.0))
        gt = (origin[0] + dx, PIXEL[key], 0.0, origin[1] + dy, 0.0, -PIXEL[key])
        wkt = raster_writer.epsg_wkt((epsgs or {}).get(key, epsg))
        descriptions = list(NAMES[key]) if describe and data.shape[0] == len(NAMES[key]) else None
        paths[key] = raster_writer.write_simple_geotiff(folder / f"s2_{key}{suffix}.tif", np.asarray(data), gt, wkt,
                                                        descriptions, nodata=nodata, gdal_type=gdal_type)
    return paths


def synthetic_scene(size: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    """A smooth random scene in DN (uint16) at 10/20/60 m: block means, so the grids agree exactly (its truth:
    `synthetic_truth`)."""
    return synthetic_s2.observe(synthetic_truth(size, seed))


def synthetic_truth(size: int = 60, seed: int = 0) -> np.ndarray:
    """(12, size, size) the 10 m truth of `synthetic_scene(size, seed)` in DN, bands in spectral order."""
    return synthetic_s2.truth(size, seed)


# ------------------------------------------------------------------------------------ fake products
_BAND_FILES = {"10m": ("B02", "B03", "B04", "B08"), "20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
               "60m": ("B01", "B09")}
_FILE_TO_NAME = {"B01": "B1", "B02": "B2", "B03": "B3", "B04": "B4", "B05": "B5", "B06": "B6", "B07": "B7",
                 "B08": "B8", "B8A": "B8A", "B09": "B9", "B11": "B11", "B12": "B12"}


def _write_jp2(path: Path, band: np.ndarray, origin, pixel: float, epsg: int) -> None:
    mem = gdal.GetDriverByName("MEM").Create("", band.shape[1], band.shape[0], 1, gdal.GDT_UInt16)
    mem.SetGeoTransform((origin[0], pixel, 0, origin[1], 0, -pixel))
    mem.SetProjection(raster_writer.epsg_wkt(epsg))
    mem.GetRasterBand(1).WriteArray(band)
    out = gdal.GetDriverByName("JP2OpenJPEG").CreateCopy(str(path), mem, options=["REVERSIBLE=YES", "QUALITY=100"])
    assert out is not None, f"JP2OpenJPEG could not write {path}"
    out = None


def build_fake_safe(folder: Path, arrays: dict[str, np.ndarray], level: str = "L2A", offset: int = -1000,
                    baseline: str = "05.09", origin=ORIGIN, epsg: int = EPSG, tile: str = "T48PXS") -> Path:
    """A minimal compact-SAFE Sentinel-2 product holding `arrays` (DN per group, bands in NAMES order)."""
    level = level.upper()
    product = f"S2B_MSI{level}_20230823T095559_N{baseline.replace('.', '')}_R122_{tile}_20230823T124759"
    safe = folder / f"{product}.SAFE"
    granule_id = f"{level}_{tile}_A033753_20230823T095553"
    granule = safe / "GRANULE" / granule_id
    image_files = []
    for key, files in _BAND_FILES.items():
        data = arrays[key]
        subdir = granule / "IMG_DATA" / (f"R{key}" if level == "L2A" else "")
        subdir.mkdir(parents=True, exist_ok=True)
        for band_file in files:
            stem = f"{tile}_20230823T095559_{band_file}" + (f"_{key}" if level == "L2A" else "")
            _write_jp2(subdir / f"{stem}.jp2", data[NAMES[key].index(_FILE_TO_NAME[band_file])], origin,
                       PIXEL[key], epsg)
            rel = (subdir / stem).relative_to(safe).as_posix()
            image_files.append(f"<IMAGE_FILE>{rel}</IMAGE_FILE>")
    sizes = "".join(f'<Size resolution="{int(PIXEL[k])}"><NROWS>{arrays[k].shape[1]}</NROWS>'
                    f'<NCOLS>{arrays[k].shape[2]}</NCOLS></Size>' for k in ("10m", "20m", "60m"))
    positions = "".join(f'<Geoposition resolution="{int(PIXEL[k])}"><ULX>{origin[0]:.0f}</ULX><ULY>{origin[1]:.0f}'
                        f'</ULY><XDIM>{int(PIXEL[k])}</XDIM><YDIM>-{int(PIXEL[k])}</YDIM></Geoposition>'
                        for k in ("10m", "20m", "60m"))
    (granule / "MTD_TL.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<n1:Level-{level[1:]}_Tile_ID xmlns:n1="https://psd-14.sentinel2.'
        f'eo.esa.int/PSD/S2_PDI_Level-{level[1:]}_Tile_Metadata.xsd"><n1:General_Info><TILE_ID>S2B_OPER_MSI_{level}_'
        f'TL_2BPS_20230823T124759_A033753_{tile}_N{baseline}</TILE_ID></n1:General_Info><n1:Geometric_Info>'
        f'<Tile_Geocoding><HORIZONTAL_CS_NAME>WGS84 / UTM zone 48N</HORIZONTAL_CS_NAME><HORIZONTAL_CS_CODE>EPSG:'
        f'{epsg}</HORIZONTAL_CS_CODE>{sizes}{positions}</Tile_Geocoding></n1:Geometric_Info>'
        f'</n1:Level-{level[1:]}_Tile_ID>\n', encoding="utf-8")
    if level == "L2A":
        radiometry = ("<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit=\"none\">10000"
                      "</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST><BOA_ADD_OFFSET_VALUES_LIST>"
                      + "".join(f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13))
                      + "</BOA_ADD_OFFSET_VALUES_LIST>")
        root, ptype = "Level-2A_User_Product", "S2MSI2A"
    else:
        radiometry = ("<QUANTIFICATION_VALUE unit=\"none\">10000</QUANTIFICATION_VALUE><Radiometric_Offset_List>"
                      + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">{offset}</RADIO_ADD_OFFSET>' for i in range(13))
                      + "</Radiometric_Offset_List>")
        root, ptype = "Level-1C_User_Product", "S2MSI1C"
    (safe / f"MTD_MSI{level}.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<n1:{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/'
        f'User_Product_{root.split("_")[0]}.xsd"><n1:General_Info><Product_Info>'
        f'<PRODUCT_START_TIME>2023-08-23T09:55:59.024Z</PRODUCT_START_TIME>'
        f'<PRODUCT_URI>{product}.SAFE</PRODUCT_URI><PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>'
        f'<PRODUCT_TYPE>{ptype}</PRODUCT_TYPE><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>'
        f'<Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT></Query_Options>'
        f'<Product_Organisation><Granule_List><Granule granuleIdentifier="S2B_OPER_MSI_{level}_TL_{tile}" '
        f'imageFormat="JPEG2000">{"".join(image_files)}</Granule></Granule_List></Product_Organisation>'
        f'</Product_Info><Product_Image_Characteristics><Special_Values><SPECIAL_VALUE_TEXT>NODATA'
        f'</SPECIAL_VALUE_TEXT><SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>{radiometry}'
        f'</Product_Image_Characteristics></n1:General_Info></n1:{root}>\n', encoding="utf-8")
    return safe


def zip_product(safe: Path) -> Path:
    target = safe.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(safe.rglob("*")):
            archive.write(path, path.relative_to(safe.parent).as_posix())
    return target
