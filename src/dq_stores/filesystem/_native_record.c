/* dq_stores.filesystem._native, the record half: the sha256 check, the header
 * split and the identity checks, the document built from its slots, the head's
 * memo state. Contract (exactly Python's answer, or "ask Python"): _native.c. */
#include "_native.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_DIGITS 18
#define DOC_FIELDS 9 /* scope kind key revision body sha256 index written_at deleted */
#define INDEX_FIELDS 2 /* fields sort_key */

static PyObject *sha256_new;   /* hashlib.sha256 */
static PyObject *str_digest;   /* "digest" */
static PyObject *str_tenant, *str_environment, *str_timestamp;
static PyObject *fromiso;      /* datetime.fromisoformat */
static PyTypeObject *doc_type, *index_type;
static PyObject *doc_slots[DOC_FIELDS], *index_slots[INDEX_FIELDS];

typedef struct {
    const char *p;
    Py_ssize_t n;
} part_t;

/* A non-negative number of 1..MAX_DIGITS ASCII digits, or -1. */
static long long
digits(const char *p, Py_ssize_t n)
{
    long long v = 0;
    if (n < 1 || n > MAX_DIGITS)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Whether part p holds exactly the UTF-8 of str s (0 also for a lone surrogate). */
static int
same_text(part_t p, PyObject *s)
{
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) {
        PyErr_Clear();
        return 0;
    }
    return n == p.n && memcmp(u, p.p, (size_t)n) == 0;
}

/* A str of part p, or NULL with no error set (invalid UTF-8) -- or with one (memory). */
static PyObject *
text(part_t p)
{
    PyObject *s = PyUnicode_DecodeUTF8(p.p, p.n, "strict");
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        PyErr_Clear();
    return s;
}

/* Whether part p is valid UTF-8: 1, 0, or -1 with an error set. */
static int
valid_text(part_t p)
{
    for (Py_ssize_t i = 0; i < p.n; i++) {
        if ((unsigned char)p.p[i] >= 0x80) {
            PyObject *s = text(p);
            if (s == NULL)
                return PyErr_Occurred() ? -1 : 0;
            Py_DECREF(s);
            return 1;
        }
    }
    return 1;
}

/* An instance of t with its n slots set (the values' references are borrowed). */
static PyObject *
make(PyTypeObject *t, PyObject **slots, PyObject **values, int n)
{
    PyObject *obj = t->tp_alloc(t, 0);
    if (obj == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        if (Py_TYPE(slots[i])->tp_descr_set(slots[i], obj, values[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

/* The record's sha256 matches its first 64 bytes (lowercase hex, like hexdigest()):
 * 1, 0, or -1 with an error set. */
static int
hash_ok(const char *buf, Py_ssize_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (len < HASH_LEN + 1 || buf[HASH_LEN] != ' ')
        return 0;
    PyObject *view = PyMemoryView_FromMemory((char *)buf + HASH_LEN + 1, len - HASH_LEN - 1,
                                             PyBUF_READ);
    if (view == NULL)
        return -1;
    PyObject *h = PyObject_CallOneArg(sha256_new, view);
    Py_DECREF(view);
    if (h == NULL)
        return -1;
    PyObject *d = PyObject_CallMethodNoArgs(h, str_digest);
    Py_DECREF(h);
    if (d == NULL)
        return -1;
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(d);
    int ok = PyBytes_GET_SIZE(d) == HASH_LEN / 2;
    for (int i = 0; ok && i < HASH_LEN / 2; i++)
        ok = buf[2 * i] == hex[raw[i] >> 4] && buf[2 * i + 1] == hex[raw[i] & 15];
    Py_DECREF(d);
    return ok;
}

/* {name: (values...)} from the index parts, or NULL (no error set: malformed). */
static PyObject *
index_fields(part_t *parts, Py_ssize_t i, Py_ssize_t n)
{
    PyObject *fields = PyDict_New();
    if (fields == NULL)
        return NULL;
    while (i < n) {
        if (i + 1 >= n)
            goto malformed;
        long long count = digits(parts[i + 1].p, parts[i + 1].n);
        if (count < 0 || count > n - i - 2)
            goto malformed;
        PyObject *name = text(parts[i]);
        if (name == NULL)
            goto fail;
        PyObject *values = PyTuple_New((Py_ssize_t)count);
        if (values == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        for (Py_ssize_t j = 0; j < count; j++) {
            PyObject *v = text(parts[i + 2 + j]);
            if (v == NULL) {
                Py_DECREF(name);
                Py_DECREF(values);
                goto fail;
            }
            PyTuple_SET_ITEM(values, j, v);
        }
        int rc = PyDict_SetItem(fields, name, values);
        Py_DECREF(name);
        Py_DECREF(values);
        if (rc < 0)
            goto fail;
        i += 2 + (Py_ssize_t)count;
    }
    return fields;
malformed:
fail:
    Py_DECREF(fields);
    return NULL;
}

/* The 4-item result, Py_None (no error set) to leave the record to Python, or NULL. */
PyObject *
dq_parse_head(const char *buf, Py_ssize_t len, PyObject *const *args, const struct stat *st,
      const char *path, size_t base_len, double fresh_min, double fresh_max,
      Py_ssize_t max_linked)
{
    PyObject *scope = args[1], *kind = args[2], *key = args[3], *linked = args[4];
    int ok = hash_ok(buf, len);
    if (ok <= 0)
        return ok < 0 ? NULL : Py_NewRef(Py_None);
    const char *nl = memchr(buf + HASH_LEN, '\n', (size_t)((len < 80 ? len : 80) - HASH_LEN));
    if (nl == NULL)
        Py_RETURN_NONE;
    long long hlen = digits(buf + HASH_LEN + 1, nl - buf - HASH_LEN - 1);
    Py_ssize_t head = nl - buf + 1;
    if (hlen < 0 || hlen > len - head)
        Py_RETURN_NONE;
    Py_ssize_t start = head + (Py_ssize_t)hlen;

    Py_ssize_t n = 1;
    for (const char *p = buf + head; (p = memchr(p, 0, (size_t)(buf + start - p))) != NULL; p++)
        n++;
    part_t local[48];
    part_t *parts = n <= 48 ? local : PyMem_Malloc(sizeof(part_t) * (size_t)n);
    if (parts == NULL)
        return PyErr_NoMemory();
    const char *p = buf + head;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *z = i + 1 < n ? memchr(p, 0, (size_t)(buf + start - p)) : buf + start;
        parts[i].p = p;
        parts[i].n = z - p;
        p = z + 1;
    }

    PyObject *result = Py_None, *sha = NULL, *sort_key = NULL, *when = NULL, *fields = NULL;
    PyObject *tenant = NULL, *env = NULL, *index = NULL, *body = NULL, *doc = NULL;
    Py_INCREF(result);
    int v2 = parts[0].n == 2 && parts[0].p[0] == '#' && parts[0].p[1] == '2';
    Py_ssize_t f = v2 ? 3 : 0; /* kind, key, revision, size, sha, sort key, time, deleted */
    if (n < (v2 ? 12 : 8))
        goto done;
    if (v2) {
        if ((tenant = PyObject_GetAttr(scope, str_tenant)) == NULL
            || (env = PyObject_GetAttr(scope, str_environment)) == NULL)
            goto done;
        if (!PyUnicode_Check(tenant) || !PyUnicode_Check(env) || !same_text(parts[1], tenant)
            || !same_text(parts[2], env) || valid_text(parts[11]) != 1)
            goto done;
    }
    if (!same_text(parts[f], kind) || !same_text(parts[f + 1], key))
        goto done;
    long long revision = digits(parts[f + 2].p, parts[f + 2].n);
    long long size = digits(parts[f + 3].p, parts[f + 3].n);
    part_t del = parts[f + 7];
    if (revision < 0 || size < 0 || size != len - start || del.n != 1
        || (del.p[0] != '0' && del.p[0] != '1'))
        goto done;
    if ((sha = text(parts[f + 4])) == NULL || (sort_key = text(parts[f + 5])) == NULL
        || (when = text(parts[f + 6])) == NULL)
        goto done;
    if ((fields = index_fields(parts, v2 ? 12 : 8, n)) == NULL)
        goto done;
    PyObject *written = PyObject_CallOneArg(fromiso, when);
    if (written == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_IndexError))
            PyErr_Clear(); /* malformed: Python says so */
        goto done;
    }
    Py_SETREF(when, written);

    PyObject *index_values[INDEX_FIELDS] = {fields, sort_key};
    if ((index = make(index_type, index_slots, index_values, INDEX_FIELDS)) == NULL)
        goto done;
    PyObject *rev = PyLong_FromLongLong(revision);
    if (rev == NULL)
        goto done;
    body = PyBytes_FromStringAndSize(buf + start, len - start);
    if (body == NULL) {
        Py_DECREF(rev);
        goto done;
    }
    PyObject *doc_values[DOC_FIELDS] = {
        scope, kind, key, rev, body, sha, index, when, del.p[0] == '1' ? Py_True : Py_False};
    doc = make(doc_type, doc_slots, doc_values, DOC_FIELDS);
    Py_DECREF(rev);
    if (doc == NULL)
        goto done;

    PyObject *digest = PyBytes_FromStringAndSize(buf, HASH_LEN);
    PyObject *inode = digest == NULL ? NULL : Py_BuildValue(
        "(KKNL)", (unsigned long long)st->st_ino, (unsigned long long)st->st_dev, digest,
        CTIME_NS(st));
    if (inode == NULL)
        goto done;
    /* a sealed head is never taken from the memo: with 1 s timestamps (ext3, ext4
     * with 128-byte inodes, NFS) a rollback within the second restores its key */
    int known = (st->st_mode & S_IWUSR) ? PySet_Contains(linked, inode) : 0;
    int state = 0;
    if (known < 0) {
        Py_DECREF(inode);
        goto done;
    }
    if (!known) {
        /* fresh: the head's inode changed within [fresh_min, fresh_max] s of the
         * record's write (`st_ctime_ns / 1e9 - written_at.timestamp()` in Python) */
        PyObject *stamp = PyObject_CallMethodNoArgs(when, str_timestamp);
        double ts = stamp == NULL ? -1.0 : PyFloat_AsDouble(stamp);
        Py_XDECREF(stamp);
        double age = (double)CTIME_NS(st) / 1e9 - ts;
        if (ts == -1.0 && PyErr_Occurred()) {
            /* a naive time that local time cannot place (year 1): not fresh,
             * as _get's _age says */
            if (!PyErr_ExceptionMatches(PyExc_ValueError)
                && !PyErr_ExceptionMatches(PyExc_OverflowError)
                && !PyErr_ExceptionMatches(PyExc_OSError)) {
                Py_DECREF(inode);
                goto done;
            }
            PyErr_Clear();
            age = Py_HUGE_VAL;
        }
        /* sealed (no owner-write bit: ADR 0002, "Seals"), not exactly two names (the
         * head and its own revision file), not fresh, or not <base>.r<N>'s inode */
        state = 3;
        if ((st->st_mode & S_IWUSR) && st->st_nlink == 2 && fresh_min <= age
            && age <= fresh_max) {
            /* its other name must be its revision file (`cp r<k> head` in place, the
             * newer files removed, plus a link elsewhere also has two names). No probe
             * for <base>.r<N+1> here: a rollback by link puts back a sealed inode (the
             * mode above), one by copy is not r<N>'s inode, and a next file beside a
             * fresh head that is its own revision's is a writer in flight (ADR 0016) */
            char own[PATH_MAX];
            memcpy(own, path, base_len);
            snprintf(own + base_len, 24, ".r%lld", revision);
            struct stat rst;
            int linked_ok;
            Py_BEGIN_ALLOW_THREADS
            linked_ok = stat(own, &rst) == 0 && rst.st_ino == st->st_ino
                        && rst.st_dev == st->st_dev;
            Py_END_ALLOW_THREADS
            if (linked_ok)
                state = 1;
        }
        if (state == 1) { /* _remember_linked */
            if (PySet_GET_SIZE(linked) >= max_linked && PySet_Clear(linked) < 0) {
                Py_DECREF(inode);
                goto done;
            }
            if (PySet_Add(linked, inode) < 0) {
                Py_DECREF(inode);
                goto done;
            }
        }
    }
    Py_DECREF(result);
    result = Py_BuildValue("(ONkki)", doc, inode, (unsigned long)st->st_mode,
                           (unsigned long)st->st_nlink, state);
done:
    if (parts != local)
        PyMem_Free(parts);
    Py_XDECREF(sha);
    Py_XDECREF(sort_key);
    Py_XDECREF(when);
    Py_XDECREF(fields);
    Py_XDECREF(tenant);
    Py_XDECREF(env);
    Py_XDECREF(index);
    Py_XDECREF(body);
    Py_XDECREF(doc);
    if (PyErr_Occurred()) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* The member descriptors of cls for the n names, or -1 with an error set. */
static int
slots_of(PyObject *cls, PyObject *names, PyObject **slots, Py_ssize_t n)
{
    if (!PyType_Check(cls) || !PyTuple_Check(names) || PyTuple_GET_SIZE(names) != n
        || ((PyTypeObject *)cls)->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "configure: a plain class and a tuple of its fields");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyObject_GetAttr(cls, PyTuple_GET_ITEM(names, i));
        if (d == NULL)
            return -1;
        if (!Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            Py_DECREF(d);
            PyErr_SetString(PyExc_TypeError, "configure: every field must be a slot");
            return -1;
        }
        Py_XSETREF(slots[i], d);
    }
    return 0;
}

PyObject *
dq_configure(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "configure(doc_cls, fields, index_cls, fields, fromiso)");
        return NULL;
    }
    if (slots_of(args[0], args[1], doc_slots, DOC_FIELDS) < 0
        || slots_of(args[2], args[3], index_slots, INDEX_FIELDS) < 0)
        return NULL;
    Py_XSETREF(doc_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(index_type, (PyTypeObject *)Py_NewRef(args[2]));
    Py_XSETREF(fromiso, Py_NewRef(args[4]));
    Py_RETURN_NONE;
}

int
dq_configured(void)
{
    return doc_type != NULL;
}

int
dq_record_init(void)
{
    PyObject *hashlib = PyImport_ImportModule("hashlib");
    if (hashlib == NULL)
        return -1;
    sha256_new = PyObject_GetAttrString(hashlib, "sha256");
    Py_DECREF(hashlib);
    if (sha256_new == NULL)
        return -1;
    str_digest = PyUnicode_InternFromString("digest");
    str_tenant = PyUnicode_InternFromString("tenant");
    str_environment = PyUnicode_InternFromString("environment");
    str_timestamp = PyUnicode_InternFromString("timestamp");
    if (str_digest == NULL || str_tenant == NULL || str_environment == NULL
        || str_timestamp == NULL)
        return -1;
    return 0;
}
