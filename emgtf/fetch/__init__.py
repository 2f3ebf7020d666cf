"""Fetching the published files of emg2qwerty: checkpoints, language models, the BIDS release and
the HDF5 tarball, each verified against its published digest (``python -m emgtf.download``).

- :mod:`emgtf.fetch.catalog`: the shipped lists of published files and of the BIDS release;
- :mod:`emgtf.fetch.digests`: sha256, MD5 and git blob ids, computed as the bytes arrive;
- :mod:`emgtf.fetch.transfer`: one file over HTTP, resumable, verified before it takes its name;
- :mod:`emgtf.fetch.pool`: many files at once;
- :mod:`emgtf.fetch.rangefile`: a remote file as a seekable file object (range requests);
- :mod:`emgtf.fetch.mirrors`: every URL redirectable to a mirror (``$EMGTF_MIRROR``);
- :mod:`emgtf.fetch.progress`: live bars on a terminal, plain lines otherwise;
- :mod:`emgtf.fetch.published`: checkpoints and LMs by name (``meta/generic``) in the cache;
- :mod:`emgtf.fetch.bids`: the sessions of users or split files from the BIDS release;
- :mod:`emgtf.fetch.dataset`: the HDF5 tarball, extracted while it downloads.
"""
