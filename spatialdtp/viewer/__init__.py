"""The napari viewer of spatialdtp runs (install with the ``viewer`` extra).

    napari run.h5                    # the npe2 plugin reads run files (File ▸ Open too;
                                     # once it or spatialdtp-view was used, without asking)
    spatialdtp-view run.h5           # napari with the run and the dock widgets
    spatialdtp-run viewer=live       # napari follows a simulation as it runs

Modules, from data to screen:

- :mod:`~spatialdtp.viewer.runfile`: a run file opened for viewing; metadata at once,
  frames lazily (dask arrays over the HDF5 datasets), crashed and truncated files tolerated.
- :mod:`~spatialdtp.viewer.maps`: maps derived from one frame: CAF/TAM niche labels, the
  HGF–MET protection of persisters and the persister enrichment.
- :mod:`~spatialdtp.viewer.ranges`: contrast limits fitted to a run from a sample of its
  frames.
- :mod:`~spatialdtp.viewer.layers`: napari layer-data tuples from a run (the palette,
  layer order, fitted contrast limits, µm scale, time in days).
- :mod:`~spatialdtp.viewer.reader`: the npe2 reader contribution (declines foreign files).
- :mod:`~spatialdtp.viewer.canvas`: a run's layers set up in a viewer: derived layers
  locked, day stamp and slider in days, legend, colorbars, scale bar, opening frame, the
  plugin as the preferred reader of run files (napari).
- :mod:`~spatialdtp.viewer.palette`: the colours of cell types, niches, vessels and drugs
  (Okabe–Ito), for layers and plots alike.
- :mod:`~spatialdtp.viewer.runlabel`: which run a plot shows (file, Hydra overrides).
- :mod:`~spatialdtp.viewer.widgets`: the population and niche dock widgets (Qt).
- :mod:`~spatialdtp.viewer.colorbars`: the Colorbars dock widget, in the fields' real
  units (log layers read 10^k cells/voxel, not their logs) (Qt).
- :mod:`~spatialdtp.viewer.export`: movies (napari-animation) and PNGs of chosen days
  and layers.
- :mod:`~spatialdtp.viewer.live`: a simulation in a worker thread, shown as it runs.
- :mod:`~spatialdtp.viewer.app`: the ``spatialdtp-view`` command.

``runfile``, ``maps``, ``ranges``, ``layers`` and ``reader`` need only h5py, NumPy and dask (no Qt,
no napari), so they are testable without a display.
"""
