/* bench/change_gen.c -- a paced stream of LDAP modifies, each to a different
 * user, with the send and response time of each (bench/run.sh, row 2).
 *
 *   change_gen LDAP_URL BIND_DN PW_FILE BASE RATE SECONDS FIRST COUNT TAG
 *              [SCIM_URL TOKEN_FILE IDS_FILE]
 *
 * Modify i (0, 1, ...) replaces the givenName of uid=userNNNNN,ou=people,BASE
 * (NNNNN = FIRST + i mod COUNT, as tests/fixtures/gen-ldif.sh names them)
 * with "TAG-i"; it is sent at START + i / RATE (open loop: a late modify is
 * sent at once, and its own send time is recorded, so a slow directory shows
 * as latency, not as a lower rate). One connection, one synchronous modify at
 * a time, like one ldapmodify process.
 *
 * With SCIM_URL, TOKEN_FILE and IDS_FILE ("userNNNNN ID" lines) it is the
 * ceiling: right after each modify's response it PUTs the user, with the same
 * givenName, to SCIM_URL/Users/ID over one keep-alive connection, so the
 * fixture's audit log shows what a bare "modify, then one HTTP write" costs.
 *
 * Prints one line per modify, times in ms since the epoch (CLOCK_REALTIME:
 * the clock the SCIM fixture's audit log uses):
 *   I USERNAME SEND_MS LDAP_DONE_MS [PUT_DONE_MS PUT_STATUS]
 * Exit status 0, or 1 when a modify or PUT failed (the line says so). */

#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <ldap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IDS 1000000

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(const struct timespec *start, double offset_s)
{
	struct timespec t = *start;
	long long ns = (long long)(offset_s * 1e9);

	t.tv_sec += (time_t)(ns / 1000000000LL);
	t.tv_nsec += (long)(ns % 1000000000LL);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

static int read_line_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");

	if (f == NULL || fgets(buf, (int)size, f) == NULL) {
		fprintf(stderr, "change_gen: cannot read %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* IDS_FILE: "userNNNNN ID" lines; ids[N] = ID (the users are numbered). */
static char **read_ids(const char *path, long first, long count)
{
	FILE *f = fopen(path, "r");
	char name[128], id[256];
	char **ids;
	long n;

	if (f == NULL) {
		fprintf(stderr, "change_gen: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	ids = calloc((size_t)(first + count), sizeof *ids);
	if (ids == NULL)
		abort();
	while (fscanf(f, "%127s %255s", name, id) == 2) {
		if (sscanf(name, "user%ld", &n) != 1 || n < first || n >= first + count)
			continue;
		free(ids[n]);
		ids[n] = strdup(id);
	}
	fclose(f);
	return ids;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

int main(int argc, char **argv)
{
	const char *url, *bind_dn, *base, *tag;
	char pw[256], token[4096], auth[4200], dn[512], value[128], name[32], body[512], put_url[1024];
	double rate, seconds;
	long first, count, total, i;
	LDAP *ld = NULL;
	CURL *curl = NULL;
	struct curl_slist *hdrs = NULL;
	char **ids = NULL;
	struct timespec start;
	int version = LDAP_VERSION3, rc, failed = 0;

	if (argc != 10 && argc != 13) {
		fprintf(stderr, "usage: change_gen LDAP_URL BIND_DN PW_FILE BASE RATE SECONDS FIRST COUNT TAG "
				"[SCIM_URL TOKEN_FILE IDS_FILE]\n");
		return 2;
	}
	url = argv[1];
	bind_dn = argv[2];
	base = argv[4];
	rate = atof(argv[5]);
	seconds = atof(argv[6]);
	first = atol(argv[7]);
	count = atol(argv[8]);
	tag = argv[9];
	if (rate <= 0 || seconds <= 0 || first < 1 || count < 1 || count > MAX_IDS || first > MAX_IDS) {
		fprintf(stderr, "change_gen: RATE and SECONDS must be > 0, FIRST >= 1, 1 <= COUNT <= %d\n", MAX_IDS);
		return 2;
	}
	if (read_line_file(argv[3], pw, sizeof pw) != 0)
		return 2;

	if ((rc = ldap_initialize(&ld, url)) != LDAP_SUCCESS) {
		fprintf(stderr, "change_gen: ldap_initialize %s: %s\n", url, ldap_err2string(rc));
		return 2;
	}
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	{
		struct berval cred = {.bv_len = strlen(pw), .bv_val = pw};

		rc = ldap_sasl_bind_s(ld, bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			fprintf(stderr, "change_gen: bind as %s to %s: %s\n", bind_dn, url, ldap_err2string(rc));
			return 2;
		}
	}

	if (argc == 13) {
		if (read_line_file(argv[11], token, sizeof token) != 0)
			return 2;
		if ((ids = read_ids(argv[12], first, count)) == NULL)
			return 2;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl = curl_easy_init();
		if (curl == NULL)
			abort();
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
		hdrs = curl_slist_append(hdrs, "Content-Type: application/scim+json");
		hdrs = curl_slist_append(hdrs, "Accept: application/scim+json");
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
	}

	total = (long)(rate * seconds);
	if (total > count)
		fprintf(stderr, "change_gen: %ld modifies over %ld users: some users change twice\n", total, count);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < total; i++) {
		long n = first + i % count;
		char *vals[] = {value, NULL};
		LDAPMod mod = {.mod_op = LDAP_MOD_REPLACE, .mod_type = "givenName", .mod_values = vals};
		LDAPMod *mods[] = {&mod, NULL};
		int64_t sent, done;

		sleep_until(&start, (double)i / rate);
		snprintf(name, sizeof name, "user%05ld", n);
		snprintf(dn, sizeof dn, "uid=%s,ou=people,%s", name, base);
		snprintf(value, sizeof value, "%s-%ld", tag, i);
		sent = wall_ms();
		rc = ldap_modify_ext_s(ld, dn, mods, NULL, NULL);
		done = wall_ms();
		if (rc != LDAP_SUCCESS) {
			printf("%ld %s %lld %lld ldap-error %d\n", i, name, (long long)sent, (long long)done, rc);
			failed = 1;
			continue;
		}
		if (curl == NULL) {
			printf("%ld %s %lld %lld\n", i, name, (long long)sent, (long long)done);
			continue;
		}
		if (ids[n] == NULL) {
			printf("%ld %s %lld %lld no-scim-id 0\n", i, name, (long long)sent, (long long)done);
			failed = 1;
			continue;
		}
		{
			long status = 0;
			int64_t put_done;

			snprintf(put_url, sizeof put_url, "%s/Users/%s", argv[10], ids[n]);
			snprintf(body, sizeof body,
				 "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],"
				 "\"userName\":\"%s\",\"name\":{\"givenName\":\"%s\"}}",
				 name, value);
			curl_easy_setopt(curl, CURLOPT_URL, put_url);
			curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
			if (curl_easy_perform(curl) == CURLE_OK)
				curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
			put_done = wall_ms();
			printf("%ld %s %lld %lld %lld %ld\n", i, name, (long long)sent, (long long)done,
			       (long long)put_done, status);
			if (status < 200 || status >= 300)
				failed = 1;
		}
	}
	fflush(stdout);
	if (curl) {
		curl_easy_cleanup(curl);
		curl_slist_free_all(hdrs);
		for (i = 0; ids && i < first + count; i++)
			free(ids[i]);
		free(ids);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	return failed;
}
