/*
 * common/xalloc.h -- canopy's one out-of-memory policy: log and abort.
 *
 * Every allocation in canopy goes through these (or, for a library that
 * allocates for us -- jansson, libcurl, libldap -- its result goes through
 * xcheck()). On failure they write one line to stderr naming the size and
 * the call site, then abort(). Redis does the same (zmalloc_oom_handler).
 *
 * Why abort rather than unwind: an agent that cannot allocate is a broken
 * node, and the cluster is built for broken nodes. The replicated cursor only
 * moves after a change is done in the target and committed (docs/
 * architecture.md, "No lost change"), so a dead agent loses nothing: another
 * one leads within the election timeout and resumes from the committed
 * cursor; systemd restarts this one. Unwinding every allocation instead means
 * thousands of error paths that no test runs, and a missed one does worse
 * than crash: a failed map insert that reads as "absent" plans a DELETE, a
 * failed record encode drops a record while the cursor moves on.
 *
 * Not for sizes that come from the network or from files (a 4 GB
 * Content-Length): those are input, capped and refused with an error where
 * they are parsed. Allocation failure there is still an abort, but the cap
 * makes it unreachable.
 */
#ifndef CANOPY_COMMON_XALLOC_H
#define CANOPY_COMMON_XALLOC_H

#include <stddef.h>

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t nmemb, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
char *xstrndup_at(const char *s, size_t n, const char *file, int line);
/* `p` from an allocator canopy does not own (json_object(), curl_slist_append(),
 * ber_dupbv(), ...): returned as is, or abort when NULL. */
void *xcheck_at(void *p, const char *what, const char *file, int line);
/* An allocation failure reported as a code (-ENOMEM, RAFT_NOMEM, ...). */
_Noreturn void xoom_at(const char *what, const char *file, int line);

#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(m, n) xcalloc_at((m), (n), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
#define xstrndup(s, n) xstrndup_at((s), (n), __FILE__, __LINE__)
#define xcheck(p) xcheck_at((p), #p, __FILE__, __LINE__)
#define xoom(what) xoom_at((what), __FILE__, __LINE__)

/*
 * How freed memory goes back to the system; call once at start, before any
 * thread. glibc raises its mmap threshold to the size of every large block
 * freed (up to 32 MiB) and its trim threshold to twice that, so after the
 * first snapshot of a large table (a buffer of the table's size, malloc(3),
 * "M_MMAP_THRESHOLD") every later buffer under 32 MiB -- log entries, decoded
 * batches, snapshot pieces -- lives in the heap and up to 64 MiB of freed heap
 * is never returned: at a million objects that was a third of an agent's RSS
 * (docs/benchmarks.md). A fixed threshold of XALLOC_MMAP_THRESHOLD keeps large
 * blocks in their own mappings, returned when freed, and the heap trimmed.
 * A no-op outside glibc.
 */
#define XALLOC_MMAP_THRESHOLD (1u << 20)
void xalloc_setup(void);

/* Tests only: make the n-th allocation from now fail (1 = the next one; 0 =
 * never), to show that a failure aborts rather than going on. */
void xalloc_fail_after(unsigned long n);

#endif /* CANOPY_COMMON_XALLOC_H */
