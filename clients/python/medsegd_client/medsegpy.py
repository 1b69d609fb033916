"""Registering medsegd's datasets into MedSegPy's own catalogs."""


def register_with_medsegpy(client, names=None):
    """Registers each dataset (all when `names` is None) in MedSegPy's DatasetCatalog (its dicts,
    fetched when MedSegPy asks) and MetadataCatalog (categories, collated ids, colours, ...).
    Needs MedSegPy importable; returns the names registered."""
    try:
        from medsegpy.data import DatasetCatalog, MetadataCatalog
    except ImportError as error:
        raise ImportError("register_with_medsegpy needs MedSegPy (pip install medsegpy)") from error
    names = [d["name"] for d in client.datasets()] if names is None else list(names)
    for name in names:
        DatasetCatalog.register(name, lambda name=name: client.dicts(name))
        metadata = client.metadata(name)
        MetadataCatalog.get(name).set(**metadata)
    return names
