"""Request options as medsegd takes them: regions in slice syntax, dtype names, categories as JSON."""


def _region(region):
    """`region=` in Python slice syntax, from a string or a tuple of slices and ints."""
    if region is None or isinstance(region, str):
        return region
    if not isinstance(region, tuple):
        region = (region,)
    parts = []
    for component in region:
        if isinstance(component, slice):
            text = "%s:%s" % ("" if component.start is None else component.start, "" if component.stop is None else component.stop)
            if component.step is not None:
                text += ":%d" % component.step
            parts.append(text)
        elif isinstance(component, int):
            parts.append(str(component))
        else:
            raise TypeError("region components are slices or ints, not %r" % (component,))
    return ",".join(parts)


def _dtype(dtype):
    """A NumPy dtype, type or name as medsegd's name for it (`float32`, `uint8`, `bool`)."""
    if dtype is None:
        return None
    import numpy as np
    return np.dtype(dtype).name


def _categories(categories):
    """MedSegPy's index, e.g. [0, (1, 2), 3], as the JSON medsegd takes."""
    if categories is None:
        return None
    if isinstance(categories, int):
        return categories
    return [list(c) if isinstance(c, (tuple, list)) else int(c) for c in categories]
