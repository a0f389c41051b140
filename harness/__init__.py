"""The NAS benchmark evaluation harness: runs, sweeps, the Hessian and results I/O."""
