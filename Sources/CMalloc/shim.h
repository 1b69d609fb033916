#ifndef MEDSEGD_CMALLOC_SHIM_H
#define MEDSEGD_CMALLOC_SHIM_H
// glibc's allocator controls (<malloc.h> is not part of Swift's Glibc module): tuning at start,
// heap statistics for /metrics, and giving free pages back to the system.
#include <malloc.h>
#endif
