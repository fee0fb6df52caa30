"""Shared by every test module: the test process's CPU devices and its compilation cache.

`ppo.main` called in a test gives JAX one CPU device per core when it is the first to start JAX
(parallel.cpu_device_count), and every later test would run on those. Fixing the count here keeps
the process as it starts (one device, unless $XLA_FLAGS says otherwise); tests of several devices
start processes of their own.

Many tests compile the same programs (the env's step and reset, a tiny train chunk): the persistent
cache that `ppo.py` uses (driver.compile_cache_dir) lets each compile once per machine, which halves
the suite's time on a 2-core CPU.
"""

import jax

import driver
import parallel

if jax.config.jax_num_cpu_devices < 0:
    jax.config.update("jax_num_cpu_devices", parallel.flag_device_count() or 1)
driver.use_compile_cache(driver.compile_cache_dir())
