/* dq_stores.filesystem._native: the first read of a head record, in C.
 *
 * One call does what FilesystemBackend._get spent most of a cold read on in
 * Python: open + fstat + read + close of <base>.head, the record's sha256 check
 * (through hashlib, i.e. OpenSSL: no hand-written SHA-256 here), the split of the
 * NUL-separated header, the identity and body-length checks, the inode key of the
 * head-link memo and, for a head not in that memo, whether it is <base>.r<N>'s inode.
 *
 * It only ever says "yes, exactly this" or "ask Python": anything unusual in the
 * bytes (a failed hash, a malformed or foreign header, a truncated body, a number
 * that is not plain ASCII digits, invalid UTF-8) returns the raw bytes and stat
 * fields instead, and the caller runs the pure-Python decoder on them, which
 * raises the precise IntegrityError. So the verdict cannot differ from the Python
 * path; see docs/adr/0016-native-head-reads.md and _records.py for the format.
 *
 * configure(StoredDocument, fields, IndexEntry, fields, datetime.fromisoformat) is
 * called once by _accel.py (which checks that both classes are plain dataclasses
 * with exactly these fields); documents are then built here, field by field
 * through the classes' slot descriptors -- what their generated __init__ does.
 *
 * read_head(base, scope, kind, key, linked, fresh_min, fresh_max, max_linked)
 * returns either
 *   (document, inode, st_mode, st_nlink, state)            -- 5 items: a verified
 *                                                             head, or
 *   (data, st_ino, st_dev, st_ctime_ns, st_mode, st_nlink)  -- 6 items: decode in
 *                                                             Python.
 * inode is (st_ino, st_dev, record hash bytes, st_ctime_ns). state: 0 the head is
 * writable by its owner and inode is in the set `linked` (checked before); 1 the
 * head is writable by its owner (not sealed), fresh (its inode changed within
 * [fresh_min, fresh_max] s of the record's write), has exactly two names (st_nlink
 * 2: the head and its revision file) and is the inode of <base>.r<revision> (one
 * stat) -- inode was added to `linked` (cleared first at max_linked items); 3
 * sealed, not two names, not fresh or not r<revision>'s inode: Python checks it
 * (with its probe for <base>.r<revision+1>). (2 is no longer returned, ABI 4.)
 * OSError (ENOENT: FileNotFoundError) carries the head's path.
 *
 * ABI (_native.h) must equal _accel.ABI: bump both when the call or its result
 * changes. This file: the module and the file read; _native_record.c: the rest.
 */
#include "_native.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_READ (1 << 16)

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

static PyObject *
read_head(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[2])
        || !PyUnicode_Check(args[3]) || !PySet_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "read_head(base: str, scope: Scope, kind: str, key: str, linked: set, "
                        "fresh_min: float, fresh_max: float, max_linked: int)");
        return NULL;
    }
    double fresh_min = PyFloat_AsDouble(args[5]), fresh_max = PyFloat_AsDouble(args[6]);
    Py_ssize_t max_linked = PyLong_AsSsize_t(args[7]);
    if (PyErr_Occurred())
        return NULL;
    if (!dq_configured()) {
        PyErr_SetString(PyExc_RuntimeError, "read_head before configure");
        return NULL;
    }
    PyObject *encoded = PyUnicode_EncodeFSDefault(args[0]);
    if (encoded == NULL)
        return NULL;
    size_t base_len = (size_t)PyBytes_GET_SIZE(encoded);
    char path[PATH_MAX];
    if (strlen(PyBytes_AS_STRING(encoded)) != base_len) {
        Py_DECREF(encoded);
        PyErr_SetString(PyExc_ValueError, "embedded null byte");
        return NULL;
    }
    if (base_len + 24 > sizeof path) {
        Py_DECREF(encoded);
        errno = ENAMETOOLONG;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, args[0]);
    }
    memcpy(path, PyBytes_AS_STRING(encoded), base_len);
    memcpy(path + base_len, ".head", 6);
    Py_DECREF(encoded);

    struct stat st;
    char *buf = NULL;
    Py_ssize_t len = 0;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    /* O_NONBLOCK: a FIFO planted as the head must not wait for a writer; anything
     * but a regular file is then not read (empty: Python calls it damaged). */
    /* EINTR (a signal while open waits, e.g. on NFS): again, as Python's os.open does
     * (PEP 475); Python's own handler runs once this call returns. */
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        err = errno;
    } else if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
    } else {
        /* one read of a regular file sized by its fstat (one byte more: a short read is
         * its end, so no second read for EOF); a file that grew meanwhile reads on */
        size_t cap = FIRST_READ;
        if (S_ISREG(st.st_mode) && st.st_size >= 0 && (size_t)st.st_size < cap)
            cap = (size_t)st.st_size + 1;
        buf = malloc(cap);
        while (buf != NULL && S_ISREG(st.st_mode)) {
            if ((size_t)len == cap) {
                char *more = realloc(buf, cap * 2);
                if (more == NULL) {
                    free(buf);
                    buf = NULL;
                    break;
                }
                buf = more;
                cap *= 2;
            }
            size_t want = cap - (size_t)len;
            ssize_t got = read(fd, buf + len, want);
            if (got > 0) {
                len += got;
                if ((size_t)got < want && len == st.st_size)
                    break; /* all fstat said, and short: its end (no read for EOF) */
            } else if (got == 0) {
                break;
            } else if (errno != EINTR) {
                err = errno;
                break;
            }
        }
        if (buf == NULL)
            err = ENOMEM;
        close(fd);
    }
    Py_END_ALLOW_THREADS
    if (err != 0) {
        free(buf);
        if (err == ENOMEM)
            return PyErr_NoMemory();
        errno = err;
        PyObject *name = PyUnicode_DecodeFSDefault(path);
        if (name == NULL)
            return NULL;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
        Py_DECREF(name);
        return NULL;
    }
    PyObject *result = dq_parse_head(buf, len, args, &st, path, base_len, fresh_min, fresh_max, max_linked);
    if (result == Py_None) {
        Py_DECREF(result);
        result = Py_BuildValue(
            "(y#KKLkk)", buf, len, (unsigned long long)st.st_ino, (unsigned long long)st.st_dev,
            CTIME_NS(&st), (unsigned long)st.st_mode, (unsigned long)st.st_nlink);
    }
    free(buf);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))dq_configure, METH_FASTCALL,
     "configure(StoredDocument, fields, IndexEntry, fields, fromisoformat): see the source."},
    {"read_head", (PyCFunction)(void (*)(void))read_head, METH_FASTCALL,
     "read_head(base, scope, kind, key, linked) -> tuple: see the module source."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    if (dq_record_init() < 0)
        return -1;
    return PyModule_AddIntConstant(module, "ABI", ABI);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "dq_stores.filesystem._native",
    "The first read of a filesystem head record in C (see _accel.py).",
    0,
    methods,
    slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&module_def);
}
