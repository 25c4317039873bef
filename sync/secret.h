/*
 * sync/secret.h -- read a secret (password, bearer token) from a file.
 *
 * One reader for every secret file, used at start-up (agent/config.c) and on
 * every runtime re-read (the source before each bind, the target on a 401 and
 * before quarantine probes, the health probes), so that the same checks apply
 * each time: the file must be a regular file, not readable by group or others,
 * at most SECRET_MAX bytes; one trailing newline (LF or CRLF) is dropped; an
 * empty secret, or one with a NUL, CR, LF or other control character inside,
 * is refused (a CR/LF in a token would otherwise become extra HTTP headers).
 */
#ifndef CANOPY_SYNC_SECRET_H
#define CANOPY_SYNC_SECRET_H

#include <stddef.h>

#define SECRET_MAX (64 * 1024)

/*
 * Read `file` into *out (malloc'd, NUL-terminated; the caller wipes it with
 * secret_free). Returns 0, or a negative errno with errmsg naming the file and
 * the cause (never the secret): -ENOENT/-EACCES/... from open, -EACCES for a
 * group/world-readable file, -EINVAL for a non-regular file, an empty secret
 * or a control character, -EFBIG when too large (more than SECRET_MAX; the
 * size is checked before anything is allocated).
 */
int secret_read(const char *file, char **out, char *errmsg, size_t errlen);

/*
 * The file checks of secret_read alone, for a secret whose content another
 * library reads (a Kerberos keytab, binary): a regular file, not readable by
 * group or others, that this process can open. Returns 0 or a negative errno
 * with errmsg as secret_read's.
 */
int secret_check(const char *file, char *errmsg, size_t errlen);
/* Zero and free a secret (NULL is fine). */
void secret_free(char *secret);

#endif /* CANOPY_SYNC_SECRET_H */
