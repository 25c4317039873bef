/* sync/object.c -- see object.h: the object model's names. */
#include "sync/object.h"

const char *object_type_name(enum object_type t)
{
	switch (t) {
	case OBJECT_USER:
		return "user";
	case OBJECT_GROUP:
		return "group";
	case OBJECT_UNKNOWN:
		break;
	}
	return "unknown";
}
