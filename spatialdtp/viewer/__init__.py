"""The napari viewer of spatialdtp runs (install with the ``viewer`` extra).

    napari run.h5                    # the npe2 plugin reads run files (File ▸ Open too)
    spatialdtp-view run.h5           # napari with the run and the dock widgets
    spatialdtp-run viewer=live       # napari follows a simulation as it runs

Modules, from data to screen:

- :mod:`~spatialdtp.viewer.runfile`: a run file opened for viewing; metadata at once,
  frames lazily (dask arrays over the HDF5 datasets), crashed and truncated files tolerated.
- :mod:`~spatialdtp.viewer.maps`: maps derived from one frame: CAF/TAM niche labels and the
  HGF–MET protection of persisters.
- :mod:`~spatialdtp.viewer.layers`: napari layer-data tuples from a run (colormaps, fixed
  contrast limits, µm scale, time in days).
- :mod:`~spatialdtp.viewer.reader`: the npe2 reader contribution (declines foreign files).
- :mod:`~spatialdtp.viewer.palette`: the colours of cell types, niches, vessels and drugs
  (Okabe–Ito), for layers and plots alike.
- :mod:`~spatialdtp.viewer.runlabel`: which run a plot shows (file, Hydra overrides).
- :mod:`~spatialdtp.viewer.widgets`: the population and niche dock widgets (Qt).
- :mod:`~spatialdtp.viewer.export`: movies (napari-animation) and PNGs of chosen days
  and layers.
- :mod:`~spatialdtp.viewer.live`: a simulation in a worker thread, shown as it runs.
- :mod:`~spatialdtp.viewer.app`: the ``spatialdtp-view`` command.

``runfile``, ``maps``, ``layers`` and ``reader`` need only h5py, NumPy and dask (no Qt,
no napari), so they are testable without a display.
"""
