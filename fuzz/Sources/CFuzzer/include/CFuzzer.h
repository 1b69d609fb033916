#ifndef MEDSEGD_CFUZZER_H
#define MEDSEGD_CFUZZER_H
#include <stddef.h>
#include <stdint.h>
// libFuzzer's entry for programs that have their own main (compiler-rt has no header for it).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
#endif
