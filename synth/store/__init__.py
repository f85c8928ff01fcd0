"""relaxomap.synth.store — the HDF5 training store: its format and checks (:mod:`.format`), its part files
(:mod:`.parts`), writing them in workers and shards (:mod:`.writer`), joining them (:mod:`.merge`), a torch
Dataset over a store (:mod:`.dataset`) and a look inside one (:mod:`.summary`).

Import from the modules; this package imports nothing (torch and h5py load only with the module that needs
them)."""
