"""pytest configuration for the tests and the package's doctests."""

import torch

# one torch thread per test process: `make test` runs two pytest workers on two cores, and two
# threads each oversubscribe them (measured: a small forward pass 27x slower with 2 threads than
# with 1 on a loaded 2-core machine)
torch.set_num_threads(1)
