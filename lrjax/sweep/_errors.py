"""The sweep's error type (a leaf module: the spec, the strategies and the driver all raise it)."""

from lrjax.engine import ConfigError

__all__ = ["SweepError"]


class SweepError(ConfigError):
    """A sweep file is malformed; the message names the key (and the configuration's label)."""
