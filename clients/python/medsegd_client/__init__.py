"""Python client for medsegd: MedSegPy datasets, metadata, arrays, batches and patches over HTTP."""
from .client import REMOTE, Client, MedsegdError
from .dataset import RemoteDataset
from .loader import BatchLoader, PatchLoader
from .medsegpy import register_with_medsegpy

__all__ = ["REMOTE", "Client", "MedsegdError", "RemoteDataset", "BatchLoader", "PatchLoader", "register_with_medsegpy"]
__version__ = "0.1.0"
