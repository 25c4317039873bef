/*
 * sync/target/target.c -- the parts of the target vocabulary (target.h) that
 * every target shares.
 */
#include "sync/target/target.h"

const char *target_action_name(enum target_action a)
{
	switch (a) {
	case TARGET_UPSERT:
		return "upsert";
	case TARGET_DISABLE:
		return "disable";
	case TARGET_DELETE:
		return "delete";
	case TARGET_MEMBERS:
		return "members";
	case TARGET_MANAGER:
		return "manager";
	case TARGET_TAKEN:
		return "taken";
	}
	return "unknown";
}
