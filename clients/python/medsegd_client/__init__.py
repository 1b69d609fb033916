"""Python client for medsegd: MedSegPy datasets, metadata, arrays, batches and patches over HTTP."""
from .client import REMOTE, Client, MedsegdError, TruncatedResponseError
from .dataset import RemoteDataset
from .loader import BatchLoader, PatchLoader
from .medsegpy import register_with_medsegpy
from .sampler import ShardSampler, shard_indices

__all__ = ["REMOTE", "Client", "MedsegdError", "TruncatedResponseError", "RemoteDataset", "BatchLoader", "PatchLoader",
           "ShardSampler", "shard_indices", "register_with_medsegpy"]
__version__ = "0.1.0"
