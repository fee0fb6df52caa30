"""Shared by every test module: the test process keeps the CPU devices its environment gives.

`ppo.main` called in a test gives JAX one CPU device per core when it is the first to start JAX
(parallel.cpu_device_count), and every later test would run on those. Fixing the count here keeps
the process as it starts (one device, unless $XLA_FLAGS says otherwise); tests of several devices
start processes of their own.
"""

import jax

import parallel

if jax.config.jax_num_cpu_devices < 0:
    jax.config.update("jax_num_cpu_devices", parallel.flag_device_count() or 1)
