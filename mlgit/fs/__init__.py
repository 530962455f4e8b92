"""The ``mlgit://`` fsspec filesystem: read any version of a dataset with the data stack.

Registered with fsspec under the protocol ``mlgit`` (an ``fsspec.specs`` entry
point; install ``mlgit[fs]``), so pandas, PyArrow, Dask and anything else that
opens fsspec URLs reads versioned data by revision::

    import pandas as pd
    df = pd.read_csv("mlgit://data@3fa9/train/part-0001.csv")        # in a clone
    df = pd.read_csv("mlgit://3fa9c0.../train/part-0001.csv",         # no clone
                     storage_options={"remote": "s3://bucket/prefix"})

:func:`url` builds a URL from a revision and a path (``origin/data`` becomes
``mlgit://origin%2Fdata/...``). :class:`MlgitFileSystem` documents the storage
options; docs/reading-data.md the whole of it. Imports fsspec, so nothing
below this package imports it.
"""

from __future__ import annotations

from mlgit.fs.errors import ReadOnlyError
from mlgit.fs.spec import MlgitFile, MlgitFileSystem
from mlgit.fs.urls import url

__all__ = ["MlgitFile", "MlgitFileSystem", "ReadOnlyError", "url"]
