"""Python client for medsegd: MedSegPy datasets, metadata, arrays, batches and patches over HTTP."""
from .client import REMOTE, Client, MedsegdError, TruncatedResponseError
from .dataset import RemoteDataset
from .loader import BatchLoader, PatchLoader
from .medsegpy import register_with_medsegpy
from .sampler import ShardSampler, shard_indices

__all__ = ["REMOTE", "Client", "MedsegdError", "TruncatedResponseError", "RemoteDataset", "BatchLoader", "PatchLoader",
           "ShardSampler", "shard_indices", "register_with_medsegpy"]


def _version():
    # One version for the whole project: the repository's VERSION file. An installed wheel
    # carries it in its metadata; the source tree (clients/python on sys.path, not installed)
    # has VERSION, a link to the repository's, beside the package.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medsegd-client")
    except PackageNotFoundError:
        import os

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        try:
            with open(os.path.join(here, "VERSION")) as f:
                return f.read().strip()
        except OSError:
            return "unknown"


__version__ = _version()
