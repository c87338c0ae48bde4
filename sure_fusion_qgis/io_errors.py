"""The errors of the plugin's file handling (GDAL reading and writing, output paths, safe writing), in one
place so that the readers, the writer, `safe_output` and `output_paths` share them without importing each other.

Every message is meant for the end user: it says what is wrong and how to fix it.
"""


class RasterIOError(ValueError):
    """A problem with the data or the output path that the user can fix; the message says how."""


class RasterInputError(RasterIOError):
    pass


class RasterOutputError(RasterIOError):
    pass


class InvalidResultError(RasterIOError):
    """A result that is not valid (NaN or infinite where the inputs were valid), or a setting that cannot fit the
    data (a noise σ above the band's own spread): never written, never reported as a success."""
