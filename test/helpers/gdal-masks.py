#!/usr/bin/python3
"""Oracle for lanemap's valid-pixel masks: prints, as JSON, what GDAL (through rasterio) reads from each
file given: per band the nodata value and scale/offset GDAL applies, and the dataset mask (1 = every
band valid), row-major. Honours .aux.xml sidecars as GDAL does."""
import json, sys, warnings
import numpy as np
import rasterio

warnings.simplefilter("ignore")
out = []
for path in sys.argv[1:]:
    with rasterio.open(path) as src:
        masks = np.stack([src.read_masks(b) for b in range(1, src.count + 1)])
        valid = (masks != 0).all(axis=0).astype(np.uint8)
        out.append({
            "path": path,
            "nodata": [None if v is None else (v if np.isfinite(v) else repr(v)) for v in src.nodatavals],
            "scale": list(src.scales),
            "offset": list(src.offsets),
            "valid": valid.ravel().tolist(),
        })
print(json.dumps(out))
