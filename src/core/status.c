/*
 * status.c — thread-local error messages and status names. Also the thread
 * count shared by OpenMP and OpenBLAS, and the build description.
 */
#include "core/status.h"
#include "dist/dist.h"
#include "kernels/kernels.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[2048];

const char *iapo_errmsg(void) { return errbuf; }

void iapo_clear_error(void) { errbuf[0] = '\0'; }

iapo_status iapo_fail(iapo_status s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
	return s;
}

iapo_status iapo_fail_prefix(iapo_status s, const char *fmt, ...)
{
	char prefix[1024], old[sizeof errbuf];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, errbuf, sizeof old);
	/* Truncation of an over-long message is acceptable; say so to the compiler. */
	size_t np = strlen(prefix);
	if (np > sizeof errbuf - 3) np = sizeof errbuf - 3;
	memcpy(errbuf, prefix, np);
	memcpy(errbuf + np, ": ", 2);
	size_t room = sizeof errbuf - np - 3, no = strnlen(old, room);
	memcpy(errbuf + np + 2, old, no);
	errbuf[np + 2 + no] = '\0';
	return s;
}

const char *iapo_status_str(iapo_status s)
{
	switch (s) {
	case IAPO_OK: return "ok";
	case IAPO_ERR_IO: return "I/O error";
	case IAPO_ERR_FORMAT: return "format error";
	case IAPO_ERR_NOMEM: return "out of memory";
	case IAPO_ERR_ARG: return "invalid argument";
	case IAPO_ERR_UNSUPPORTED: return "unsupported";
	case IAPO_ERR_INTERNAL: return "internal error";
	case IAPO_ERR_NUMERIC: return "numeric error";
	}
	return "unknown status";
}

/* OpenBLAS's own thread control; declared here to avoid depending on which
 * cblas.h variant is first on the include path. */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);

void iapo_set_threads(int n)
{
	if (n <= 0) n = omp_get_num_procs();
	omp_set_num_threads(n);
	openblas_set_num_threads(n);
}

int iapo_get_threads(void) { return omp_get_max_threads(); }

const char *iapo_build_info(void)
{
	static char buf[768];
	snprintf(buf, sizeof buf, "iapo %s (GEMM: %s; BLAS: %s; OpenMP %d; %s)", IAPO_VERSION, iapo_matmul_backend(),
		 openblas_get_config(), _OPENMP, iapo_dist_build_info());
	return buf;
}
