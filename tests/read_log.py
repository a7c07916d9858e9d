"""The read log of the smoke study's kernels (issue 12): every read of the scan and its segmentations.

``SITECUSTOMIZE`` goes into a folder on the kernels' PYTHONPATH with ``FOAMLIB_TEST_READ_LOG`` set;
:func:`whole_scan_reads` lists the logged reads that held the scan or a segmentation whole. Used by the
shared smoke study (``conftest.smoke_study``) and by test_study.
"""
import json

import numpy as np

#: A ``sitecustomize`` for the stages' kernels: it logs every read of a run folder's scan and
#: segmentations (LazyScan indexing, and whole-file reads through tifffile) with the foamlib function
#: that made it, and makes the streamed passes' slabs thin enough to be seen as slabs.
SITECUSTOMIZE = """
import json, os, re, sys
LOG = os.environ.get("FOAMLIB_TEST_READ_LOG")
if LOG:
    import tifffile
    from foamlib import lazy, threshold
    lazy.STATS_SLAB_BYTES = threshold._SLAB_BYTES = 4 * 64 * 64 * 4  # four slices of a 64^2 float32 scan
    WATCHED = re.compile(r"^(scan|seg(_[0-9.]+)?)[.]tif$")
    CALLERS = {"value_range", "count_outside", "scan_histogram", "count_above", "write_threshold_mask", "solid_voxels",
               "_copy_scan", "fingerprint", "_stream_segment", "grid_sample", "orthogonal_slices", "fit_grey_model"}

    def caller():
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name in CALLERS and "foamlib" in frame.f_code.co_filename:
                return frame.f_code.co_name
            frame = frame.f_back
        return None

    def log(**entry):
        entry["stage"] = os.environ.get("FOAMLIB_PROGRESS_STAGE")
        with open(LOG, "a") as handle:
            handle.write(json.dumps(entry) + "\\n")

    getitem, grid_sample, asarray = lazy.LazyScan.__getitem__, lazy.LazyScan.grid_sample, tifffile.TiffFile.asarray

    def logged_getitem(self, key):
        out = getitem(self, key)
        if WATCHED.search(self.path.name):
            key = key if isinstance(key, tuple) else (key,)
            box = [[k.start, k.stop, k.step] if isinstance(k, slice) else int(k) for k in key]
            log(kind="read", file=str(self.path), shape=list(self.shape), read=list(out.shape), key=box, by=caller())
        return out

    def logged_grid_sample(self, max_samples):
        if WATCHED.search(self.path.name):
            log(kind="grid", file=str(self.path), max_samples=int(max_samples))
        return grid_sample(self, max_samples)

    def logged_asarray(self, key=None, *args, **kwargs):
        if key is None and WATCHED.search(os.path.basename(self.filename)):
            log(kind="whole", file=self.filename, by=caller())
        return asarray(self, key, *args, **kwargs)

    lazy.LazyScan.__getitem__, lazy.LazyScan.grid_sample = logged_getitem, logged_grid_sample
    tifffile.TiffFile.asarray = logged_asarray
"""


def whole_scan_reads(log_path) -> list[str]:
    """The reads in the log that held the whole scan or a whole segmentation, outside a bounded sample."""
    from foamlib.samples import SAMPLE_VOXELS, analysis_region

    streamed = {"value_range", "count_outside", "scan_histogram", "count_above", "write_threshold_mask",
                "solid_voxels", "_copy_scan", "fingerprint"}
    bad = []
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        where = f"{entry['stage']}: {entry}"
        if entry["kind"] == "whole":
            bad.append(f"whole-file read of {where}")
        elif entry["kind"] == "grid" and entry["max_samples"] > SAMPLE_VOXELS:
            bad.append(f"a grid sample of more than SAMPLE_VOXELS in {where}")
        elif entry["kind"] == "read":
            shape, read, by = entry["shape"], entry["read"], entry["by"]
            box = [[s.start, s.stop, None] for s in analysis_region(shape)]
            if by in streamed:
                if len(read) == 3 and read[0] >= shape[0]:
                    bad.append(f"a streamed pass read all {shape[0]} slices at once in {where}")
            elif by in {"_stream_segment", "grid_sample", "orthogonal_slices", "fit_grey_model"} or entry["key"] == box:
                continue  # slabs within the memory budget; samples bounded by a constant (test_lazy, test_segment)
            elif 2 * int(np.prod(read)) > int(np.prod(shape)):
                bad.append(f"{int(np.prod(read))} of {int(np.prod(shape))} voxels at once in {where}")
    return bad
