/*
 * sync/member_value.h -- the values of a group's member attribute, as the
 * directory gives them (docs/sources.md, "Membership shapes").
 *
 * Three shapes reach the engine: `member` (groupOfNames) holds DNs,
 * `uniqueMember` (groupOfUniqueNames) holds a DN with an optional unique
 * identifier after it, and `memberUid` (RFC 2307 posixGroup) holds the uid
 * of a user, not a DN. This module only splits and compares values; which
 * shape a group uses is source.groups.member_attribute / member_value.
 */
#ifndef CANOPY_SYNC_MEMBER_VALUE_H
#define CANOPY_SYNC_MEMBER_VALUE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The length of the DN part of a NameAndOptionalUID value (RFC 4517
 * §3.3.21, the syntax of uniqueMember): "uid=jdoe,dc=example,dc=com#'0101'B"
 * -> the length of "uid=jdoe,dc=example,dc=com". The suffix is a '#'
 * followed by a BitString (a quoted run of 0 and 1, then B) that ends the
 * value; a '#' escaped in the DN ("\#", RFC 4514 §2.4) is part of the DN.
 * A value without a valid suffix is all DN: strlen(v). Never reads past
 * the NUL.
 */
size_t member_value_dn_len(const char *v);

/* Whether `attr` names the uniqueMember attribute (RFC 4519 §2.40), whose
 * values carry the optional suffix above. Case-insensitive (RFC 4512 §2.5). */
bool member_value_is_unique_member(const char *attr);

#endif /* CANOPY_SYNC_MEMBER_VALUE_H */
