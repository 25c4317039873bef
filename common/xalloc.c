/* common/xalloc.c -- see xalloc.h: log the failure and abort. */
#include "common/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static unsigned long fail_after; /* tests: 0 = never */

void xalloc_setup(void)
{
#ifdef __GLIBC__
	/* setting it turns glibc's dynamic mmap and trim thresholds off */
	mallopt(M_MMAP_THRESHOLD, XALLOC_MMAP_THRESHOLD);
#endif
}

void xalloc_fail_after(unsigned long n)
{
	fail_after = n;
}

static int injected(void)
{
	return fail_after != 0 && --fail_after == 0;
}

_Noreturn void xoom_at(const char *what, const char *file, int line)
{
	fprintf(stderr, "canopy: out of memory: %s at %s:%d; aborting (the cluster resumes from the committed cursor)\n",
		what, file, line);
	fflush(stderr);
	abort();
}

static _Noreturn void oom_size(size_t n, const char *file, int line)
{
	char what[64];
	snprintf(what, sizeof what, "%zu bytes", n);
	xoom_at(what, file, line);
}

void *xmalloc_at(size_t n, const char *file, int line)
{
	void *p = injected() ? NULL : malloc(n ? n : 1);
	if (p == NULL)
		oom_size(n, file, line);
	return p;
}

void *xcalloc_at(size_t nmemb, size_t size, const char *file, int line)
{
	void *p = injected() ? NULL : calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		oom_size(nmemb * size, file, line);
	return p;
}

void *xrealloc_at(void *old, size_t n, const char *file, int line)
{
	void *p = injected() ? NULL : realloc(old, n ? n : 1);
	if (p == NULL)
		oom_size(n, file, line);
	return p;
}

char *xstrdup_at(const char *s, const char *file, int line)
{
	char *p = injected() ? NULL : strdup(s);
	if (p == NULL)
		oom_size(strlen(s) + 1, file, line);
	return p;
}

char *xstrndup_at(const char *s, size_t n, const char *file, int line)
{
	char *p = injected() ? NULL : strndup(s, n);
	if (p == NULL)
		oom_size(n + 1, file, line);
	return p;
}

void *xcheck_at(void *p, const char *what, const char *file, int line)
{
	if (p == NULL || injected())
		xoom_at(what, file, line);
	return p;
}
