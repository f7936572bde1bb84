"""spatialdtp: spatial reaction–diffusion simulation of drug-tolerant persister cancer cells."""
try:
    from importlib.metadata import version as _version

    __version__ = _version("spatialdtp")
except Exception:  # running from a source tree that was never installed
    __version__ = "0.1.0"
