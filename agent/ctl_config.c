/*
 * agent/ctl_config.c -- canopyctl config show|history|apply|rollback: the
 * replicated sync configuration (agent/replconf.h).
 */
#include "agent/ctl.h"
#include "agent/config.h"
#include "agent/http.h"
#include "agent/http_body.h"
#include "common/xalloc.h"
#include "sync/secret.h"
#include "sync/text_json.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* What a file may weigh: its JSON-quoted text must fit in one control
 * request (HTTP_MAX_BODY). */
#define CONFIG_FILE_MAX (HTTP_MAX_BODY / 2)

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

/* The request body of `config apply FILE`: the text, the name as given and
 * the file's directory (relative paths in it resolve there, as for
 * canopy-agent --check-config FILE). NULL with the cause in errmsg. */
static char *apply_payload(const char *file, bool dry_run, char *errmsg, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *buf, *out;
	FILE *f = fopen(file, "rb");
	size_t n;
	json_t *o;

	if (f == NULL) {
		snprintf(errmsg, errlen, "%s: %s", file, strerror(errno));
		return NULL;
	}
	buf = xmalloc(CONFIG_FILE_MAX + 1);
	n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
	fclose(f);
	if (n > CONFIG_FILE_MAX) {
		snprintf(errmsg, errlen, "%s: larger than %d bytes", file, CONFIG_FILE_MAX);
		free(buf);
		return NULL;
	}
	if (!text_is_utf8(buf, n)) {
		snprintf(errmsg, errlen, "%s: not UTF-8 text", file);
		free(buf);
		return NULL;
	}
	snprintf(tmp, sizeof tmp, "%s", file);
	if (realpath(dirname(tmp), dir) == NULL) {
		snprintf(errmsg, errlen, "%s: cannot resolve its directory: %s", file, strerror(errno));
		free(buf);
		return NULL;
	}
	o = xcheck(json_pack("{s:s,s:s,s:s%,s:b}", "name", file, "dir", dir, "yaml", buf, n, "dry_run", dry_run));
	free(buf);
	out = xcheck(json_dumps(o, JSON_COMPACT));
	json_decref(o);
	if (strlen(out) > HTTP_MAX_BODY) {
		snprintf(errmsg, errlen, "%s: too large to send (%zu bytes quoted, at most %d)", file, strlen(out),
			 HTTP_MAX_BODY);
		free(out);
		return NULL;
	}
	return out;
}

static void print_value(FILE *out, json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY);
	fputs(s ? s : "?", out);
	free(s);
}

/* One line per changed key, then what happened. */
static void print_diff(FILE *out, json_t *o)
{
	json_t *changes = json_object_get(o, "changes"), *c;
	size_t i;

	json_array_foreach(changes, i, c) {
		const char *what = str(c, "change", "?");
		fprintf(out, "%c %s: ", what[0] == 'a' ? '+' : what[0] == 'r' ? '-' : '~', str(c, "key", "?"));
		if (what[0] == 'c') {
			print_value(out, json_object_get(c, "old"));
			fputs(" -> ", out);
			print_value(out, json_object_get(c, "new"));
		} else {
			print_value(out, json_object_get(c, what[0] == 'a' ? "new" : "old"));
		}
		fputc('\n', out);
	}
	if (json_is_true(json_object_get(o, "dry_run")))
		fprintf(out, "dry run: nothing committed (would be version %lld)\n",
			(long long)json_integer_value(json_object_get(o, "version")));
	else
		fprintf(out, "committed as version %lld%s\n", (long long)json_integer_value(json_object_get(o, "version")),
			json_is_true(json_object_get(o, "resync"))
				? "; the scope is read again in full (changed objects are written, deletes go "
				  "through delete protection)"
				: "");
}

static void print_history(FILE *out, json_t *o)
{
	json_t *c;
	size_t i;

	fprintf(out, "%-8s %-21s %-7s %s\n", "VERSION", "TIME", "ORIGIN", "SUMMARY");
	json_array_foreach(json_object_get(o, "versions"), i, c)
		fprintf(out, "%-8lld %-21s %-7lld %s\n", (long long)json_integer_value(json_object_get(c, "version")),
			str(c, "at", "-"), (long long)json_integer_value(json_object_get(c, "origin")),
			str(c, "summary", ""));
}

int ctl_config(const char *server, const char *token_file, int n_words, const char **words, bool dry_run,
	       bool json, FILE *out, FILE *err)
{
	const char *sub = n_words >= 2 ? words[1] : "", *method = "GET", *path;
	char *payload = NULL, *token = NULL, errmsg[1024], *end = NULL;
	struct http_body body = {0};
	json_error_t jerr;
	json_t *o;
	long status;
	int rc = 1;

	if (strcmp(sub, "show") == 0 && n_words == 2) {
		path = "/v1/config";
	} else if (strcmp(sub, "history") == 0 && n_words == 2) {
		path = "/v1/config/history";
	} else if (strcmp(sub, "apply") == 0 && n_words == 3) {
		path = "/v1/config/apply";
		method = "POST";
		if ((payload = apply_payload(words[2], dry_run, errmsg, sizeof errmsg)) == NULL) {
			fprintf(err, "canopyctl: config apply: %s\n", errmsg);
			return 1;
		}
	} else if (strcmp(sub, "rollback") == 0 && n_words == 3) {
		unsigned long long n = strtoull(words[2], &end, 10);
		if (words[2][0] == '\0' || *end != '\0' || n == 0 || n > (1ull << 53)) {
			fprintf(err, "canopyctl: config rollback: \"%s\" is not a version number\n", words[2]);
			return 2;
		}
		path = "/v1/config/rollback";
		method = "POST";
		o = xcheck(json_pack("{s:I,s:b}", "version", (json_int_t)n, "dry_run", dry_run));
		payload = xcheck(json_dumps(o, JSON_COMPACT));
		json_decref(o);
	} else {
		fprintf(err, "canopyctl: usage: config show | history | apply FILE [--dry-run] | rollback N "
			     "[--dry-run] [--json]\n");
		return 2;
	}
	if (token_file != NULL && token_file[0] != '\0' && strcmp(method, "POST") == 0 &&
	    secret_read(token_file, &token, errmsg, sizeof errmsg) != 0) {
		fprintf(err, "canopyctl: token file: %s\n", errmsg);
		free(payload);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	status = ctl_request(server, method, path, payload, token, &body, errmsg, sizeof errmsg);
	secret_free(token);
	free(payload);
	if (status < 0) {
		fprintf(err, "canopyctl: %s\n", errmsg);
		goto out;
	}
	o = json_loadb(body.p ? body.p : "", body.len, 0, &jerr);
	if (o == NULL) {
		fprintf(err, "canopyctl: %s answered HTTP %ld with a body that is not JSON: %s\n", server, status,
			jerr.text);
		goto out;
	}
	if (status < 200 || status >= 300) {
		fprintf(err, "canopyctl: config %s: %s\n", sub, str(o, "error", "no error message"));
	} else {
		rc = 0;
		if (json)
			fprintf(out, "%s\n", body.p);
		else if (strcmp(sub, "show") == 0)
			fprintf(out, "# version %lld, from node %lld at %s: %s\n%s",
				(long long)json_integer_value(json_object_get(o, "version")),
				(long long)json_integer_value(json_object_get(o, "origin")), str(o, "at", "-"),
				str(o, "summary", ""), str(o, "yaml", ""));
		else if (strcmp(sub, "history") == 0)
			print_history(out, o);
		else
			print_diff(out, o);
	}
	json_decref(o);
out:
	free(body.p);
	curl_global_cleanup();
	return rc;
}
