/*
 * sync/source/openldap_sync.c -- RFC 4533 on one connection (worker thread):
 * the refresh and persist phases through libldap's ldap_sync_* client, and
 * its callbacks turned into source events (source.h) on the ring.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ldap_read.h"
#include "sync/source/openldap_internal.h"

static int uuid_text(const struct berval *u, char **out)
{
	const unsigned char *b = (const unsigned char *)u->bv_val;

	/* syncUUID is an OCTET STRING (SIZE(16)) (RFC 4533 §2.1) */
	if (u->bv_len != 16)
		return -EPROTO;
	*out = xmalloc(37);
	snprintf(*out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

static void entry_dn(LDAP *ld, LDAPMessage *msg, struct source_event *ev)
{
	char *dn = ldap_get_dn(ld, msg);

	if (dn == NULL)
		return; /* only informative for PRESENT / DELETE */
	ev->dn = xstrdup(dn);
	ldap_memfree(dn);
}

/* In the persist phase every new cookie goes with the event it came with:
 * the cursor is valid once that event is handled (source.h). */
static void attach_if_new(struct ldap_session *x, struct source_event *ev)
{
	if (x->refreshing || openldap__bv_eq(&x->ls.ls_cookie, &x->committed))
		return;
	openldap__bv_copy(&x->committed, &x->ls.ls_cookie);
	openldap__cursor_encode(x->src, &ev->cursor, &ev->cursor_len);
}

static int emit_entry(struct ldap_session *x, LDAPMessage *msg, struct berval *uuid, ldap_sync_refresh_t phase)
{
	LDAP *ld = x->ls.ls_ld;
	enum source_event_kind kind;
	struct source_event *ev;

	switch (phase) {
	case LDAP_SYNC_CAPI_PRESENT:
		kind = SOURCE_PRESENT;
		x->saw_present = true;
		break;
	case LDAP_SYNC_CAPI_DELETE:
		kind = SOURCE_DELETE;
		break;
	case LDAP_SYNC_CAPI_ADD:
	case LDAP_SYNC_CAPI_MODIFY:
		kind = SOURCE_ENTRY;
		break;
	default:
		return -EPROTO;
	}
	ev = source_event_new(kind, x->type);
	if (uuid_text(uuid, &ev->anchor) != 0) {
		source_event_free(ev);
		return -EPROTO;
	}
	entry_dn(ld, msg, ev);
	if (kind == SOURCE_ENTRY)
		ldap_read_attrs(ld, msg, ev);
	attach_if_new(x, ev);
	return openldap__push(x->src, ev);
}

/* A syncIdSet (RFC 4533 §2.5): one event per UUID; a cookie that came with
 * the set goes on the last one. */
static int emit_ids(struct ldap_session *x, BerVarray uuids, enum source_event_kind kind)
{
	for (size_t i = 0; uuids != NULL && uuids[i].bv_val != NULL; i++) {
		struct source_event *ev = source_event_new(kind, x->type);
		int rc = uuid_text(&uuids[i], &ev->anchor);
		if (rc != 0) {
			source_event_free(ev);
			return rc;
		}
		if (uuids[i + 1].bv_val == NULL)
			attach_if_new(x, ev);
		rc = openldap__push(x->src, ev);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int emit_refresh_end(struct ldap_session *x)
{
	struct source_event *ev = source_event_new(SOURCE_REFRESH_END, x->type);

	x->refreshing = false;
	x->refresh_done = true;
	ev->present_phase = x->full || x->saw_present;
	openldap__bv_copy(&x->committed, &x->ls.ls_cookie);
	openldap__cursor_encode(x->src, &ev->cursor, &ev->cursor_len);
	return openldap__push(x->src, ev);
}

/* libldap folds a final refreshPresent and a final refreshDelete into
 * LDAP_SYNC_CAPI_DONE; the syncInfo choice tag tells them apart (§2.5). */
static bool final_was_present(LDAP *ld, LDAPMessage *msg)
{
	char *oid = NULL;
	struct berval *data = NULL;
	bool present = false;

	if (ldap_parse_intermediate(ld, msg, &oid, &data, NULL, 0) == LDAP_SUCCESS && data != NULL) {
		BerElement *ber = ber_init(data);
		ber_len_t len;
		if (ber != NULL) {
			present = ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_REFRESH_PRESENT;
			ber_free(ber, 1);
		}
	}
	if (data != NULL)
		ber_bvfree(data);
	ldap_memfree(oid);
	return present;
}

int openldap__on_entry(ldap_sync_t *ls, LDAPMessage *msg, struct berval *uuid, ldap_sync_refresh_t phase)
{
	struct ldap_session *x = ls->ls_private;

	if (x->err == 0)
		x->err = emit_entry(x, msg, uuid, phase);
	return LDAP_SUCCESS;
}

int openldap__on_reference(ldap_sync_t *ls, LDAPMessage *msg)
{
	/* referrals are not followed: the scope is one server's naming context */
	return LDAP_SUCCESS;
}

int openldap__on_intermediate(ldap_sync_t *ls, LDAPMessage *msg, BerVarray uuids, ldap_sync_refresh_t phase)
{
	struct ldap_session *x = ls->ls_private;

	if (x->err != 0)
		return LDAP_SUCCESS;
	switch (phase) {
	case LDAP_SYNC_CAPI_PRESENTS_IDSET:
		x->saw_present = true;
		x->err = emit_ids(x, uuids, SOURCE_PRESENT);
		break;
	case LDAP_SYNC_CAPI_DELETES_IDSET:
		x->err = emit_ids(x, uuids, SOURCE_DELETE);
		break;
	case LDAP_SYNC_CAPI_PRESENTS:
		/* refreshPresent with refreshDone FALSE: a present phase ended
		 * and a delete phase follows (§3.4.1, §3.4.2) */
		x->saw_present = true;
		break;
	case LDAP_SYNC_CAPI_DONE:
		if (final_was_present(ls->ls_ld, msg))
			x->saw_present = true;
		x->err = emit_refresh_end(x);
		break;
	default:
		break;
	}
	return LDAP_SUCCESS;
}

int openldap__on_result(ldap_sync_t *ls, LDAPMessage *msg, int refresh_deletes)
{
	struct ldap_session *x = ls->ls_private;

	/* in refreshAndPersist only the server ends the search (§3.4) */
	x->ended = true;
	return LDAP_SUCCESS;
}

void openldap__session_drop_cookie(struct ldap_session *x)
{
	/* e-syncRefreshRequired (§3.4.2 / §4.1): the cookie is useless now;
	 * forget it everywhere so no cursor brings it back */
	openldap__bv_clear(&x->ls.ls_cookie);
	openldap__bv_clear(&x->committed);
}

/* Turn the state after a libldap call into 0 or an error with a message. */
static int session_check(struct ldap_session *x, int rc, const char *url, char *msg, size_t len)
{
	char what[64];

	snprintf(what, sizeof what, "%s search", x->key);
	if (x->err != 0) {
		snprintf(msg, len, "%s: %s (%s)", url, strerror(-x->err), what);
		x->src->w.problem = SOURCE_FAILING;
		return x->err;
	}
	if (rc != LDAP_SUCCESS) {
		int code = ldap_conn_code(x->ls.ls_ld, rc);
		ldap_conn_status_fmt(msg, len, url, code, x->ls.ls_ld, what);
		source_worker_note(&x->src->w, "search", code);
		x->src->w.problem = rc < 0 ? SOURCE_UNREACHABLE
			      : code == LDAP_INSUFFICIENT_ACCESS ? SOURCE_UNAUTHORIZED : SOURCE_FAILING;
		return rc < 0 ? -ECONNRESET : -EIO;
	}
	if (x->ended) {
		snprintf(msg, len, "%s: the server ended the %s", url, what);
		x->src->w.problem = SOURCE_UNREACHABLE;
		return -EIO;
	}
	return 0;
}

/* A decimal counter of the root DSE, or -1 when absent or not a number. */
static int64_t root_dse_number(LDAP *ld, const char *attr)
{
	char *attrs[] = {(char *)attr, NULL};
	struct timeval tv = {OP_TIMEOUT_S, 0};
	LDAPMessage *res = NULL, *e;
	struct berval **v = NULL;
	int64_t n = -1;

	if (ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res) ==
		    LDAP_SUCCESS &&
	    (e = ldap_first_entry(ld, res)) != NULL && (v = ldap_get_values_len(ld, e, attr)) != NULL &&
	    v[0] != NULL && v[0]->bv_len > 0 && v[0]->bv_len <= 18) {
		n = 0;
		for (ber_len_t i = 0; i < v[0]->bv_len && n >= 0; i++)
			n = v[0]->bv_val[i] >= '0' && v[0]->bv_val[i] <= '9' ? n * 10 + (v[0]->bv_val[i] - '0') : -1;
	}
	ldap_value_free_len(v);
	ldap_msgfree(res);
	return n;
}

/*
 * Quirk of 389 Directory Server (content synchronization plugin, checked on
 * 2.3): a session resumed from a cookie whose next change the retro
 * changelog has trimmed already (nsslapd-changelogmaxage) gets what the
 * changelog still holds and no e-syncRefreshRequired, although RFC 4533
 * §3.4.2 / §4.1 want one when the server cannot tell the changes since the
 * cookie: the trimmed changes would be lost. The root DSE says where the
 * changelog starts (firstchangenumber, draft-good-ldap-changelog §4); when
 * the change after the cookie's is gone, refresh in full instead. When the
 * root DSE does not tell (not readable, another server) the cookie stands.
 * Returns true when the cookie was dropped.
 */
static bool drop_cookie_past_changelog(struct ldap_session *x, const char *url)
{
	uint64_t seen;
	int64_t first;
	char msg[256];

	if (openldap_cookie_389_changenumber(x->ls.ls_cookie.bv_val, x->ls.ls_cookie.bv_len, &seen) != 0)
		return false;
	first = root_dse_number(x->ls.ls_ld, "firstchangenumber");
	if (first < 0 || (uint64_t)first <= seen + 1)
		return false;
	snprintf(msg, sizeof msg,
		 "%s: the %s cookie's change %llu is older than the changelog (it starts at %lld): full refresh", url,
		 x->key, (unsigned long long)seen, (long long)first);
	openldap__session_drop_cookie(x);
	(void)source_worker_status(&x->src->w, true, msg);
	return true;
}

static int emit_begin(struct ldap_session *x)
{
	return openldap__push(x->src, source_event_new(SOURCE_REFRESH_BEGIN, x->type));
}

/* The refresh phase (§3.4): runs entirely inside ldap_sync_init. */
int openldap__session_refresh(struct ldap_session *x, const char *url, char *msg, size_t len)
{
	if (x->ls.ls_cookie.bv_val != NULL)
		drop_cookie_past_changelog(x, url);
	for (;;) {
		int rc;

		x->full = x->ls.ls_cookie.bv_val == NULL;
		x->saw_present = x->refresh_done = x->ended = false;
		x->err = 0;
		x->refreshing = true;
		rc = emit_begin(x);
		if (rc != 0)
			return rc;
		rc = ldap_sync_init(&x->ls, LDAP_SYNC_REFRESH_AND_PERSIST);
		if (rc == LDAP_SYNC_REFRESH_REQUIRED)
			x->refresh_required_ms = openldap__mono_ms(); /* see openldap_conn.c, disconnect() */
		if (rc == LDAP_SYNC_REFRESH_REQUIRED && x->err == 0 && !x->full) {
			openldap__session_drop_cookie(x);
			continue;
		}
		rc = session_check(x, rc, url, msg, len);
		if (rc == 0 && !x->refresh_done) {
			snprintf(msg, len, "%s: the %s search ended without refreshDone", url, x->key);
			rc = -EPROTO;
		}
		return rc;
	}
}

static int emit_cursor_if_new(struct ldap_session *x)
{
	struct source_event *ev;

	if (x->refreshing || openldap__bv_eq(&x->ls.ls_cookie, &x->committed))
		return 0;
	ev = source_event_new(SOURCE_CURSOR, x->type);
	attach_if_new(x, ev);
	return openldap__push(x->src, ev);
}

/* Whether libldap has input for this session: bytes (or EOF / an error) on
 * the socket, or data a layer of its Sockbuf decoded already (TLS), which
 * poll() on the socket cannot see. */
static bool has_input(struct ldap_session *x)
{
	struct pollfd p = {.fd = x->src->w.fds[x->slot], .events = POLLIN};
	Sockbuf *sb = NULL;

	if (ldap_get_option(x->ls.ls_ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb != NULL &&
	    ber_sockbuf_ctrl(sb, LBER_SB_OPT_DATA_READY, NULL) > 0)
		return true;
	return poll(&p, 1, 0) > 0;
}

/*
 * Persist phase (§3.4): handle every message that has arrived. ldap_sync_poll
 * is called blocking (ls_timeout -1) and only when there is input: with a
 * zero timeout libldap 2.5 may read a message off the socket and still
 * return "nothing" (its wait4msg checks the clock before handing over what
 * it read), and the socket would then never wake poll() for it again.
 */
int openldap__session_drain(struct ldap_session *x, const char *url, char *msg, size_t len)
{
	for (;;) {
		int rc;

		if (openldap__is_stopping(x->src))
			return -ECANCELED;
		if (!has_input(x))
			return 0;
		rc = ldap_sync_poll(&x->ls);
		if (rc == LDAP_SYNC_REFRESH_REQUIRED)
			x->refresh_required_ms = openldap__mono_ms(); /* see openldap_conn.c, disconnect() */
		if (rc == LDAP_SYNC_REFRESH_REQUIRED && x->err == 0) {
			openldap__session_drop_cookie(x);
			rc = openldap__session_refresh(x, url, msg, len);
			if (rc != 0)
				return rc;
			continue;
		}
		rc = session_check(x, rc, url, msg, len);
		if (rc == 0)
			rc = emit_cursor_if_new(x);
		if (rc != 0)
			return rc;
	}
}
