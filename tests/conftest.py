"""Shared test settings: warnings are errors (pyproject), hypothesis profile for CI."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# One CPU device unless a test's own subprocess asks for more: `lrjax sweep`'s main() would otherwise
# give a fresh worker one device per core (lrjax.sweep.use_cpu_cores), and the tests after it in that
# worker would run data-parallel.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "") and not os.environ.get(
        "JAX_NUM_CPU_DEVICES"):
    import jax

    jax.config.update("jax_num_cpu_devices", 1)
