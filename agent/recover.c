/*
 * agent/recover.c -- canopy-agent --recover-members: bring this node back as
 * a new cluster after its cluster lost its majority for good (raft/recover.h
 * says what libraft does and why it is safe; docs/operations.md, "Recovering
 * a cluster that lost its majority", says when to do it).
 *
 * An offline mode of canopy-agent rather than a canopyctl command: canopyctl
 * only speaks to a running agent's control API, and this must run while the
 * agent is stopped, on its data dir, as the user that owns it. It takes the
 * data dir lock (raft/lock.h), so it refuses while the agent runs.
 */
#include "agent/agent.h"

#include "agent/config.h"
#include "agent/log.h"
#include "raft/lock.h"
#include "raft/recover.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Left in the data dir by a recovery, logged and removed by the next start. */
#define RECOVERED_FILE "canopy-recovered"

static void print_configuration(FILE *f, const struct raft_configuration *c)
{
	unsigned i;

	if (c->n == 0) {
		fprintf(f, "(none)");
		return;
	}
	for (i = 0; i < c->n; i++)
		fprintf(f, "%s%llu@%s (%s)", i ? ", " : "", (unsigned long long)c->servers[i].id,
			c->servers[i].address, recover_role_name(c->servers[i].role));
}

static bool lists(const struct raft_configuration *c, uint64_t id)
{
	unsigned i;
	for (i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return true;
	return false;
}

/* "1@h:p,2@h:p" into `conf` (all voters). Returns 0 or -EINVAL with errmsg. */
static int parse_members(const char *text, struct raft_configuration *conf, char *errmsg,
			 size_t errlen)
{
	char buf[CONFIG_MAX_MEMBERS * 300], why[512], *save = NULL, *tok;
	struct config_member m;
	int rv;

	if (strlen(text) >= sizeof buf) {
		snprintf(errmsg, errlen, "--recover-members: too long (at most %d members)",
			 CONFIG_MAX_MEMBERS);
		return -EINVAL;
	}
	snprintf(buf, sizeof buf, "%s", text);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (conf->n >= CONFIG_MAX_MEMBERS) {
			snprintf(errmsg, errlen, "--recover-members: more than %d members",
				 CONFIG_MAX_MEMBERS);
			return -EINVAL;
		}
		if (config_parse_member(tok, &m, why, sizeof why) != 0) {
			snprintf(errmsg, errlen, "--recover-members: %s", why);
			return -EINVAL;
		}
		rv = raft_configuration_add(conf, m.id, m.address, RAFT_VOTER);
		if (rv != 0) {
			snprintf(errmsg, errlen, "--recover-members: member %" PRIu64 "@%s: %s", m.id,
				 m.address, rv == RAFT_DUPLICATEID ? "listed twice" : raft_strerror(rv));
			return -EINVAL;
		}
	}
	if (conf->n == 0) {
		snprintf(errmsg, errlen, "--recover-members: no member given (expected ID@HOST:PORT[,...])");
		return -EINVAL;
	}
	return 0;
}

/* One line for the next start to log (agent_recover_announce): what changed. */
static void note_recovery(const char *dir, const struct recover_state *before,
			  const struct recover_state *after)
{
	char path[600], line[1024];
	int fd, n;
	unsigned i;
	size_t off;

	time_t now = time(NULL);
	struct tm tm;
	char when[32];

	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof line, "recovered_at=%s conf_index=%" PRIu64 " old_members=", when,
		     after->conf_index);
	off = n > 0 && (size_t)n < sizeof line ? (size_t)n : 0;
	for (i = 0; i < before->conf.n && off < sizeof line - 32; i++)
		off += (size_t)snprintf(line + off, sizeof line - off, "%s%llu", i ? "," : "",
					(unsigned long long)before->conf.servers[i].id);
	off += (size_t)snprintf(line + off, sizeof line - off, " new_members=");
	for (i = 0; i < after->conf.n && off < sizeof line - 32; i++)
		off += (size_t)snprintf(line + off, sizeof line - off, "%s%llu", i ? "," : "",
					(unsigned long long)after->conf.servers[i].id);
	snprintf(path, sizeof path, "%s/%s", dir, RECOVERED_FILE);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* only a log line is lost: the recovery itself is written */
	if (write(fd, line, strlen(line)) < 0 || fsync(fd) != 0)
		(void)0;
	close(fd);
}

void agent_recover_announce(const char *data_dir)
{
	char path[600], line[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s", data_dir, RECOVERED_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	n = read(fd, line, sizeof line - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	line[strcspn(line, "\n")] = '\0';
	log_warn("first start after a recovery from a lost majority: this node was given a new "
		 "configuration offline (canopy-agent --recover-members); add members with canopyctl "
		 "cluster add",
		 "%s data_dir=%s", line, data_dir);
	unlink(path);
}

int agent_recover(const char *config_path, const char *members, bool yes, char *errmsg,
		  size_t errlen)
{
	struct config cfg;
	struct raft_configuration want;
	struct recover_state st, after;
	const char *dir;
	struct stat sb;
	unsigned i;
	int rv, fd, code = 1;

	if (config_load(config_path, &cfg, errmsg, errlen) != 0)
		return AGENT_EXIT_CONFIG;
	log_setup(cfg.node.id, cfg.log.level);
	log_set_format(cfg.log.format);
	dir = cfg.node.data_dir;
	raft_configuration_init(&want);
	if (parse_members(members, &want, errmsg, errlen) != 0) {
		code = 2;
		goto out;
	}
	/* This node must be in it, at the address it binds: the others would
	 * dial whatever the configuration says. */
	for (i = 0; i < want.n && want.servers[i].id != cfg.node.id; i++)
		;
	if (i == want.n) {
		snprintf(errmsg, errlen,
			 "--recover-members does not list this node (node.id %" PRIu64 " in %s): the "
			 "node recovered must be a member of the new cluster",
			 cfg.node.id, config_path);
		code = 2;
		goto out;
	}
	if (strcmp(want.servers[i].address, cfg.node.raft_address) != 0) {
		snprintf(errmsg, errlen,
			 "--recover-members gives this node (%" PRIu64 ") the address %s, but it "
			 "listens on node.raft_address %s (%s)",
			 cfg.node.id, want.servers[i].address, cfg.node.raft_address, config_path);
		code = 2;
		goto out;
	}
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(errmsg, errlen, "data dir %s: %s: there is nothing to recover", dir,
			 stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
		goto out;
	}
	if (lock_check_owner(dir, errmsg, errlen) != 0)
		goto out;
	fd = lock_acquire(dir, errmsg, errlen);
	if (fd < 0)
		goto out;
	rv = recover_read(dir, &st, errmsg, errlen);
	if (rv != 0)
		goto out_unlock;

	printf("data dir       %s\n", dir);
	printf("this node      %" PRIu64 "@%s\n", cfg.node.id, cfg.node.raft_address);
	printf("log            term %" PRIu64 ", last index %" PRIu64 ", snapshot at %" PRIu64
	       ", committed here at least to %" PRIu64 " (%s)\n",
	       st.storage.term, st.storage.last_index, st.storage.snapshot_index,
	       st.storage.marker_commit, STORAGE_MARKER_FILE);
	printf("configuration  ");
	print_configuration(stdout, &st.conf);
	printf(" (index %" PRIu64 ")\n", st.conf_index);
	printf("new            ");
	print_configuration(stdout, &want);
	printf(" (to be written at index %" PRIu64 ")\n", st.storage.last_index + 1);
	for (i = 0; i < st.conf.n; i++)
		if (!lists(&want, st.conf.servers[i].id))
			printf("  drops        %llu@%s: it must never start again with its old data dir\n",
			       (unsigned long long)st.conf.servers[i].id, st.conf.servers[i].address);
	for (i = 0; i < want.n; i++)
		if (want.servers[i].id != cfg.node.id)
			printf("  keeps        %llu@%s: start it only with a copy of this data dir, made "
			       "after this step\n",
			       (unsigned long long)want.servers[i].id, want.servers[i].address);
	if (!yes) {
		snprintf(errmsg, errlen,
			 "not recovering without --yes: nothing was written; check that no other "
			 "member of the old cluster runs and that this node has the highest term and "
			 "the longest log of the survivors, then run again with --yes");
		goto out_state;
	}

	log_warn("recovering from a lost majority: forcing a new cluster configuration",
		 "data_dir=%s term=%" PRIu64 " last_index=%" PRIu64 " old_conf_index=%" PRIu64
		 " old_members=%u new_members=%u",
		 dir, st.storage.term, st.storage.last_index, st.conf_index, st.conf.n, want.n);
	rv = recover_write(dir, cfg.node.id, cfg.node.raft_address, &want, errmsg, errlen);
	if (rv != 0)
		goto out_state;
	/* Read it back as the next start will: the data dir must pass the
	 * start-up check and hold the new configuration as its latest. */
	rv = recover_read(dir, &after, errmsg, errlen);
	if (rv != 0)
		goto out_state;
	if (after.conf_index <= st.conf_index || after.conf.n != want.n) {
		snprintf(errmsg, errlen,
			 "data dir %s: after raft_recover the latest configuration is at index %" PRIu64
			 " with %u members, not the new one",
			 dir, after.conf_index, after.conf.n);
		recover_state_close(&after);
		goto out_state;
	}
	note_recovery(dir, &st, &after);
	printf("recovered      the new configuration is at index %" PRIu64
	       "; start the agent: it elects itself and resumes from the replicated cursor; "
	       "then add members with `canopyctl cluster add ID@HOST:PORT`\n",
	       after.conf_index);
	log_warn("recovered from a lost majority: new configuration written",
		 "data_dir=%s conf_index=%" PRIu64 " members=%u", dir, after.conf_index, after.conf.n);
	recover_state_close(&after);
	code = 0;
out_state:
	recover_state_close(&st);
out_unlock:
	lock_release(fd);
out:
	raft_configuration_close(&want);
	config_free(&cfg);
	return code;
}
