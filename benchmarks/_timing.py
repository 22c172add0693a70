"""The benchmark scripts' timing helpers: `actionbook.timing` (one harness for the scripts and the book)."""

from actionbook.timing import devices, machine_cores, matmul_params, quartiles, step, time_interleaved, write_csv

__all__ = ["devices", "machine_cores", "matmul_params", "quartiles", "step", "time_interleaved", "write_csv"]
