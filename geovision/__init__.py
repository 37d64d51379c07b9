"""geovision: georeferenced imagery and vector labels to georeferenced predictions."""

import os

# torch's OpenMP threads that wait for work sleep instead of spinning. geovision runs reading
# and writing threads (and, on a shared machine, other processes) beside the model; spinning
# threads then hold the cores at every barrier and slow training and inference on a CPU
# several-fold. Effective only before torch is first imported, hence here; an explicit
# OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
