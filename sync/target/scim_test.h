/*
 * sync/target/scim_test.h -- a hook into sync/target/scim_answer.c for fuzzing
 * (tests/fuzz/fuzz_scim_answer.c): one target answer through the checks and
 * readers an operation's answer meets, without a target or the network.
 */
#ifndef CANOPY_SYNC_TARGET_SCIM_TEST_H
#define CANOPY_SYNC_TARGET_SCIM_TEST_H

#include <stddef.h>

/*
 * Treat `body` (len bytes, any content) as the answer with status `http` to
 * the request of step `step` (taken modulo the number of steps): parse it,
 * decide whether it is usable (RFC 7644 shapes), describe it for the log,
 * pick the matching resource of a list, filter group members. Returns 1 when
 * the answer was judged usable, 0 when not.
 */
int scim_test_answer(unsigned step, long http, const char *body, size_t len);

#endif /* CANOPY_SYNC_TARGET_SCIM_TEST_H */
