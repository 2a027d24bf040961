/*
 * iapo.h — the public API of libiapo: load a Hugging Face Llama/Qwen2/Qwen3
 * model and its tokenizer, run it (training forward/backward, batched decoding),
 * and save it back as a Hugging Face directory.
 *
 * Conventions (SQLite style):
 *  - Every fallible function returns an iapo_status: 0 (IAPO_OK) or a negative
 *    code. The human-readable message of the last failure on the calling thread
 *    is iapo_errmsg(); it names the file, the field or line, what was expected
 *    and what was found.
 *  - Objects are opaque handles with load/new and free pairs; free(NULL)
 *    is a no-op. Unless stated, a handle is not safe to use from two threads at
 *    once; the library parallelises internally with OpenMP.
 *  - Results are written through pointers; arrays are owned by the caller
 *    unless a comment says otherwise.
 */
#ifndef IAPO_H
#define IAPO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IAPO_VERSION "0.1.0"

typedef int iapo_status;
enum {
	IAPO_OK = 0,
	IAPO_ERR_IO = -1,          /* open/read/write/rename failed */
	IAPO_ERR_FORMAT = -2,      /* a file's content is malformed or inconsistent */
	IAPO_ERR_NOMEM = -3,       /* allocation failed */
	IAPO_ERR_ARG = -4,         /* a caller passed an invalid argument */
	IAPO_ERR_UNSUPPORTED = -5, /* well-formed but not something we implement */
	IAPO_ERR_INTERNAL = -6,    /* a bug: an invariant did not hold */
	IAPO_ERR_NUMERIC = -7,     /* NaN/Inf where a finite value was required */
};

/* Last error message set on this thread ("" if none). Valid until the next
 * failing call on the same thread. */
const char *iapo_errmsg(void);
/* Short name of a status code, e.g. "format error". */
const char *iapo_status_str(iapo_status s);

/* Number of threads used by OpenMP and BLAS kernels (<=0: all cores). */
void iapo_set_threads(int n);
int iapo_get_threads(void);

/* One-line description of the build: version, BLAS, OpenMP, MPI. */
const char *iapo_build_info(void);

#ifdef __cplusplus
}
#endif
#endif /* IAPO_H */
