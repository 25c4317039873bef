/*
 * sync/object.h -- vocabulary shared by sources, transform, targets and the
 * engine. Deliberately tiny: the modules meet only in sync/engine/, through
 * the ports (sync/source/source.h, sync/target/target.h).
 */
#ifndef CANOPY_SYNC_OBJECT_H
#define CANOPY_SYNC_OBJECT_H

#include <stddef.h>

enum object_type {
	OBJECT_UNKNOWN = 0,
	OBJECT_USER = 1,
	OBJECT_GROUP = 2,
};

/* "user" / "group" / "unknown" */
const char *object_type_name(enum object_type t);

/* One attribute of a source entry: all its values, in server order. Names are
 * as the server returned them; compare case-insensitively (RFC 4512 §2.5). */
struct object_attr {
	char *name;
	char **values; /* NUL-terminated text; a binary value is given as base64
			* (sync/base64.h), as the AD source does (docs/active-directory.md,
			* "Binary attributes") */
	size_t n_values;
};

#endif /* CANOPY_SYNC_OBJECT_H */
