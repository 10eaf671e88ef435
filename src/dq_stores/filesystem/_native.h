/* Shared by _native.c (the module: the file read, errors) and _native_record.c
 * (the record: hash check, header split, the document). See _native.c. */
#ifndef DQ_NATIVE_H
#define DQ_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/stat.h>

#define ABI 4 /* must equal dq_stores.filesystem._accel.ABI */
#define HASH_LEN 64

#ifdef __APPLE__
#define CTIME_NS(st) ((long long)(st)->st_ctimespec.tv_sec * 1000000000LL + (st)->st_ctimespec.tv_nsec)
#else
#define CTIME_NS(st) ((long long)(st)->st_ctim.tv_sec * 1000000000LL + (st)->st_ctim.tv_nsec)
#endif

/* read_head's result for the record buf[0:len] of <path[0:base_len]>.head, or
 * Py_None (no error set): leave the record to the Python decoder; NULL: error. */
PyObject *dq_parse_head(const char *buf, Py_ssize_t len, PyObject *const *args,
                        const struct stat *st, const char *path, size_t base_len,
                        double fresh_min, double fresh_max, Py_ssize_t max_linked);
/* _native.configure */
PyObject *dq_configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* Whether configure has run. */
int dq_configured(void);
/* Module exec: hashlib.sha256 and interned names; -1 with an error set. */
int dq_record_init(void);

#endif
