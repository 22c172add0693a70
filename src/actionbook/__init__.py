"""actionbook: an executable reproduction book for recurrent and residual action recognition.

The package holds everything the book's notebooks run; the notebooks only import it and
show it. See the book's introduction for the map of modules.
"""

__version__ = "0.1.0"

MODES = ("ci", "full")
"""The two ways every training notebook runs: `ci` (the generated benchmark at toy size,
CPU, minutes) and `full` (the paper's dataset, backbone and hyper-parameters, on a GPU)."""
