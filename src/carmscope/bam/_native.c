/* The compiled kernels of carmscope (carmscope.bam._native): the one BGZF/BAM record decoder
 * of the package, used by the CAR scan and the ctDNA allele counting.
 *
 * Built at install time by setup.py (setuptools Extension); the Python modules
 * carmscope.car.kmers, .text, .bam and .evidence and carmscope.ctdna.bamscan wrap these
 * functions and document them.
 *
 *   fill, contains            the k-mer hash lookup (filter byte + open addressing)
 *   ascii_hits, ascii_hit_codes, flag_lines, scan_fastq_chunk
 *                             k-mer lookups in ASCII sequences and FASTQ text
 *   scan_records              the record walk over an inflated BAM buffer
 *   BamWalker                 reads, inflates (libdeflate) and walks a range of a BAM file;
 *                             with threads > 1 a pool of POSIX threads inflates the next
 *                             blocks while the caller walks the records of the previous ones
 *   parse_record              the fields of one raw BAM record
 *   place                     the per-read placement of carmscope.car.evidence.place_read
 *   count_observations, tally_fragments
 *                             allele observations at variant sites from inflated BAM records,
 *                             and their one-count-per-fragment tally (carmscope.ctdna.bamscan)
 *
 * Every kernel releases the GIL while it works, so threads scale.
 *
 * libdeflate is not linked at build time (its headers are not assumed): its public functions
 * are looked up at import time in the shared object of the pinned `deflate` package, which
 * exports them, or else in a system libdeflate.so.0 (Debian package libdeflate0).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- libdeflate, resolved at run time ------------------------------------------------------ */

typedef void *(*alloc_decompressor_fn)(void);
typedef void (*free_decompressor_fn)(void *);
typedef int (*deflate_decompress_fn)(void *, const void *, size_t, void *, size_t, size_t *);

static alloc_decompressor_fn ld_alloc = NULL;
static free_decompressor_fn ld_free = NULL;
static deflate_decompress_fn ld_decompress = NULL;
static PyObject *ld_source = NULL; /* where libdeflate was found (str) */

static int resolve_libdeflate_in(void *handle) {
    if (handle == NULL) return 0;
    ld_alloc = (alloc_decompressor_fn)dlsym(handle, "libdeflate_alloc_decompressor");
    ld_free = (free_decompressor_fn)dlsym(handle, "libdeflate_free_decompressor");
    ld_decompress = (deflate_decompress_fn)dlsym(handle, "libdeflate_deflate_decompress");
    return ld_alloc != NULL && ld_free != NULL && ld_decompress != NULL;
}

static void resolve_libdeflate(void) {
    PyObject *module = PyImport_ImportModule("deflate._deflate");
    if (module != NULL) {
        PyObject *file = PyObject_GetAttrString(module, "__file__");
        if (file != NULL && PyUnicode_Check(file)) {
            const char *path = PyUnicode_AsUTF8(file);
            void *handle = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
            if (handle == NULL && path != NULL) handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (resolve_libdeflate_in(handle)) {
                ld_source = file;
                Py_DECREF(module);
                return;
            }
        }
        Py_XDECREF(file);
        Py_DECREF(module);
    }
    PyErr_Clear();
    if (resolve_libdeflate_in(dlopen("libdeflate.so.0", RTLD_NOW | RTLD_LOCAL))) {
        ld_source = PyUnicode_FromString("libdeflate.so.0");
        return;
    }
    ld_alloc = NULL;
    ld_free = NULL;
    ld_decompress = NULL;
}

/* --- k-mer lookup -------------------------------------------------------------------------- */

#define EMPTY UINT64_C(0xFFFFFFFFFFFFFFFF)
#define HASH_MULTIPLIER UINT64_C(0x9E3779B97F4A7C15)
#define INVALID 4

static uint8_t ASCII_CODE[256];
static uint64_t NIBBLE_PAIR_CODE[256];
static char BASE_PAIRS[256][2];
static uint8_t COMPLEMENT[256];
static const char NIBBLES[] = "=ACMGRSVTWYHKDBN";

static void init_tables(void) {
    int nibble_code[16];
    for (int i = 0; i < 256; i++) {
        ASCII_CODE[i] = INVALID;
        COMPLEMENT[i] = (uint8_t)i;
    }
    const char *bases = "ACGT";
    for (int code = 0; code < 4; code++) {
        ASCII_CODE[(unsigned char)bases[code]] = (uint8_t)code;
        ASCII_CODE[(unsigned char)(bases[code] + 32)] = (uint8_t)code;
    }
    for (int i = 0; i < 16; i++) nibble_code[i] = 0; /* anything but A, C, G, T read as A */
    nibble_code[1] = 0;
    nibble_code[2] = 1;
    nibble_code[4] = 2;
    nibble_code[8] = 3;
    for (int byte = 0; byte < 256; byte++) {
        NIBBLE_PAIR_CODE[byte] = (uint64_t)((nibble_code[byte >> 4] << 2) | nibble_code[byte & 15]);
        BASE_PAIRS[byte][0] = NIBBLES[byte >> 4];
        BASE_PAIRS[byte][1] = NIBBLES[byte & 15];
    }
    /* reverse_complement of carmscope.construct: ACGTN and acgtn, anything else kept */
    const char *from = "ACGTNacgtn", *to = "TGCANtgcan";
    for (int i = 0; from[i]; i++) COMPLEMENT[(unsigned char)from[i]] = (uint8_t)to[i];
}

typedef struct {
    const uint64_t *table;
    uint64_t mask; /* table size - 1 */
    int bits;
    const uint8_t *filter;
    int filter_bits;
    int k;
    uint64_t kmer_mask;
    struct Prefilter *prefilter; /* of the record walk; NULL: every odd start is looked up */
} Lookup;

/* Whether key is in an open-addressing table (EMPTY slots), probing from slot on. */
static inline int table_contains(const uint64_t *table, uint64_t mask, uint64_t slot,
                                 uint64_t key) {
    uint64_t value = table[slot];
    while (value != EMPTY) {
        if (value == key) return 1;
        slot = (slot + 1) & mask;
        value = table[slot];
    }
    return 0;
}

static inline int lookup_contains(const Lookup *lookup, uint64_t key) {
    uint64_t mixed = key * HASH_MULTIPLIER;
    if (lookup->filter[mixed >> (64 - lookup->filter_bits)] == 0) return 0;
    return table_contains(lookup->table, lookup->mask, mixed >> (64 - lookup->bits), key);
}

/* Views of the lookup arrays, checked; released by release_lookup. */
typedef struct {
    Py_buffer table;
    Py_buffer filter;
    int have_table, have_filter;
} LookupViews;

static void release_lookup(LookupViews *views) {
    if (views->have_table) PyBuffer_Release(&views->table);
    if (views->have_filter) PyBuffer_Release(&views->filter);
    views->have_table = views->have_filter = 0;
}

static int get_lookup(PyObject *table, int bits, PyObject *filter, int filter_bits, int k,
                      int writable, Lookup *lookup, LookupViews *views) {
    views->have_table = views->have_filter = 0;
    int flags = writable ? PyBUF_WRITABLE : PyBUF_SIMPLE;
    if (bits < 1 || bits > 40 || filter_bits < 1 || filter_bits > 40) {
        PyErr_SetString(PyExc_ValueError, "lookup sizes out of range");
        return -1;
    }
    if (k < 1 || k > 31) {
        PyErr_SetString(PyExc_ValueError, "k must be 1-31");
        return -1;
    }
    if (PyObject_GetBuffer(table, &views->table, flags) < 0) return -1;
    views->have_table = 1;
    if (PyObject_GetBuffer(filter, &views->filter, flags) < 0) {
        release_lookup(views);
        return -1;
    }
    views->have_filter = 1;
    if (views->table.len != (Py_ssize_t)((1ULL << bits) * sizeof(uint64_t)) ||
        views->filter.len != (Py_ssize_t)(1ULL << filter_bits)) {
        release_lookup(views);
        PyErr_SetString(PyExc_ValueError, "lookup arrays do not match their sizes");
        return -1;
    }
    lookup->table = (const uint64_t *)views->table.buf;
    lookup->mask = (1ULL << bits) - 1;
    lookup->bits = bits;
    lookup->filter = (const uint8_t *)views->filter.buf;
    lookup->filter_bits = filter_bits;
    lookup->k = k;
    lookup->kmer_mask = (k == 32) ? EMPTY : ((1ULL << (2 * k)) - 1);
    lookup->prefilter = NULL;
    return 0;
}

/* fill(table, bits, filter, filter_bits, codes) */
static PyObject *py_fill(PyObject *self, PyObject *args) {
    PyObject *table, *filter;
    int bits, filter_bits;
    Py_buffer codes;
    if (!PyArg_ParseTuple(args, "OiOiy*", &table, &bits, &filter, &filter_bits, &codes)) return NULL;
    Lookup lookup;
    LookupViews views;
    if (get_lookup(table, bits, filter, filter_bits, 1, 1, &lookup, &views) < 0) {
        PyBuffer_Release(&codes);
        return NULL;
    }
    uint64_t *slots = (uint64_t *)views.table.buf;
    uint8_t *bytes = (uint8_t *)views.filter.buf;
    const uint64_t *keys = (const uint64_t *)codes.buf;
    Py_ssize_t n = codes.len / (Py_ssize_t)sizeof(uint64_t), stored = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t key = keys[i];
        if (key == EMPTY) continue;
        uint64_t mixed = key * HASH_MULTIPLIER;
        bytes[mixed >> (64 - filter_bits)] = 1;
        uint64_t slot = mixed >> (64 - bits);
        while (slots[slot] != EMPTY && slots[slot] != key) slot = (slot + 1) & lookup.mask;
        if (slots[slot] == EMPTY) stored++;
        slots[slot] = key;
        if (stored > (Py_ssize_t)lookup.mask) break; /* full: cannot happen at a quarter load */
    }
    release_lookup(&views);
    PyBuffer_Release(&codes);
    Py_RETURN_NONE;
}

/* contains(table, bits, filter, filter_bits, key) */
static PyObject *py_contains(PyObject *self, PyObject *args) {
    PyObject *table, *filter;
    int bits, filter_bits;
    unsigned long long key;
    if (!PyArg_ParseTuple(args, "OiOiK", &table, &bits, &filter, &filter_bits, &key)) return NULL;
    Lookup lookup;
    LookupViews views;
    if (get_lookup(table, bits, filter, filter_bits, 1, 0, &lookup, &views) < 0) return NULL;
    int found = lookup_contains(&lookup, (uint64_t)key);
    release_lookup(&views);
    return PyBool_FromLong(found);
}

/* Stored k-mers of text[start:end] (ASCII, forward strand), up to limit; any byte but
 * ACGTacgt breaks k-mers. Starts and codes are written when the arrays are given. */
static Py_ssize_t text_hits(const uint8_t *text, Py_ssize_t start, Py_ssize_t end,
                            const Lookup *lookup, Py_ssize_t limit, int64_t *starts,
                            uint64_t *codes) {
    uint64_t code = 0;
    int run = 0;
    Py_ssize_t hits = 0;
    const int k = lookup->k;
    for (Py_ssize_t position = start; position < end; position++) {
        uint8_t value = ASCII_CODE[text[position]];
        if (value > 3) {
            run = 0;
            continue;
        }
        code = ((code << 2) | value) & lookup->kmer_mask;
        if (run < k) run++;
        if (run >= k && lookup_contains(lookup, code)) {
            if (starts != NULL) starts[hits] = position - k + 1;
            if (codes != NULL) codes[hits] = code;
            hits++;
            if (hits >= limit) break;
        }
    }
    return hits;
}

/* ascii_hits(buffer, start, end, table, bits, filter, filter_bits, k, limit) -> int */
static PyObject *py_ascii_hits(PyObject *self, PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t start, end, limit;
    PyObject *table, *filter;
    int bits, filter_bits, k;
    if (!PyArg_ParseTuple(args, "y*nnOiOiin", &buffer, &start, &end, &table, &bits, &filter,
                          &filter_bits, &k, &limit))
        return NULL;
    Lookup lookup;
    LookupViews views;
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &lookup, &views) < 0) {
        PyBuffer_Release(&buffer);
        return NULL;
    }
    if (start < 0) start = 0;
    if (end > buffer.len) end = buffer.len;
    Py_ssize_t hits;
    Py_BEGIN_ALLOW_THREADS
    hits = text_hits((const uint8_t *)buffer.buf, start, end, &lookup, limit, NULL, NULL);
    Py_END_ALLOW_THREADS
    release_lookup(&views);
    PyBuffer_Release(&buffer);
    return PyLong_FromSsize_t(hits);
}

/* ascii_hit_codes(buffer, table, bits, filter, filter_bits, k, starts, codes) -> n
 * starts (int64) and codes (uint64, or None) need room for len(buffer) - k + 1 values. */
static PyObject *py_ascii_hit_codes(PyObject *self, PyObject *args) {
    Py_buffer buffer, starts, codes;
    PyObject *table, *filter, *codes_object;
    int bits, filter_bits, k;
    if (!PyArg_ParseTuple(args, "y*OiOiiw*O", &buffer, &table, &bits, &filter, &filter_bits, &k,
                          &starts, &codes_object))
        return NULL;
    int have_codes = codes_object != Py_None;
    if (have_codes && PyObject_GetBuffer(codes_object, &codes, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&buffer);
        PyBuffer_Release(&starts);
        return NULL;
    }
    Lookup lookup;
    LookupViews views;
    Py_ssize_t room = buffer.len - k + 1 > 0 ? buffer.len - k + 1 : 0;
    Py_ssize_t hits = -1;
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &lookup, &views) == 0) {
        if (starts.len < room * 8 || (have_codes && codes.len < room * 8)) {
            PyErr_SetString(PyExc_ValueError, "output arrays too small");
        } else {
            Py_BEGIN_ALLOW_THREADS
            hits = text_hits((const uint8_t *)buffer.buf, 0, buffer.len, &lookup, PY_SSIZE_T_MAX,
                             (int64_t *)starts.buf, have_codes ? (uint64_t *)codes.buf : NULL);
            Py_END_ALLOW_THREADS
        }
        release_lookup(&views);
    }
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&starts);
    if (have_codes) PyBuffer_Release(&codes);
    return hits < 0 ? NULL : PyLong_FromSsize_t(hits);
}

/* --- text reads ---------------------------------------------------------------------------- */

static Py_ssize_t line_end(const uint8_t *text, Py_ssize_t size, Py_ssize_t start) {
    const void *found = start < size ? memchr(text + start, '\n', (size_t)(size - start)) : NULL;
    return found ? (const uint8_t *)found - text : -1;
}

/* flag_lines(buffer, table, bits, filter, filter_bits, k, flags) -> lines
 * flags[i] (int64) is set to 1 for each newline-separated line i with a k-mer hit. */
static PyObject *py_flag_lines(PyObject *self, PyObject *args) {
    Py_buffer buffer, flags;
    PyObject *table, *filter;
    int bits, filter_bits, k;
    if (!PyArg_ParseTuple(args, "y*OiOiiw*", &buffer, &table, &bits, &filter, &filter_bits, &k,
                          &flags))
        return NULL;
    Lookup lookup;
    LookupViews views;
    Py_ssize_t lines = -1;
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &lookup, &views) == 0) {
        const uint8_t *text = (const uint8_t *)buffer.buf;
        int64_t *out = (int64_t *)flags.buf;
        Py_ssize_t room = flags.len / 8, size = buffer.len, start = 0, line = 0;
        int overflow = 0;
        Py_BEGIN_ALLOW_THREADS
        while (start < size) {
            Py_ssize_t end = line_end(text, size, start);
            if (end < 0) end = size;
            if (line >= room) {
                overflow = 1;
                break;
            }
            out[line] = text_hits(text, start, end, &lookup, 1, NULL, NULL);
            line++;
            start = end + 1;
        }
        Py_END_ALLOW_THREADS
        release_lookup(&views);
        if (overflow)
            PyErr_SetString(PyExc_ValueError, "flags array too small");
        else
            lines = line;
    }
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&flags);
    return lines < 0 ? NULL : PyLong_FromSsize_t(lines);
}

/* scan_fastq_chunk(buffer, final, table, bits, filter, filter_bits, k, candidates)
 * -> (consumed, n_records, n_candidates, error); see carmscope.car.text. */
static PyObject *py_scan_fastq_chunk(PyObject *self, PyObject *args) {
    Py_buffer buffer, candidates;
    int final;
    PyObject *table, *filter;
    int bits, filter_bits, k;
    if (!PyArg_ParseTuple(args, "y*pOiOiiw*", &buffer, &final, &table, &bits, &filter,
                          &filter_bits, &k, &candidates))
        return NULL;
    Lookup lookup;
    LookupViews views;
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &lookup, &views) < 0) {
        PyBuffer_Release(&buffer);
        PyBuffer_Release(&candidates);
        return NULL;
    }
    const uint8_t *text = (const uint8_t *)buffer.buf;
    int64_t *out = (int64_t *)candidates.buf;
    Py_ssize_t room = candidates.len / 8, size = buffer.len;
    Py_ssize_t position = 0, n_records = 0, n_candidates = 0, error = 0, consumed = -1;
    Py_BEGIN_ALLOW_THREADS
    while (position < size) {
        Py_ssize_t record = position, ends[4];
        int complete = 1;
        for (int line = 0; line < 4; line++) {
            Py_ssize_t end = line_end(text, size, position);
            if (end < 0) {
                if (final && line == 3 && position < size) {
                    end = size;
                } else {
                    complete = 0;
                    break;
                }
            }
            ends[line] = end;
            position = end + 1;
        }
        if (!complete) {
            consumed = record;
            if (final) error = record + 1;
            break;
        }
        Py_ssize_t plus = ends[1] + 1;
        if (text[record] != '@' || text[plus] != '+' || ends[3] - ends[2] != ends[1] - ends[0]) {
            consumed = record;
            error = record + 1;
            break;
        }
        n_records++;
        if (text_hits(text, ends[0] + 1, ends[1], &lookup, 1, NULL, NULL)) {
            if (n_candidates >= room) { /* cannot happen with len // 4 + 1 slots */
                consumed = record;
                error = record + 1;
                n_records--;
                break;
            }
            out[n_candidates++] = record;
        }
    }
    if (consumed < 0) consumed = position < size ? position : size;
    Py_END_ALLOW_THREADS
    release_lookup(&views);
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&candidates);
    return Py_BuildValue("nnnn", consumed, n_records, n_candidates, error);
}

/* --- BAM records --------------------------------------------------------------------------- */

#define FIXED 36 /* bytes of a record before its read name, block_size included */
#define SECONDARY_OR_SUPPLEMENTARY 0x900

static inline int64_t u16_at(const uint8_t *p) { return (int64_t)p[0] | ((int64_t)p[1] << 8); }

static inline int64_t i32_at(const uint8_t *p) {
    return (int64_t)(int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                              ((uint32_t)p[3] << 24));
}

static inline uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Whether a 4-bit packed sequence has a stored k-mer at an odd start (two bases shifted in at
 * a time into a window of k + 1 bases; see carmscope.car.bam). */
static inline int has_sampled_hit(const uint8_t *packed, int64_t length, const Lookup *lookup) {
    uint64_t window = 0;
    int64_t n_bytes = length >> 1;
    int64_t warm = (lookup->k - 1) >> 1;
    if (warm > n_bytes) warm = n_bytes;
    for (int64_t i = 0; i < warm; i++) window = (window << 4) | NIBBLE_PAIR_CODE[packed[i]];
    for (int64_t i = warm; i < n_bytes; i++) {
        window = (window << 4) | NIBBLE_PAIR_CODE[packed[i]];
        if (lookup_contains(lookup, window & lookup->kmer_mask)) return 1;
    }
    return 0;
}

/* --- the prefilter of the record walk -------------------------------------------------------
 * Almost no read of a file shares a k-mer with the construct, and the walk's time goes into
 * looking up each read's k-mers. The prefilter looks up fewer, shorter ones first: the windows
 * of kp = k + 2 - 2 * stride bases ending on every stride-th byte of the packed sequence, in
 * the set of every kp-base substring of the stored k-mers. An odd-start k-mer ends on some
 * byte j, and one of any stride consecutive bytes is looked up, so some window ending on a byte
 * i with j - stride < i <= j lies inside it (the k-mer's k bases cover kp + 2 * (stride - 1)
 * bases): a read with a stored k-mer at an odd start always passes the prefilter, and a read
 * that passes is then checked exactly (has_sampled_hit). Both read bases through the same
 * NIBBLE_PAIR_CODE, so a window is a substring of the k-mer that holds it, N and all.
 *
 * With k = 19 the stride is 4 (13-base windows, 10 lookups per 91-base read instead of 36).
 * Measured on the 2-million-read benchmark BAM (benchmarks/car_scan.py, in process): the whole
 * single-threaded scan 0.47 -> 0.43-0.44 s, the same reads found; see docs/car_detection.md. */

#define MIN_PREFILTER_K 11 /* shorter windows would pass too many reads on to the exact check */
#define MAX_STRIDE 4       /* the strides the walk is compiled for */

typedef struct Prefilter {
    uint64_t *bitset; /* 2**bitset_bits bits, one set per stored window (hash) */
    int bitset_bits;
    uint64_t *table; /* the windows, open addressing; EMPTY slots */
    uint64_t mask;
    int bits;
    int k;           /* window length kp */
    uint64_t kmer_mask;
    int stride;      /* bytes between looked-up windows, 2 to MAX_STRIDE */
} Prefilter;

/* The stride of the prefilter for k-mers of k bases, or 0 for none (k too short). */
static int prefilter_stride(int k) {
    int stride = (k + 2 - MIN_PREFILTER_K) / 2;
    if (stride > MAX_STRIDE) stride = MAX_STRIDE;
    return stride >= 2 ? stride : 0;
}

static void free_prefilter(Prefilter *prefilter) {
    if (prefilter == NULL) return;
    free(prefilter->bitset);
    free(prefilter->table);
    free(prefilter);
}

static inline int prefilter_contains(const Prefilter *prefilter, uint64_t key) {
    uint64_t mixed = key * HASH_MULTIPLIER;
    uint64_t bit = mixed >> (64 - prefilter->bitset_bits);
    if (((prefilter->bitset[bit >> 6] >> (bit & 63)) & 1) == 0) return 0;
    return table_contains(prefilter->table, prefilter->mask, mixed >> (64 - prefilter->bits), key);
}

/* The prefilter of a lookup's stored k-mers into lookup->prefilter: 0, or -1 (MemoryError set).
 * A k too short for one leaves lookup->prefilter NULL. */
static int attach_prefilter(Lookup *lookup) {
    int stride = prefilter_stride(lookup->k);
    lookup->prefilter = NULL;
    if (stride == 0) return 0;
    int k = lookup->k + 2 - 2 * stride;
    int64_t stored = 0;
    for (uint64_t slot = 0; slot <= lookup->mask; slot++) stored += lookup->table[slot] != EMPTY;
    int64_t windows = stored * (lookup->k - k + 1);
    int bits = 8;
    while ((1LL << bits) < 2 * windows) bits++; /* at most half full */
    Prefilter *prefilter = calloc(1, sizeof(Prefilter));
    if (prefilter == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    prefilter->bitset_bits = bits + 3 < 18 ? 18 : bits + 3; /* 32 KiB or 1 bit in 16 set */
    prefilter->bitset = calloc((size_t)1 << (prefilter->bitset_bits - 6), sizeof(uint64_t));
    prefilter->table = malloc(((size_t)1 << bits) * sizeof(uint64_t));
    if (prefilter->bitset == NULL || prefilter->table == NULL) {
        free_prefilter(prefilter);
        PyErr_NoMemory();
        return -1;
    }
    memset(prefilter->table, 0xFF, ((size_t)1 << bits) * sizeof(uint64_t));
    prefilter->bits = bits;
    prefilter->mask = (1ULL << bits) - 1;
    prefilter->k = k;
    prefilter->kmer_mask = (1ULL << (2 * k)) - 1;
    prefilter->stride = stride;
    for (uint64_t slot = 0; slot <= lookup->mask; slot++) {
        uint64_t code = lookup->table[slot];
        if (code == EMPTY) continue;
        for (int shift = 0; shift <= lookup->k - k; shift++) {
            uint64_t key = (code >> (2 * shift)) & prefilter->kmer_mask;
            uint64_t mixed = key * HASH_MULTIPLIER;
            uint64_t bit = mixed >> (64 - prefilter->bitset_bits);
            prefilter->bitset[bit >> 6] |= 1ULL << (bit & 63);
            uint64_t at = mixed >> (64 - bits);
            while (prefilter->table[at] != EMPTY && prefilter->table[at] != key)
                at = (at + 1) & prefilter->mask;
            prefilter->table[at] = key;
        }
    }
    lookup->prefilter = prefilter;
    return 0;
}

/* Whether a packed sequence may have a stored k-mer at an odd start: the windows ending on
 * bytes first, first + STRIDE, ... are looked up, first being the byte STRIDE - 1 before the
 * one the first odd-start k-mer ends on; the window ending on byte i lies inside every k-mer
 * ending on bytes i to i + STRIDE - 1, the read's last ones included. Compiled once per
 * stride, so the inner shifts unroll. */
#define DEFINE_MAY_HAVE_HIT(STRIDE)                                                               \
    static int may_have_hit_##STRIDE(const uint8_t *packed, int64_t length,                     \
                                     const Lookup *lookup) {                                    \
        const Prefilter *prefilter = lookup->prefilter;                                         \
        int64_t n_bytes = length >> 1;                                                          \
        int64_t first = ((lookup->k - 1) >> 1) - (STRIDE - 1);                                  \
        if (n_bytes <= first + STRIDE - 1) return 0; /* shorter than k + 1 bases */             \
        uint64_t window = 0;                                                                    \
        for (int64_t i = 0; i <= first; i++)                                                    \
            window = (window << 4) | NIBBLE_PAIR_CODE[packed[i]];                               \
        if (prefilter_contains(prefilter, window & prefilter->kmer_mask)) return 1;             \
        for (int64_t end = first; end + STRIDE < n_bytes; end += STRIDE) {                      \
            for (int j = STRIDE - 1; j >= 0; j--)                                               \
                window = (window << 4) | NIBBLE_PAIR_CODE[packed[end + STRIDE - j]];            \
            if (prefilter_contains(prefilter, window & prefilter->kmer_mask)) return 1;         \
        }                                                                                       \
        return 0;                                                                               \
    }

DEFINE_MAY_HAVE_HIT(2)
DEFINE_MAY_HAVE_HIT(3)
DEFINE_MAY_HAVE_HIT(4)

/* Whether a read has a stored k-mer at an odd start, the prefilter first when there is one. */
static inline int has_hit(const uint8_t *packed, int64_t length, const Lookup *lookup) {
    const Prefilter *prefilter = lookup->prefilter;
    if (prefilter != NULL) {
        int may;
        switch (prefilter->stride) {
        case 2: may = may_have_hit_2(packed, length, lookup); break;
        case 3: may = may_have_hit_3(packed, length, lookup); break;
        default: may = may_have_hit_4(packed, length, lookup); break;
        }
        if (!may) return 0;
    }
    return has_sampled_hit(packed, length, lookup);
}

typedef struct {
    int64_t position, n_records, n_primary, n_candidates, error;
} WalkResult;

/* Walk the records of data[start:size) up to offset stop; candidate record offsets go to
 * *candidates (grown with realloc when grow is set, else at most *room). */
static WalkResult walk_records(const uint8_t *data, int64_t start, int64_t size, int64_t stop,
                               const Lookup *lookup, int64_t **candidates, int64_t *room,
                               int grow) {
    WalkResult result = {start, 0, 0, 0, 0};
    int64_t position = start;
    while (position < stop && position + 4 <= size) {
        int64_t block_size = i32_at(data + position);
        if (block_size < FIXED - 4) {
            result.error = position + 1;
            break;
        }
        if (position + 4 + block_size > size) break;
        const uint8_t *record = data + position;
        int64_t l_read_name = record[12];
        int64_t n_cigar = u16_at(record + 16);
        int64_t flag = u16_at(record + 18);
        int64_t l_seq = i32_at(record + 20);
        int64_t sequence = FIXED + l_read_name + 4 * n_cigar;
        if (l_seq < 0 || sequence + (l_seq + 1) / 2 + l_seq > 4 + block_size) {
            result.error = position + 1;
            break;
        }
        result.n_records++;
        if ((flag & SECONDARY_OR_SUPPLEMENTARY) == 0) {
            result.n_primary++;
            if (has_hit(record + sequence, l_seq, lookup)) {
                if (result.n_candidates >= *room) {
                    if (!grow) {
                        result.error = -1;
                        break;
                    }
                    int64_t bigger = *room * 2 + 64;
                    int64_t *moved = realloc(*candidates, (size_t)bigger * sizeof(int64_t));
                    if (moved == NULL) {
                        result.error = -2;
                        break;
                    }
                    *candidates = moved;
                    *room = bigger;
                }
                (*candidates)[result.n_candidates++] = position;
            }
        }
        position += 4 + block_size;
    }
    result.position = position;
    return result;
}

/* scan_records(buffer, stop, table, bits, filter, filter_bits, k, candidates[, prefilter])
 * -> (position, n_records, n_primary, n_candidates, error); see carmscope.car.bam. */
static PyObject *py_scan_records(PyObject *self, PyObject *args) {
    Py_buffer buffer, candidates;
    Py_ssize_t stop;
    PyObject *table, *filter;
    int bits, filter_bits, k, prefilter = 1;
    if (!PyArg_ParseTuple(args, "y*nOiOiiw*|p", &buffer, &stop, &table, &bits, &filter,
                          &filter_bits, &k, &candidates, &prefilter))
        return NULL;
    Lookup lookup;
    LookupViews views;
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &lookup, &views) < 0) {
        PyBuffer_Release(&buffer);
        PyBuffer_Release(&candidates);
        return NULL;
    }
    if (prefilter && attach_prefilter(&lookup) < 0) {
        release_lookup(&views);
        PyBuffer_Release(&buffer);
        PyBuffer_Release(&candidates);
        return NULL;
    }
    int64_t *out = (int64_t *)candidates.buf;
    int64_t room = candidates.len / 8;
    WalkResult result;
    Py_BEGIN_ALLOW_THREADS
    result = walk_records((const uint8_t *)buffer.buf, 0, buffer.len, stop, &lookup, &out, &room,
                          0);
    Py_END_ALLOW_THREADS
    free_prefilter(lookup.prefilter);
    release_lookup(&views);
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&candidates);
    if (result.error < 0) {
        PyErr_SetString(PyExc_ValueError, "candidates array too small");
        return NULL;
    }
    return Py_BuildValue("LLLLL", (long long)result.position, (long long)result.n_records,
                         (long long)result.n_primary, (long long)result.n_candidates,
                         (long long)result.error);
}

/* parse_record(record, wanted) -> (name, flag, reference_id, sequence, tags) */
static const int TAG_SIZES[128] = {
    ['A'] = 1, ['c'] = 1, ['C'] = 1, ['s'] = 2, ['S'] = 2, ['i'] = 4, ['I'] = 4, ['f'] = 4,
};

static PyObject *tag_value(char kind, const uint8_t *raw) {
    switch (kind) {
    case 'A': return PyUnicode_DecodeASCII((const char *)raw, 1, "replace");
    case 'c': return PyUnicode_FromFormat("%d", (int)(int8_t)raw[0]);
    case 'C': return PyUnicode_FromFormat("%d", (int)raw[0]);
    case 's': return PyUnicode_FromFormat("%d", (int)(int16_t)u16_at(raw));
    case 'S': return PyUnicode_FromFormat("%d", (int)u16_at(raw));
    case 'i': return PyUnicode_FromFormat("%d", (int)(int32_t)u32_at(raw));
    case 'I': return PyUnicode_FromFormat("%lu", (unsigned long)u32_at(raw));
    case 'f': {
        uint32_t bits = u32_at(raw);
        float value;
        memcpy(&value, &bits, sizeof value);
        PyObject *number = PyFloat_FromDouble((double)value);
        if (number == NULL) return NULL;
        PyObject *text = PyObject_Str(number);
        Py_DECREF(number);
        return text;
    }
    }
    return NULL;
}

static PyObject *malformed(void) {
    PyErr_SetString(PyExc_ValueError, "malformed BAM record");
    return NULL;
}

static PyObject *py_parse_record(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *wanted;
    if (!PyArg_ParseTuple(args, "y*O!", &view, &PyTuple_Type, &wanted)) return NULL;
    const uint8_t *record = (const uint8_t *)view.buf;
    int64_t size = view.len;
    PyObject *name = NULL, *sequence = NULL, *tags = NULL, *result = NULL;
    if (size < FIXED) {
        malformed();
        goto done;
    }
    int64_t l_read_name = record[12];
    int64_t n_cigar = u16_at(record + 16);
    int64_t flag = u16_at(record + 18);
    int64_t l_seq = i32_at(record + 20);
    int64_t reference_id = i32_at(record + 4);
    int64_t seq_start = FIXED + l_read_name + 4 * n_cigar;
    int64_t position = seq_start + (l_seq + 1) / 2 + l_seq;
    if (l_read_name < 1 || l_seq < 0 || position > size) {
        malformed();
        goto done;
    }
    name = PyUnicode_DecodeASCII((const char *)record + FIXED, l_read_name - 1, "replace");
    if (name == NULL) goto done;
    sequence = PyUnicode_New(l_seq, 127);
    if (sequence == NULL) goto done;
    char *bases = (char *)PyUnicode_1BYTE_DATA(sequence);
    const uint8_t *packed = record + seq_start;
    for (int64_t i = 0; i + 1 < l_seq; i += 2) memcpy(bases + i, BASE_PAIRS[packed[i >> 1]], 2);
    if (l_seq & 1) bases[l_seq - 1] = BASE_PAIRS[packed[l_seq >> 1]][0];
    tags = PyDict_New();
    if (tags == NULL) goto done;
    Py_ssize_t n_wanted = PyTuple_GET_SIZE(wanted);
    while (position + 3 <= size) {
        const uint8_t *tag = record + position;
        char kind = (char)tag[2];
        position += 3;
        PyObject *value = NULL;
        int64_t value_end;
        if (kind == 'Z' || kind == 'H') {
            const void *nul = memchr(record + position, 0, (size_t)(size - position));
            if (nul == NULL) {
                malformed();
                goto done;
            }
            value_end = (const uint8_t *)nul - record;
            value = PyUnicode_DecodeASCII((const char *)record + position, value_end - position,
                                          "replace");
            position = value_end + 1;
        } else if (kind == 'B') {
            if (position + 5 > size || (unsigned char)record[position] >= 128 ||
                TAG_SIZES[record[position]] == 0) {
                malformed();
                goto done;
            }
            int64_t count = (int64_t)u32_at(record + position + 1);
            position += 5 + count * TAG_SIZES[record[position]];
            continue;
        } else {
            if ((unsigned char)kind >= 128 || TAG_SIZES[(int)kind] == 0 ||
                position + TAG_SIZES[(int)kind] > size) {
                malformed();
                goto done;
            }
            value = tag_value(kind, record + position);
            position += TAG_SIZES[(int)kind];
        }
        if (value == NULL) goto done;
        PyObject *key = PyUnicode_DecodeASCII((const char *)tag, 2, "replace");
        if (key == NULL) {
            Py_DECREF(value);
            goto done;
        }
        int keep = 0;
        for (Py_ssize_t i = 0; i < n_wanted && !keep; i++) {
            int equal = PyObject_RichCompareBool(key, PyTuple_GET_ITEM(wanted, i), Py_EQ);
            if (equal < 0) {
                Py_DECREF(key);
                Py_DECREF(value);
                goto done;
            }
            keep = equal;
        }
        int failed = keep ? PyDict_SetItem(tags, key, value) : 0;
        Py_DECREF(key);
        Py_DECREF(value);
        if (failed < 0) goto done;
    }
    result = Py_BuildValue("OLLOO", name, (long long)flag, (long long)reference_id, sequence, tags);
done:
    Py_XDECREF(name);
    Py_XDECREF(sequence);
    Py_XDECREF(tags);
    PyBuffer_Release(&view);
    return result;
}

/* --- BamWalker: read, inflate and walk a range of a BAM file ------------------------------- */

#define MAX_BLOCK 65536
static PyObject *FormatError = NULL;

typedef struct {
    PyObject_HEAD
    int fd, opened;
    void *decompressor;
    /* compressed bytes: cbuf[cpos:clen) is the file from offset `offset` on */
    uint8_t *cbuf;
    int64_t ccap, cpos, clen;
    int64_t file_position; /* file offset just past cbuf[clen - 1] */
    int64_t offset;        /* compressed offset of the next block */
    int64_t last;          /* offset of the last block to read (-1: to the end of the file) */
    int64_t stop_within;
    int64_t read_bytes, chunk_bytes;
    /* inflated bytes: dbuf[dpos:dlen) not walked yet; dbuf[0] is inflated offset `base` */
    uint8_t *dbuf;
    int64_t dcap, dpos, dlen, base;
    int64_t start_within;
    int64_t stop_at; /* inflated offset of the range's end (-1: not known yet) */
    int64_t final_size;
    int started, exhausted, done, need_more;
    int64_t *candidates;
    int64_t room;
    long long n_records, n_primary;
    Lookup lookup;
    LookupViews views;
    char message[256];
    /* threads > 1: the blocks of a batch are inflated by a pool (see "Threaded inflating") */
    int n_helpers;      /* pool threads besides the caller */
    pthread_t *helpers;
    void **helper_decompressors;
    int pool_started, quit, in_flight, collected_all;
    pthread_mutex_t lock;
    pthread_cond_t wake, finished;
    struct InflateJob *jobs;
    int64_t n_jobs, jobs_cap, next_job, done_jobs;
    int64_t ready; /* dbuf[0:ready) is inflated; dbuf[ready:dlen) is being inflated */
} BamWalker;

/* One BGZF block to inflate: compressed bytes cbuf[source:source + source_length), inflated
 * into dbuf[target:target + size). */
typedef struct InflateJob {
    int64_t source, source_length, target, size, offset;
    int status;
} InflateJob;

static void stop_pool(BamWalker *self);

static void walker_dealloc(BamWalker *self) {
    stop_pool(self);
    if (self->opened) close(self->fd);
    if (self->decompressor != NULL) ld_free(self->decompressor);
    free(self->cbuf);
    free(self->dbuf);
    free(self->candidates);
    free_prefilter(self->lookup.prefilter);
    release_lookup(&self->views);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int start_pool(BamWalker *self, int threads);

static int walker_init(BamWalker *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"path",   "start_block", "start_within", "stop_block",
                               "stop_within", "table", "bits", "filter", "filter_bits", "k",
                               "chunk_bytes", "read_bytes", "threads", NULL};
    PyObject *path, *table, *filter;
    long long start_block, start_within, stop_block, stop_within, chunk_bytes, read_bytes;
    int bits, filter_bits, k, threads = 1;
    if (self->cbuf != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "BamWalker initialised twice");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&LLLLOiOiiLL|i", keywords,
                                     PyUnicode_FSConverter, &path, &start_block, &start_within,
                                     &stop_block, &stop_within, &table, &bits, &filter,
                                     &filter_bits, &k, &chunk_bytes, &read_bytes, &threads))
        return -1;
    if (threads < 1 || threads > 256) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_ValueError, "threads must be 1-256");
        return -1;
    }
    if (ld_decompress == NULL) {
        Py_DECREF(path);
        PyErr_SetString(PyExc_RuntimeError,
                        "libdeflate not found: neither the `deflate` package's library nor "
                        "libdeflate.so.0 exports it (reinstall with `make setup`)");
        return -1;
    }
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &self->lookup, &self->views) < 0) {
        Py_DECREF(path);
        return -1;
    }
    if (attach_prefilter(&self->lookup) < 0) {
        Py_DECREF(path);
        return -1;
    }
    self->fd = open(PyBytes_AS_STRING(path), O_RDONLY);
    if (self->fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        Py_DECREF(path);
        return -1;
    }
    self->opened = 1;
    Py_DECREF(path);
    if (chunk_bytes < 1) chunk_bytes = 1;
    if (read_bytes < 1) read_bytes = 1;
    self->chunk_bytes = chunk_bytes;
    self->read_bytes = read_bytes;
    self->ccap = read_bytes + 2 * MAX_BLOCK;
    self->cbuf = malloc((size_t)self->ccap);
    /* threaded: room for the batch being walked and the one being inflated, and slack so
     * that the unwalked bytes are moved to the front only every few batches */
    self->dcap = (threads > 1 ? 8 * chunk_bytes : chunk_bytes) + 2 * MAX_BLOCK;
    self->dbuf = malloc((size_t)self->dcap);
    self->room = 1024;
    self->candidates = malloc((size_t)self->room * sizeof(int64_t));
    self->decompressor = ld_alloc();
    if (self->cbuf == NULL || self->dbuf == NULL || self->candidates == NULL ||
        self->decompressor == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->file_position = start_block;
    self->offset = start_block;
    self->start_within = start_within;
    self->last = stop_block;
    self->stop_within = stop_within;
    self->stop_at = -1;
    self->final_size = -1;
    return threads > 1 ? start_pool(self, threads) : 0;
}

/* Fail with a message (no GIL needed: the exception is raised by step). */
static int fail(BamWalker *self, const char *format, long long value) {
    snprintf(self->message, sizeof self->message, format, value);
    return -1;
}

static int fail_text(BamWalker *self, const char *text) {
    snprintf(self->message, sizeof self->message, "%s", text);
    return -1;
}

/* Read more of the file behind cbuf[cpos:clen) (moving those bytes to the front first);
 * 0 on success, -1 on error. */
static int refill(BamWalker *self) {
    memmove(self->cbuf, self->cbuf + self->cpos, (size_t)(self->clen - self->cpos));
    self->clen -= self->cpos;
    self->cpos = 0;
    /* read_bytes at a time, and at least a whole block when the file has it */
    int64_t wanted = self->read_bytes;
    if (wanted < MAX_BLOCK - self->clen) wanted = MAX_BLOCK - self->clen;
    while (wanted > 0 && self->clen < self->ccap) {
        int64_t space = self->ccap - self->clen;
        ssize_t got = pread(self->fd, self->cbuf + self->clen,
                            (size_t)(wanted < space ? wanted : space), self->file_position);
        if (got < 0) {
            if (errno == EINTR) continue;
            return fail(self, "cannot be read (I/O error %lld)", (long long)errno);
        }
        if (got == 0) break;
        self->clen += got;
        self->file_position += got;
        wanted -= got;
    }
    return 0;
}

/* The header of the next BGZF block of the range, at cbuf[cpos] (read from the file first when
 * may_refill is set and fewer than MAX_BLOCK bytes are left): its total (compressed) size,
 * extra field length and inflated size. 1: a block; 0: the range or file is done; 2: the
 * block is not wholly in cbuf and may_refill is not set; -1: an error. */
static int next_block(BamWalker *self, int may_refill, int64_t *total_out, int64_t *extra_out,
                      int64_t *size_out) {
    if (self->last >= 0 && self->offset > self->last) return 0;
    if (self->clen - self->cpos < MAX_BLOCK && may_refill && refill(self) < 0) return -1;
    const int64_t offset = self->offset;
    if (self->cpos == self->clen) {
        if (!may_refill) return 2;
        if (self->last < 0 && self->final_size != 0)
            return fail_text(self, "truncated file: no BGZF end-of-file block (the copy may be "
                                   "incomplete)");
        return 0;
    }
    const uint8_t *block = self->cbuf + self->cpos;
    int64_t available = self->clen - self->cpos;
    if (available < 18) {
        if (!may_refill) return 2;
        return fail(self, "truncated file: partial BGZF block at byte %lld", offset);
    }
    if (block[0] != 0x1f || block[1] != 0x8b || block[2] != 0x08 || block[3] != 0x04)
        return fail_text(self, "not a BGZF file (BAM): bad block header");
    int64_t extra_length = u16_at(block + 10), total = -1;
    if (extra_length == 6 && block[12] == 'B' && block[13] == 'C' && u16_at(block + 14) == 2) {
        total = u16_at(block + 16) + 1;
    } else {
        int64_t at = 0;
        while (at + 4 <= extra_length && 12 + at + 4 <= available) {
            int64_t sub_length = u16_at(block + 12 + at + 2);
            if (block[12 + at] == 'B' && block[12 + at + 1] == 'C' && sub_length == 2 &&
                12 + at + 6 <= available) {
                total = u16_at(block + 12 + at + 4) + 1;
                break;
            }
            at += 4 + sub_length;
        }
        if (total < 0) {
            if (!may_refill && 12 + extra_length > available) return 2;
            return fail_text(self, "not a BGZF file (BAM): block without a BSIZE field");
        }
    }
    if (available < total) {
        if (!may_refill) return 2;
        return fail(self, "truncated file: partial BGZF block at byte %lld", offset);
    }
    if (total < 12 + extra_length + 8)
        return fail(self, "corrupt BGZF block at byte %lld (bad block size)", offset);
    int64_t size = u32_at(block + total - 4);
    self->final_size = size;
    if (size > MAX_BLOCK)
        return fail(self, "corrupt BGZF block at byte %lld (wrong inflated size)", offset);
    *total_out = total;
    *extra_out = extra_length;
    *size_out = size;
    return 1;
}

/* Make room for `size` more inflated bytes at dbuf[dlen]; 0 on success, -1 on error. */
static int reserve(BamWalker *self, int64_t size) {
    if (self->dlen + size <= self->dcap) return 0;
    int64_t bigger = (self->dlen + size) * 2;
    uint8_t *moved = realloc(self->dbuf, (size_t)bigger);
    if (moved == NULL) return fail(self, "out of memory at byte %lld", self->offset);
    self->dbuf = moved;
    self->dcap = bigger;
    return 0;
}

/* Inflate one block with `decompressor`: 0, or 1 for bad data, 2 for a wrong inflated size. */
static int inflate_block(void *decompressor, const uint8_t *source, int64_t source_length,
                         uint8_t *target, int64_t size) {
    if (size == 0) return 0;
    size_t actual = 0;
    if (ld_decompress(decompressor, source, (size_t)source_length, target, (size_t)size,
                      &actual) != 0)
        return 1;
    return (int64_t)actual == size ? 0 : 2;
}

static int inflate_failure(BamWalker *self, int status, int64_t offset) {
    if (status == 1)
        return fail(self, "corrupt BGZF block at byte %lld (libdeflate: bad data)", offset);
    return fail(self, "corrupt BGZF block at byte %lld (wrong inflated size)", offset);
}

/* Inflate the next BGZF block onto dbuf; 0 on success (or end of range), -1 on error. */
static int inflate_next(BamWalker *self) {
    int64_t total, extra_length, size;
    int found = next_block(self, 1, &total, &extra_length, &size);
    if (found <= 0) {
        if (found == 0) self->exhausted = 1;
        return found;
    }
    const int64_t offset = self->offset;
    if (reserve(self, size) < 0) return -1;
    if (self->last >= 0 && offset == self->last)
        self->stop_at = self->base + self->dlen + self->stop_within;
    const uint8_t *block = self->cbuf + self->cpos;
    int status = inflate_block(self->decompressor, block + 12 + extra_length,
                               total - 12 - extra_length - 8, self->dbuf + self->dlen, size);
    if (status != 0) return inflate_failure(self, status, offset);
    self->dlen += size;
    self->cpos += total;
    self->offset += total;
    return 0;
}

/* --- Threaded inflating ---------------------------------------------------------------------
 * With threads > 1 the walker works in batches of about chunk_bytes of inflated data. Each
 * step first finishes the batch in flight (the caller inflates its remaining blocks beside the
 * pool, then waits for the blocks the pool threads hold), then reads and parses the headers of
 * the next batch's blocks and hands them to the pool, and walks the records inflated so far
 * while the pool inflates. Blocks are claimed one at a time under a mutex, so a thread that is
 * descheduled on a busy machine holds up one block, not half of the file. cbuf and dbuf are
 * moved or grown only while no batch is in flight. */

static void run_jobs(BamWalker *self, void *decompressor) {
    /* called with self->lock held; returns with it held */
    while (self->next_job < self->n_jobs) {
        InflateJob *job = &self->jobs[self->next_job++];
        pthread_mutex_unlock(&self->lock);
        job->status = inflate_block(decompressor, self->cbuf + job->source, job->source_length,
                                    self->dbuf + job->target, job->size);
        pthread_mutex_lock(&self->lock);
        if (++self->done_jobs == self->n_jobs) pthread_cond_signal(&self->finished);
    }
}

typedef struct {
    BamWalker *walker;
    void *decompressor;
} Helper;

static void *helper_main(void *argument) {
    BamWalker *self = ((Helper *)argument)->walker;
    void *decompressor = ((Helper *)argument)->decompressor;
    free(argument);
    pthread_mutex_lock(&self->lock);
    while (!self->quit) {
        if (self->next_job < self->n_jobs)
            run_jobs(self, decompressor);
        else
            pthread_cond_wait(&self->wake, &self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static int start_pool(BamWalker *self, int threads) {
    self->jobs_cap = 64;
    self->jobs = malloc((size_t)self->jobs_cap * sizeof(InflateJob));
    self->helpers = calloc((size_t)threads - 1, sizeof(pthread_t));
    self->helper_decompressors = calloc((size_t)threads - 1, sizeof(void *));
    if (self->jobs == NULL || self->helpers == NULL || self->helper_decompressors == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (pthread_mutex_init(&self->lock, NULL) != 0 || pthread_cond_init(&self->wake, NULL) != 0 ||
        pthread_cond_init(&self->finished, NULL) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot create the inflating threads' locks");
        return -1;
    }
    self->pool_started = 1;
    for (int i = 0; i < threads - 1; i++) {
        Helper *helper = malloc(sizeof(Helper));
        self->helper_decompressors[i] = ld_alloc();
        if (helper == NULL || self->helper_decompressors[i] == NULL) {
            free(helper);
            PyErr_NoMemory();
            return -1;
        }
        helper->walker = self;
        helper->decompressor = self->helper_decompressors[i];
        if (pthread_create(&self->helpers[i], NULL, helper_main, helper) != 0) {
            free(helper);
            PyErr_SetString(PyExc_RuntimeError, "cannot start an inflating thread");
            return -1;
        }
        self->n_helpers++;
    }
    return 0;
}

static void stop_pool(BamWalker *self) {
    if (!self->pool_started) return;
    pthread_mutex_lock(&self->lock);
    self->quit = 1;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    for (int i = 0; i < self->n_helpers; i++) pthread_join(self->helpers[i], NULL);
    for (int i = 0; i < self->n_helpers; i++)
        if (self->helper_decompressors[i] != NULL) ld_free(self->helper_decompressors[i]);
    free(self->helpers);
    free(self->helper_decompressors);
    free(self->jobs);
    pthread_cond_destroy(&self->wake);
    pthread_cond_destroy(&self->finished);
    pthread_mutex_destroy(&self->lock);
    self->pool_started = 0;
    self->n_helpers = 0;
}

/* Finish the batch in flight (the caller helps); 0, or -1 if a block was damaged. */
static int finish_batch(BamWalker *self) {
    if (!self->in_flight) return 0;
    pthread_mutex_lock(&self->lock);
    run_jobs(self, self->decompressor);
    while (self->done_jobs < self->n_jobs) pthread_cond_wait(&self->finished, &self->lock);
    pthread_mutex_unlock(&self->lock);
    self->in_flight = 0;
    self->ready = self->dlen;
    for (int64_t i = 0; i < self->n_jobs; i++)
        if (self->jobs[i].status != 0)
            return inflate_failure(self, self->jobs[i].status, self->jobs[i].offset);
    return 0;
}

/* Parse the next batch's blocks and hand them to the pool; 0 or -1. */
static int start_batch(BamWalker *self) {
    if (self->dpos > 0 && self->dlen + self->chunk_bytes + MAX_BLOCK > self->dcap) {
        /* move the bytes not walked yet to the front (nothing is in flight) */
        memmove(self->dbuf, self->dbuf + self->dpos, (size_t)(self->dlen - self->dpos));
        self->base += self->dpos;
        self->dlen -= self->dpos;
        self->ready -= self->dpos;
        self->dpos = 0;
    }
    int64_t n = 0, batch = 0;
    while (batch < self->chunk_bytes) {
        int64_t total, extra_length, size;
        /* cbuf may be refilled (moved) only before the batch's first block */
        int found = next_block(self, n == 0, &total, &extra_length, &size);
        if (found < 0) return -1;
        if (found == 0) {
            self->collected_all = 1;
            break;
        }
        if (found == 2) break;
        if (reserve(self, size) < 0) return -1;
        if (n == self->jobs_cap) {
            InflateJob *moved = realloc(self->jobs, (size_t)self->jobs_cap * 2 * sizeof(InflateJob));
            if (moved == NULL) return fail(self, "out of memory at byte %lld", self->offset);
            self->jobs = moved;
            self->jobs_cap *= 2;
        }
        if (self->last >= 0 && self->offset == self->last)
            self->stop_at = self->base + self->dlen + self->stop_within;
        self->jobs[n++] = (InflateJob){self->cpos + 12 + extra_length, total - 12 - extra_length - 8,
                                       self->dlen, size, self->offset, 0};
        self->dlen += size;
        batch += size;
        self->cpos += total;
        self->offset += total;
    }
    if (n == 0) return 0;
    pthread_mutex_lock(&self->lock);
    self->n_jobs = n;
    self->next_job = 0;
    self->done_jobs = 0;
    self->in_flight = 1;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

/* Walk the whole records of dbuf[dpos:size), up to the range's end; 0 or -1. */
static int walk_inflated(BamWalker *self, int64_t size, WalkResult *walked) {
    int64_t limit = size;
    if (self->stop_at >= 0 && self->stop_at - self->base < limit) limit = self->stop_at - self->base;
    *walked = walk_records(self->dbuf, self->dpos, size, limit, &self->lookup, &self->candidates,
                           &self->room, 1);
    if (walked->error == -2) return fail_text(self, "out of memory");
    if (walked->error > 0)
        return fail(self, "malformed BAM record at inflated offset %lld",
                    (long long)(self->base + walked->error - 1));
    return 0;
}

/* The threaded step: finish the batch in flight, start the next, walk what is inflated. */
static int step_threaded(BamWalker *self, WalkResult *walked) {
    if (finish_batch(self) < 0) return -1;
    if (!self->collected_all && start_batch(self) < 0) {
        finish_batch(self); /* the pool must not write into buffers being freed */
        return -1;
    }
    if (!self->in_flight && self->collected_all) self->exhausted = 1;
    if (!self->started && (self->ready >= self->start_within || self->exhausted)) {
        self->started = 1;
        self->dpos = self->start_within < self->ready ? self->start_within : self->ready;
    }
    if (!self->started) {
        *walked = (WalkResult){self->dpos, 0, 0, 0, 0};
        return 0;
    }
    if (walk_inflated(self, self->ready, walked) < 0) return -1;
    self->dpos = walked->position;
    return 0;
}

/* The GIL-free part of step: inflate about chunk_bytes and walk the whole records in them. */
static int step_nogil(BamWalker *self, WalkResult *walked) {
    if (self->dpos > 0) {
        memmove(self->dbuf, self->dbuf + self->dpos, (size_t)(self->dlen - self->dpos));
        self->base += self->dpos;
        self->dlen -= self->dpos;
        self->dpos = 0;
    }
    while (!self->exhausted && (self->dlen < self->chunk_bytes || self->need_more)) {
        if (inflate_next(self) < 0) return -1;
        self->need_more = 0;
        if (!self->started && self->dlen >= self->start_within) {
            self->started = 1;
            self->dpos = self->start_within;
        }
    }
    if (!self->started) {
        self->started = 1;
        self->dpos = self->start_within < self->dlen ? self->start_within : self->dlen;
    }
    if (walk_inflated(self, self->dlen, walked) < 0) return -1;
    if (walked->position == self->dpos) self->need_more = 1;
    self->dpos = walked->position;
    return 0;
}

static PyObject *walker_step(BamWalker *self, PyObject *unused) {
    if (self->done) Py_RETURN_NONE;
    if (self->decompressor == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "walker not initialised");
        return NULL;
    }
    WalkResult walked;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = self->pool_started ? step_threaded(self, &walked) : step_nogil(self, &walked);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        self->done = 1;
        PyErr_SetString(FormatError, self->message);
        return NULL;
    }
    self->n_records += walked.n_records;
    self->n_primary += walked.n_primary;
    PyObject *found = PyList_New((Py_ssize_t)walked.n_candidates);
    if (found == NULL) return NULL;
    for (int64_t i = 0; i < walked.n_candidates; i++) {
        const uint8_t *record = self->dbuf + self->candidates[i];
        PyObject *raw = PyBytes_FromStringAndSize((const char *)record, 4 + i32_at(record));
        if (raw == NULL) {
            Py_DECREF(found);
            return NULL;
        }
        PyList_SET_ITEM(found, (Py_ssize_t)i, raw);
    }
    int64_t reached = self->base + self->dpos;
    if (self->stop_at >= 0 && reached >= self->stop_at) {
        self->done = 1;
        if (reached != self->stop_at) {
            Py_DECREF(found);
            PyErr_SetString(FormatError, "record boundaries disagree between threads; use 1 thread");
            return NULL;
        }
    } else if (self->exhausted) {
        self->done = 1;
        if (self->last >= 0 || self->dpos < self->dlen) {
            Py_DECREF(found);
            PyErr_SetString(FormatError, "truncated file: the last record is incomplete");
            return NULL;
        }
    }
    return found;
}

static PyObject *walker_counts(BamWalker *self, void *unused) {
    return Py_BuildValue("LL", self->n_records, self->n_primary);
}

static PyMethodDef walker_methods[] = {
    {"step", (PyCFunction)walker_step, METH_NOARGS,
     "Inflate and walk about chunk_bytes more; the candidate records found (raw bytes), or "
     "None once the range is done. Raises FormatError on a damaged file."},
    {NULL}};

static PyGetSetDef walker_getset[] = {
    {"counts", (getter)walker_counts, NULL, "(records, primary records) walked so far", NULL},
    {NULL}};

static PyTypeObject BamWalkerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "carmscope.bam._native.BamWalker",
    .tp_basicsize = sizeof(BamWalker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "BamWalker(path, start_block, start_within, stop_block, stop_within, table, bits, "
              "filter, filter_bits, k, chunk_bytes, read_bytes): scan a range of a BAM file "
              "(stop_block -1: to the end, which must be the BGZF end-of-file block).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)walker_init,
    .tp_dealloc = (destructor)walker_dealloc,
    .tp_methods = walker_methods,
    .tp_getset = walker_getset,
};

/* --- placement of one read (carmscope.car.evidence.place_read) ----------------------------- */

typedef struct {
    int64_t kind; /* construct * 2 + reverse */
    int64_t diagonal;
    int64_t position; /* oriented read position */
} Vote;

static int compare_votes(const void *a, const void *b) {
    const Vote *x = a, *y = b;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->diagonal != y->diagonal) return x->diagonal < y->diagonal ? -1 : 1;
    if (x->position != y->position) return x->position < y->position ? -1 : 1;
    return 0;
}

typedef struct {
    int64_t construct, reverse, diagonal, kmers, overlap, mismatches;
} Counting;

/* place(sequence, table, bits, filter, filter_bits, k, codes, offsets, construct, position,
 *       reverse, constructs, min_kmers, max_mismatch_fraction)
 * -> None, -1 (ambiguous) or (construct, reverse, diagonal, length, kmers, overlap, mismatches)
 * sequence: ASCII bytes; constructs: tuple of the constructs' sequences (bytes). */
static PyObject *py_place(PyObject *self, PyObject *args) {
    Py_buffer sequence, codes, offsets, construct, position, reverse;
    PyObject *table, *filter, *constructs;
    int bits, filter_bits, k;
    Py_ssize_t min_kmers;
    double max_fraction;
    if (!PyArg_ParseTuple(args, "y*OiOiiy*y*y*y*y*O!nd", &sequence, &table, &bits, &filter,
                          &filter_bits, &k, &codes, &offsets, &construct, &position, &reverse,
                          &PyTuple_Type, &constructs, &min_kmers, &max_fraction))
        return NULL;
    PyObject *result = NULL;
    Lookup lookup;
    LookupViews views = {0};
    uint8_t *upper = NULL, *complement = NULL;
    int64_t *starts = NULL;
    uint64_t *hit_codes = NULL;
    Vote *votes = NULL;
    Counting *counting = NULL;
    Py_buffer *references = NULL;
    Py_ssize_t n_constructs = PyTuple_GET_SIZE(constructs), n_references = 0;
    if (get_lookup(table, bits, filter, filter_bits, k, 0, &lookup, &views) < 0) goto done;
    int64_t n_codes = codes.len / 8;
    if (offsets.len != (n_codes + 1) * 8 || construct.len != position.len ||
        reverse.len * 8 != construct.len) {
        PyErr_SetString(PyExc_ValueError, "strand table arrays do not match");
        goto done;
    }
    references = PyMem_Calloc((size_t)n_constructs + 1, sizeof(Py_buffer));
    if (references == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; n_references < n_constructs; n_references++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(constructs, n_references),
                               &references[n_references], PyBUF_SIMPLE) < 0)
            goto done;
    const int64_t length = sequence.len;
    const uint64_t *code_of = codes.buf;
    const int64_t *offset_of = offsets.buf, *construct_of = construct.buf,
                  *position_of = position.buf;
    const uint8_t *reverse_of = reverse.buf;
    const int64_t n_rows = construct.len / 8;
    int64_t room = length - k + 1 > 0 ? length - k + 1 : 0;
    upper = malloc((size_t)length + 1);
    complement = malloc((size_t)length + 1);
    starts = malloc(((size_t)room + 1) * sizeof(int64_t));
    hit_codes = malloc(((size_t)room + 1) * sizeof(uint64_t));
    if (upper == NULL || complement == NULL || starts == NULL || hit_codes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *text = sequence.buf;
    for (int64_t i = 0; i < length; i++) {
        uint8_t c = text[i];
        upper[i] = (c >= 'a' && c <= 'z') ? (uint8_t)(c - 32) : c;
    }
    for (int64_t i = 0; i < length; i++) complement[i] = COMPLEMENT[upper[length - 1 - i]];
    int64_t n_hits = text_hits(upper, 0, length, &lookup, PY_SSIZE_T_MAX, starts, hit_codes);
    if (n_hits < min_kmers) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* votes: one per (hit, occurrence of its code) */
    int64_t n_votes = 0, vote_room = n_hits * 2 + 16;
    votes = malloc((size_t)vote_room * sizeof(Vote));
    if (votes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int64_t h = 0; h < n_hits; h++) {
        int64_t low = 0, high = n_codes; /* first code >= hit_codes[h] */
        while (low < high) {
            int64_t middle = (low + high) >> 1;
            if (code_of[middle] < hit_codes[h])
                low = middle + 1;
            else
                high = middle;
        }
        if (low == n_codes || code_of[low] != hit_codes[h]) continue;
        for (int64_t row = offset_of[low]; row < offset_of[low + 1] && row < n_rows; row++) {
            if (n_votes == vote_room) {
                vote_room *= 2;
                Vote *moved = realloc(votes, (size_t)vote_room * sizeof(Vote));
                if (moved == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                votes = moved;
            }
            int64_t is_reverse = reverse_of[row] != 0;
            int64_t oriented = is_reverse ? length - starts[h] - k : starts[h];
            votes[n_votes].kind = construct_of[row] * 2 + is_reverse;
            votes[n_votes].diagonal = position_of[row] - oriented;
            votes[n_votes].position = oriented;
            n_votes++;
        }
    }
    qsort(votes, (size_t)n_votes, sizeof(Vote), compare_votes);
    counting = malloc(((size_t)n_votes + 1) * sizeof(Counting));
    if (counting == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t n_counting = 0;
    for (int64_t first = 0, last; first < n_votes; first = last) {
        last = first + 1;
        while (last < n_votes && votes[last].kind == votes[first].kind &&
               votes[last].diagonal == votes[first].diagonal)
            last++;
        int64_t kmers = last - first;
        if (kmers < min_kmers) continue;
        int adjacent = 0;
        for (int64_t i = first + 1; i < last && !adjacent; i++)
            adjacent = votes[i].position - votes[i - 1].position == 1;
        if (!adjacent) continue;
        int64_t index = votes[first].kind / 2, is_reverse = votes[first].kind % 2;
        int64_t diagonal = votes[first].diagonal;
        if (index < 0 || index >= n_constructs) {
            PyErr_SetString(PyExc_ValueError, "construct index out of range");
            goto done;
        }
        const uint8_t *read = is_reverse ? complement : upper;
        const uint8_t *reference = references[index].buf;
        int64_t reference_length = references[index].len;
        int64_t begin = diagonal < 0 ? -diagonal : 0;
        int64_t end = length < reference_length - diagonal ? length : reference_length - diagonal;
        int64_t overlap = 0, mismatches = 0;
        if (end > begin) {
            overlap = end - begin;
            for (int64_t i = begin; i < end; i++)
                mismatches += read[i] != reference[diagonal + i] && read[i] != 'N';
        }
        if ((double)mismatches > max_fraction * (double)overlap) continue;
        counting[n_counting++] = (Counting){index, is_reverse, diagonal, kmers, overlap, mismatches};
    }
    if (n_counting == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    int64_t best = 0;
    for (int64_t i = 1; i < n_counting; i++)
        if (counting[i].kmers > counting[best].kmers ||
            (counting[i].kmers == counting[best].kmers &&
             counting[i].mismatches < counting[best].mismatches))
            best = i;
    for (int64_t i = 0; i < n_counting; i++)
        if (counting[i].kmers == counting[best].kmers &&
            counting[i].mismatches == counting[best].mismatches &&
            counting[i].construct != counting[best].construct) {
            result = PyLong_FromLong(-1);
            goto done;
        }
    Counting *chosen = &counting[best];
    result = Py_BuildValue("LOLLLLL", (long long)chosen->construct,
                           chosen->reverse ? Py_True : Py_False, (long long)chosen->diagonal,
                           (long long)length, (long long)chosen->kmers, (long long)chosen->overlap,
                           (long long)chosen->mismatches);
done:
    for (Py_ssize_t i = 0; i < n_references; i++) PyBuffer_Release(&references[i]);
    PyMem_Free(references);
    free(upper);
    free(complement);
    free(starts);
    free(hit_codes);
    free(votes);
    free(counting);
    release_lookup(&views);
    PyBuffer_Release(&sequence);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&construct);
    PyBuffer_Release(&position);
    PyBuffer_Release(&reverse);
    return result;
}

/* --- allele counting at variant sites (carmscope.ctdna.bamscan) ---------------------------- */

/* Status codes of count_observations (bamscan._NEED_DATA ... _MALFORMED). */
enum { SCAN_NEED_DATA = 0, SCAN_DONE = 1, SCAN_FULL = 2, SCAN_UNSUPPORTED = 3, SCAN_MALFORMED = 4 };

#define FNV_OFFSET UINT64_C(0xCBF29CE484222325)
#define FNV_PRIME UINT64_C(0x100000001B3)
#define MAX_COMBINED_QUALITY 200

static uint32_t CRC_TABLE[256];

static void init_crc_table(void) {
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t value = byte;
        for (int i = 0; i < 8; i++) value = (value & 1) ? (value >> 1) ^ 0xEDB88320u : value >> 1;
        CRC_TABLE[byte] = value;
    }
}

static inline int is_aligned_op(uint32_t op) { return op == 0 || op == 7 || op == 8; }

/* One read's CIGAR and bases, as the observers need them. */
typedef struct {
    const uint8_t *cigar; /* n_cigar little-endian uint32 */
    int64_t n_cigar, start, end;
    const uint8_t *sequence; /* 4-bit packed */
    const uint8_t *qualities;
    int has_qualities;
} Read;

/* Query index aligned to a reference position, or -1 (gap, clip or not covered). */
static int64_t query_position(const Read *read, int64_t ref_pos) {
    int64_t ref = read->start, query = 0;
    for (int64_t i = 0; i < read->n_cigar; i++) {
        uint32_t value = u32_at(read->cigar + 4 * i), op = value & 15;
        int64_t length = value >> 4;
        if (is_aligned_op(op)) {
            if (ref <= ref_pos && ref_pos < ref + length) return query + ref_pos - ref;
            ref += length;
            query += length;
        } else if (op == 1 || op == 4) {
            query += length;
        } else if (op == 2 || op == 3) {
            ref += length;
        }
    }
    return -1;
}

/* Whether a deletion or skip spans exactly (exact) or overlaps [gap_start, gap_end). */
static int gap_in(const Read *read, int64_t gap_start, int64_t gap_end, int exact) {
    int64_t ref = read->start;
    for (int64_t i = 0; i < read->n_cigar; i++) {
        uint32_t value = u32_at(read->cigar + 4 * i), op = value & 15;
        int64_t length = value >> 4;
        if (op == 2 || op == 3) {
            if (exact ? (ref == gap_start && ref + length == gap_end)
                      : (ref < gap_end && gap_start < ref + length))
                return 1;
            ref += length;
        } else if (is_aligned_op(op)) {
            ref += length;
        }
    }
    return 0;
}

/* Query start and length of the (last) insertion right before ref_pos; start -1 if none. */
static int64_t insertion_before(const Read *read, int64_t ref_pos, int64_t *found_length) {
    int64_t ref = read->start, query = 0, found = -1;
    *found_length = 0;
    for (int64_t i = 0; i < read->n_cigar; i++) {
        uint32_t value = u32_at(read->cigar + 4 * i), op = value & 15;
        int64_t length = value >> 4;
        if (is_aligned_op(op)) {
            ref += length;
            query += length;
        } else if (op == 1) {
            if (ref == ref_pos) {
                found = query;
                *found_length = length;
            }
            query += length;
        } else if (op == 4) {
            query += length;
        } else if (op == 2 || op == 3) {
            ref += length;
        }
    }
    return found;
}

/* Whether an insertion sits right before a reference position in (low, high]. */
static int insertion_within(const Read *read, int64_t low, int64_t high) {
    int64_t ref = read->start;
    for (int64_t i = 0; i < read->n_cigar; i++) {
        uint32_t value = u32_at(read->cigar + 4 * i), op = value & 15;
        int64_t length = value >> 4;
        if (is_aligned_op(op) || op == 2 || op == 3)
            ref += length;
        else if (op == 1 && low < ref && ref <= high)
            return 1;
    }
    return 0;
}

static inline int base_at(const Read *read, int64_t query) {
    uint8_t packed = read->sequence[query >> 1];
    return (query & 1) == 0 ? packed >> 4 : packed & 15;
}

static inline int64_t quality_at(const Read *read, int64_t query) {
    return read->has_qualities ? (int64_t)read->qualities[query] : 0;
}

/* The sites of one cluster (see bamscan._site_arrays). */
typedef struct {
    const int64_t *anchors;
    const int8_t *kinds; /* 0 SNV, 1 insertion, 2 deletion */
    const int8_t *ref_codes, *alt_codes;
    const int64_t *inserted_at, *inserted_length;
    const uint8_t *inserted_codes;
    const int64_t *deleted_length;
    int64_t n_sites, flank;
} Sites;

/* Allele (0 ref, 1 alt, 2 other; -1: not counted here) a read shows at one site, and its base
 * quality: the rules of the observers in carmscope.ctdna.pileup. */
static int observe(const Read *read, const Sites *sites, int64_t site, int64_t *quality) {
    int kind = sites->kinds[site];
    int64_t anchor = sites->anchors[site];
    *quality = 0;
    if (kind == 0) {
        int64_t query = query_position(read, anchor);
        if (query < 0) return -1;
        int base = base_at(read, query);
        *quality = quality_at(read, query);
        return base == sites->ref_codes[site] ? 0 : base == sites->alt_codes[site] ? 1 : 2;
    }
    int64_t after = kind == 1 ? anchor + 1 : anchor + sites->deleted_length[site] + 1;
    if (anchor - read->start + 1 < sites->flank || read->end - after < sites->flank) return -1;
    int64_t query = query_position(read, anchor);
    if (query < 0) return -1;
    int64_t base_quality = quality_at(read, query);
    if (kind == 1) { /* insertion */
        int deleted_next = gap_in(read, anchor + 1, anchor + 2, 0);
        if (!deleted_next && query_position(read, after) < 0) return -1;
        int64_t length;
        int64_t inserted = insertion_before(read, anchor + 1, &length);
        if (inserted >= 0) {
            int same = length == sites->inserted_length[site];
            const uint8_t *expected = sites->inserted_codes + sites->inserted_at[site];
            for (int64_t offset = 0; offset < length; offset++) {
                int64_t q = quality_at(read, inserted + offset);
                if (q < base_quality) base_quality = q;
                if (same && base_at(read, inserted + offset) != expected[offset]) same = 0;
            }
            *quality = base_quality;
            return same ? 1 : 2;
        }
        *quality = base_quality;
        return deleted_next ? 2 : 0;
    }
    /* deletion */
    *quality = base_quality;
    if (gap_in(read, anchor + 1, after, 1)) return 1;
    if (gap_in(read, anchor + 1, after, 0) || insertion_within(read, anchor, after)) return 2;
    if (query_position(read, after) < 0) {
        *quality = 0;
        return -1;
    }
    return 0;
}

/* Flat output arrays: one observation per read and site. */
typedef struct {
    int64_t *site;
    int8_t *allele;
    int16_t *quality;
    uint8_t *reverse;
    uint64_t *key;
    uint32_t *crc;
    int64_t capacity;
} Observations;

/* Walk the records of data[0:size) and write one observation per read and site it spans; see
 * count_observations below. */
static int64_t walk_sites(const uint8_t *data, int64_t size, int64_t tid, int64_t stop,
                          const Sites *sites, int64_t excluded, int improper,
                          int64_t min_mapping_quality, int by_name, int64_t *state,
                          Observations *out, int *status) {
    int64_t first = state[0], ordinal = state[1], n_out = state[2];
    const int64_t last = sites->n_sites;
    int64_t at = 0;
    *status = SCAN_NEED_DATA;
    while (at + 4 <= size) {
        const uint8_t *record = data + at;
        int64_t block_size = i32_at(record);
        if (block_size < 32) {
            *status = SCAN_MALFORMED;
            break;
        }
        if (at + 4 + block_size > size) break;
        int64_t record_end = at + 4 + block_size;
        int64_t ref_id = i32_at(record + 4), start = i32_at(record + 8);
        if (ref_id != tid) {
            if (0 <= ref_id && ref_id < tid) { /* an earlier contig's read */
                at = record_end;
                continue;
            }
            *status = SCAN_DONE;
            break;
        }
        if (start >= stop) {
            *status = SCAN_DONE;
            break;
        }
        while (first < last && sites->anchors[first] < start) first++;
        if (first == last) {
            *status = SCAN_DONE;
            break;
        }
        int64_t name_length = record[12], mapping_quality = record[13];
        int64_t n_cigar = u16_at(record + 16), flag = u16_at(record + 18);
        int64_t l_seq = i32_at(record + 20);
        int64_t cigar_at = at + 36 + name_length;
        int64_t sequence_at = cigar_at + 4 * n_cigar;
        int64_t qualities_at = sequence_at + (l_seq + 1) / 2;
        if (l_seq < 0 || qualities_at + l_seq > record_end) {
            *status = SCAN_MALFORMED;
            break;
        }
        if (n_cigar > 0 && l_seq > 0) {
            uint32_t value = u32_at(data + cigar_at);
            if ((value & 15) == 4 && (int64_t)(value >> 4) == l_seq) { /* CIGAR in a CG tag */
                *status = SCAN_UNSUPPORTED;
                break;
            }
        }
        if ((flag & 4) || n_cigar == 0) { /* pysam: no reference_end */
            ordinal++;
            at = record_end;
            continue;
        }
        int64_t end = start;
        for (int64_t i = 0; i < n_cigar; i++) {
            uint32_t value = u32_at(data + cigar_at + 4 * i), op = value & 15;
            if (op == 0 || op == 2 || op == 3 || op == 7 || op == 8) end += value >> 4;
        }
        if (end == start) end = start + 1; /* as bam_endpos */
        if (end <= sites->anchors[first]) {
            ordinal++;
            at = record_end;
            continue;
        }
        int64_t beyond = first;
        while (beyond < last && sites->anchors[beyond] < end) beyond++;
        if ((flag & excluded) || (improper && (flag & 1) && !(flag & 2)) ||
            mapping_quality < min_mapping_quality || l_seq == 0) {
            ordinal++;
            at = record_end;
            continue;
        }
        if (n_out + beyond - first > out->capacity) {
            *status = SCAN_FULL;
            break;
        }
        Read read = {data + cigar_at, n_cigar, start, end, data + sequence_at,
                     data + qualities_at, data[qualities_at] != 255};
        uint64_t key;
        uint32_t crc;
        if (by_name) {
            key = FNV_OFFSET;
            crc = 0xFFFFFFFFu;
            for (int64_t i = at + 36; i < at + 36 + name_length - 1; i++) { /* without the NUL */
                uint8_t byte = data[i];
                key = (key ^ byte) * FNV_PRIME;
                crc = CRC_TABLE[(crc ^ byte) & 255] ^ (crc >> 8);
            }
            crc ^= 0xFFFFFFFFu;
            key ^= (uint64_t)name_length << 56;
        } else {
            key = (uint64_t)ordinal;
            crc = 0;
        }
        int reverse = (flag & 16) != 0;
        for (int64_t site = first; site < beyond; site++) {
            int64_t quality;
            int allele = observe(&read, sites, site, &quality);
            if (allele >= 0) {
                out->site[n_out] = site;
                out->allele[n_out] = (int8_t)allele;
                out->quality[n_out] = (int16_t)quality;
                out->reverse[n_out] = (uint8_t)reverse;
                out->key[n_out] = key;
                out->crc[n_out] = crc;
                n_out++;
            }
        }
        ordinal++;
        at = record_end;
    }
    state[0] = first;
    state[1] = ordinal;
    state[2] = n_out;
    return at;
}

/* Buffers of one call, released together. */
typedef struct {
    Py_buffer views[24];
    int n;
} Views;

static void release_views(Views *views) {
    for (int i = 0; i < views->n; i++) PyBuffer_Release(&views->views[i]);
    views->n = 0;
}

/* A view of an array of `count` items of `itemsize` bytes (count -1: any); NULL on error. */
static void *view_of(Views *views, PyObject *object, Py_ssize_t itemsize, Py_ssize_t count,
                     int writable, const char *name) {
    Py_buffer *view = &views->views[views->n];
    if (PyObject_GetBuffer(object, view, writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0)
        return NULL;
    views->n++;
    if (view->len % itemsize != 0 || (count >= 0 && view->len / itemsize < count)) {
        PyErr_Format(PyExc_ValueError, "%s: wrong size", name);
        return NULL;
    }
    return view->buf;
}

/* count_observations(buffer, tid, stop, anchors, kinds, ref_codes, alt_codes, inserted_at,
 *     inserted_length, inserted_codes, deleted_length, flank, excluded, improper,
 *     min_mapping_quality, by_name, state, out_site, out_allele, out_quality, out_reverse,
 *     out_key, out_crc) -> (offset reached, status); see carmscope.ctdna.bamscan. */
static PyObject *py_count_observations(PyObject *self, PyObject *args) {
    PyObject *buffer, *anchors, *kinds, *ref_codes, *alt_codes, *inserted_at, *inserted_length,
        *inserted_codes, *deleted_length, *state, *o_site, *o_allele, *o_quality, *o_reverse,
        *o_key, *o_crc;
    long long tid, stop, flank, excluded, min_mapping_quality;
    int improper, by_name;
    if (!PyArg_ParseTuple(args, "OLLOOOOOOOOLLpLpOOOOOOO", &buffer, &tid, &stop, &anchors, &kinds,
                          &ref_codes, &alt_codes, &inserted_at, &inserted_length, &inserted_codes,
                          &deleted_length, &flank, &excluded, &improper, &min_mapping_quality,
                          &by_name, &state, &o_site, &o_allele, &o_quality, &o_reverse, &o_key,
                          &o_crc))
        return NULL;
    Views views = {.n = 0};
    PyObject *result = NULL;
    const uint8_t *data = view_of(&views, buffer, 1, -1, 0, "buffer");
    if (data == NULL) goto done;
    Py_ssize_t size = views.views[views.n - 1].len;
    Sites sites;
    sites.anchors = view_of(&views, anchors, 8, -1, 0, "anchors");
    if (sites.anchors == NULL) goto done;
    sites.n_sites = views.views[views.n - 1].len / 8;
    int64_t n = sites.n_sites;
    if ((sites.kinds = view_of(&views, kinds, 1, n, 0, "kinds")) == NULL ||
        (sites.ref_codes = view_of(&views, ref_codes, 1, n, 0, "ref_codes")) == NULL ||
        (sites.alt_codes = view_of(&views, alt_codes, 1, n, 0, "alt_codes")) == NULL ||
        (sites.inserted_at = view_of(&views, inserted_at, 8, n, 0, "inserted_at")) == NULL ||
        (sites.inserted_length = view_of(&views, inserted_length, 8, n, 0, "inserted_length")) ==
            NULL ||
        (sites.inserted_codes = view_of(&views, inserted_codes, 1, -1, 0, "inserted_codes")) ==
            NULL)
        goto done;
    Py_ssize_t n_inserted = views.views[views.n - 1].len;
    if ((sites.deleted_length = view_of(&views, deleted_length, 8, n, 0, "deleted_length")) == NULL)
        goto done;
    for (int64_t i = 0; i < n; i++) /* the kernel trusts these: check them once */
        if (sites.kinds[i] < 0 || sites.kinds[i] > 2 ||
            (sites.kinds[i] == 1 && (sites.inserted_at[i] < 0 || sites.inserted_length[i] < 0 ||
                                     sites.inserted_at[i] + sites.inserted_length[i] > n_inserted))) {
            PyErr_SetString(PyExc_ValueError, "site arrays out of range");
            goto done;
        }
    sites.flank = flank;
    int64_t *counters = view_of(&views, state, 8, 3, 1, "state");
    if (counters == NULL) goto done;
    Observations out;
    if ((out.site = view_of(&views, o_site, 8, -1, 1, "out_site")) == NULL) goto done;
    out.capacity = views.views[views.n - 1].len / 8;
    int64_t capacity = out.capacity;
    if ((out.allele = view_of(&views, o_allele, 1, capacity, 1, "out_allele")) == NULL ||
        (out.quality = view_of(&views, o_quality, 2, capacity, 1, "out_quality")) == NULL ||
        (out.reverse = view_of(&views, o_reverse, 1, capacity, 1, "out_reverse")) == NULL ||
        (out.key = view_of(&views, o_key, 8, capacity, 1, "out_key")) == NULL ||
        (out.crc = view_of(&views, o_crc, 4, capacity, 1, "out_crc")) == NULL)
        goto done;
    if (counters[2] < 0 || counters[2] > capacity || counters[0] < 0 || counters[0] > n) {
        PyErr_SetString(PyExc_ValueError, "state out of range");
        goto done;
    }
    int status;
    int64_t reached;
    Py_BEGIN_ALLOW_THREADS
    reached = walk_sites(data, size, tid, stop, &sites, excluded, improper, min_mapping_quality,
                         by_name, counters, &out, &status);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("Li", (long long)reached, status);
done:
    release_views(&views);
    return result;
}

/* tally_fragments(site, allele, quality, reverse, key, crc, min_base_quality, counts):
 * group the observations (in file order) into fragments (one site and read name each),
 * resolve each to one observation and count it; counts: int64 (n_sites, 8), see
 * carmscope.ctdna.bamscan. */
static PyObject *py_tally_fragments(PyObject *self, PyObject *args) {
    PyObject *o_site, *o_allele, *o_quality, *o_reverse, *o_key, *o_crc, *o_counts;
    long long min_base_quality;
    if (!PyArg_ParseTuple(args, "OOOOOOLO", &o_site, &o_allele, &o_quality, &o_reverse, &o_key,
                          &o_crc, &min_base_quality, &o_counts))
        return NULL;
    Views views = {.n = 0};
    PyObject *result = NULL;
    int64_t *slots = NULL, *following = NULL, *tail = NULL;
    const int64_t *site = view_of(&views, o_site, 8, -1, 0, "site");
    if (site == NULL) goto done;
    int64_t n = views.views[views.n - 1].len / 8;
    const int8_t *allele;
    const int16_t *quality;
    const uint8_t *reverse;
    const uint64_t *key;
    const uint32_t *crc;
    if ((allele = view_of(&views, o_allele, 1, n, 0, "allele")) == NULL ||
        (quality = view_of(&views, o_quality, 2, n, 0, "quality")) == NULL ||
        (reverse = view_of(&views, o_reverse, 1, n, 0, "reverse")) == NULL ||
        (key = view_of(&views, o_key, 8, n, 0, "key")) == NULL ||
        (crc = view_of(&views, o_crc, 4, n, 0, "crc")) == NULL)
        goto done;
    int64_t *counts = view_of(&views, o_counts, 8, -1, 1, "counts");
    if (counts == NULL) goto done;
    int64_t n_rows = views.views[views.n - 1].len / 64;
    for (int64_t i = 0; i < n; i++)
        if (site[i] < 0 || site[i] >= n_rows || allele[i] < 0 || allele[i] > 2) {
            PyErr_SetString(PyExc_ValueError, "observation out of range");
            goto done;
        }
    int64_t size = 16;
    while (size < 2 * n) size <<= 1;
    uint64_t mask = (uint64_t)size - 1;
    slots = malloc((size_t)size * sizeof(int64_t));
    following = malloc(((size_t)n + 1) * sizeof(int64_t));
    tail = malloc(((size_t)n + 1) * sizeof(int64_t));
    if (slots == NULL || following == NULL || tail == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (int64_t i = 0; i < size; i++) slots[i] = -1;
    for (int64_t i = 0; i < n; i++) following[i] = -1;
    /* tail[i] >= 0 marks i as the first observation of its fragment (then: its last one) */
    for (int64_t i = 0; i < n; i++) {
        tail[i] = -1;
        uint64_t mixed = key[i] ^ ((uint64_t)crc[i] * UINT64_C(0x9E3779B97F4A7C15)) ^
                         ((uint64_t)site[i] * UINT64_C(0xC2B2AE3D27D4EB4F));
        mixed = (mixed ^ (mixed >> 33)) * UINT64_C(0xFF51AFD7ED558CCD);
        uint64_t slot = (mixed ^ (mixed >> 33)) & mask;
        for (;;) {
            int64_t head = slots[slot];
            if (head < 0) {
                slots[slot] = i;
                tail[i] = i;
                break;
            }
            if (site[head] == site[i] && key[head] == key[i] && crc[head] == crc[i]) {
                following[tail[head]] = i;
                tail[head] = i;
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    for (int64_t head = 0; head < n; head++) {
        if (tail[head] < 0) continue;
        int64_t chosen = head, chosen_quality = quality[head];
        if (following[head] >= 0) {
            int64_t members = 0, total = 0, best = -1;
            int same = 1;
            for (int64_t member = head; member >= 0; member = following[member]) {
                members++;
                total += quality[member];
                if (allele[member] != allele[head]) same = 0;
                if (quality[member] > best) best = quality[member];
            }
            if (same) { /* the mate whose strand counts: pseudo-random by read name (CRC32) */
                chosen = head;
                for (int64_t step = crc[head] % (uint64_t)members; step > 0; step--)
                    chosen = following[chosen];
                chosen_quality = total < MAX_COMBINED_QUALITY ? total : MAX_COMBINED_QUALITY;
            } else { /* the best mate; a tie between different alleles: neither counts */
                chosen = -1;
                for (int64_t member = head; member >= 0; member = following[member]) {
                    if (quality[member] != best) continue;
                    if (chosen >= 0 && allele[member] != allele[chosen]) {
                        chosen = -2;
                        break;
                    }
                    chosen = member;
                }
                chosen_quality = best;
            }
        }
        if (chosen < 0 || chosen_quality < min_base_quality) continue;
        int64_t *row = counts + 8 * site[chosen];
        int code = allele[chosen];
        row[code]++;
        row[3]++;
        if (code < 2) row[4 + 2 * code + (reverse[chosen] ? 1 : 0)]++;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    free(slots);
    free(following);
    free(tail);
    release_views(&views);
    return result;
}

static PyObject *py_libdeflate(PyObject *self, PyObject *unused) {
    if (ld_source == NULL) Py_RETURN_NONE;
    return Py_NewRef(ld_source);
}

/* --- module -------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"fill", py_fill, METH_VARARGS, "fill(table, bits, filter, filter_bits, codes)"},
    {"contains", py_contains, METH_VARARGS, "contains(table, bits, filter, filter_bits, key)"},
    {"ascii_hits", py_ascii_hits, METH_VARARGS,
     "ascii_hits(buffer, start, end, table, bits, filter, filter_bits, k, limit) -> hits"},
    {"ascii_hit_codes", py_ascii_hit_codes, METH_VARARGS,
     "ascii_hit_codes(buffer, table, bits, filter, filter_bits, k, starts, codes) -> n"},
    {"flag_lines", py_flag_lines, METH_VARARGS,
     "flag_lines(buffer, table, bits, filter, filter_bits, k, flags) -> lines"},
    {"scan_fastq_chunk", py_scan_fastq_chunk, METH_VARARGS,
     "scan_fastq_chunk(buffer, final, table, bits, filter, filter_bits, k, candidates)"},
    {"scan_records", py_scan_records, METH_VARARGS,
     "scan_records(buffer, stop, table, bits, filter, filter_bits, k, candidates[, prefilter])"},
    {"parse_record", py_parse_record, METH_VARARGS,
     "parse_record(record, wanted) -> (name, flag, reference_id, sequence, tags)"},
    {"place", py_place, METH_VARARGS,
     "place(sequence, table, bits, filter, filter_bits, k, codes, offsets, construct, "
     "position, reverse, constructs, min_kmers, max_mismatch_fraction)"},
    {"count_observations", py_count_observations, METH_VARARGS,
     "count_observations(buffer, tid, stop, anchors, kinds, ref_codes, alt_codes, inserted_at, "
     "inserted_length, inserted_codes, deleted_length, flank, excluded, improper, "
     "min_mapping_quality, by_name, state, out_site, out_allele, out_quality, out_reverse, "
     "out_key, out_crc) -> (offset reached, status)"},
    {"tally_fragments", py_tally_fragments, METH_VARARGS,
     "tally_fragments(site, allele, quality, reverse, key, crc, min_base_quality, counts)"},
    {"libdeflate", py_libdeflate, METH_NOARGS, "Where libdeflate was found (None: nowhere)."},
    {NULL}};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "Compiled BGZF/BAM kernels of carmscope (CAR scan, ctDNA allele counting).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    init_tables();
    init_crc_table();
    resolve_libdeflate();
    if (PyType_Ready(&BamWalkerType) < 0) return NULL;
    PyObject *module = PyModule_Create(&module_definition);
    if (module == NULL) return NULL;
    FormatError = PyErr_NewException("carmscope.bam._native.FormatError", PyExc_ValueError, NULL);
    if (FormatError == NULL || PyModule_AddObjectRef(module, "FormatError", FormatError) < 0 ||
        PyModule_AddObjectRef(module, "BamWalker", (PyObject *)&BamWalkerType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
