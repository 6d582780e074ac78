"""The array core: counter-based random numbers, compiled tables, population arrays, kernels."""
