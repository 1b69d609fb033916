#ifndef MEDSEGD_CHDF5_SHIM_H
#define MEDSEGD_CHDF5_SHIM_H

#include <hdf5.h>
#include <string.h>

// HDF5's type and property-list "constants" are macros that expand to
// `(H5open(), H5T_NATIVE_FLOAT_g)`: they do not import into Swift, and the `_g`
// globals are shared mutable state to Swift 6. These functions hand them over.

static inline hid_t medseg_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t medseg_h5s_all(void) { return H5S_ALL; }
static inline hid_t medseg_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t medseg_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t medseg_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t medseg_h5p_link_create(void) { return H5P_LINK_CREATE; }
static inline unsigned medseg_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned medseg_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline haddr_t medseg_haddr_undef(void) { return HADDR_UNDEF; }

static inline hid_t medseg_h5t_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t medseg_h5t_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t medseg_h5t_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t medseg_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t medseg_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t medseg_h5t_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t medseg_h5t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t medseg_h5t_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t medseg_h5t_std_u64le(void) { return H5T_STD_U64LE; }
static inline hid_t medseg_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t medseg_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t medseg_h5t_c_s1(void) { return H5T_C_S1; }

// Automatic error printing is a per-thread setting in the thread-safe build:
// every thread that calls HDF5 must switch it off once.
// Also, once per process: no filter plugins are loaded from HDF5_PLUGIN_PATH. A file's filter id
// must never make the server load a shared library.
static inline void medseg_silence_errors(void) {
    static __thread int silenced = 0;
    static int plugins_off = 0;
    if (!silenced) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        silenced = 1;
    }
    if (!plugins_off) {
        H5PLset_loading_state(0);
        plugins_off = 1;
    }
}

static herr_t medseg_error_walker(unsigned n, const H5E_error2_t *err, void *data) {
    // Walking upward, entry 0 is the innermost (most specific) error.
    if (n == 0 && err->desc != NULL) {
        char *buffer = (char *)((void **)data)[0];
        size_t size = *(size_t *)((void **)data)[1];
        strncpy(buffer, err->desc, size - 1);
        buffer[size - 1] = '\0';
    }
    return 0;
}

// Copies the innermost message of this thread's HDF5 error stack into `buffer`
// and clears the stack (a stale stack can make library shutdown loop).
static inline void medseg_take_error_message(char *buffer, size_t size) {
    if (size == 0) return;
    buffer[0] = '\0';
    void *data[2] = { buffer, &size };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, medseg_error_walker, data);
    H5Eclear2(H5E_DEFAULT);
}

#endif
