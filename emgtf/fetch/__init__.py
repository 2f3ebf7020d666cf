"""Fetching the published files of emg2qwerty: checkpoints, language models, the BIDS release and
the HDF5 tarball, each verified against its published digest (``python -m emgtf.download``).

- ``emgtf.fetch.catalog``: the shipped lists of published files and of the BIDS release;
- ``emgtf.fetch.digests``: sha256, MD5 and git blob ids, computed as the bytes arrive;
- ``emgtf.fetch.transfer``: one file over HTTP, resumable, verified before it takes its name;
- ``emgtf.fetch.pool``: many files at once;
- ``emgtf.fetch.rangefile``: a remote file as a seekable file object (range requests);
- ``emgtf.fetch.mirrors``: every URL redirectable to a mirror (``$EMGTF_MIRROR``);
- ``emgtf.fetch.progress``: live bars on a terminal, plain lines otherwise;
- ``emgtf.fetch.published``: checkpoints and LMs by name (``meta/generic``) in the cache;
- ``emgtf.fetch.bids``: the sessions of users or split files from the BIDS release;
- ``emgtf.fetch.dataset``: the HDF5 tarball, extracted while it downloads.
"""
