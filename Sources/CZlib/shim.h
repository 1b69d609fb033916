#ifndef MEDSEGD_CZLIB_SHIM_H
#define MEDSEGD_CZLIB_SHIM_H
#include <zlib.h>
#endif
