/*
 * agent/identity.c -- the cluster id on this node (see identity.h).
 */
#include "agent/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/log.h"

#define IDENTITY_FILE "cluster-id"

static int file_path(struct agent *a, const char *suffix, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/" IDENTITY_FILE "%s", a->cfg.node.data_dir, suffix);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int read_file(struct agent *a, char *errmsg, size_t errlen)
{
	struct identity *id = &a->identity;
	char path[1100], buf[CLUSTER_ID_HEX + 8];
	ssize_t n;
	int fd, rv;

	id->file_id[0] = '\0';
	if ((rv = file_path(a, "", path, sizeof path)) != 0) {
		snprintf(errmsg, errlen, "node.data_dir %s: path too long", a->cfg.node.data_dir);
		return rv;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* a new node, or one from before cluster ids */
		rv = -errno;
		snprintf(errmsg, errlen, "%s: %s", path, strerror(errno));
		return rv;
	}
	n = read(fd, buf, sizeof buf - 1);
	rv = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(-rv));
		return rv;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!cluster_id_valid(buf)) {
		snprintf(errmsg, errlen,
			 "%s: not a cluster id (expected %d hex digits); it is written by canopy, "
			 "do not edit it",
			 path, CLUSTER_ID_HEX);
		return -EINVAL;
	}
	memcpy(id->file_id, buf, CLUSTER_ID_HEX + 1);
	return 0;
}

/* Write the id next to the raft data: temp file, fsync, rename, fsync dir. */
static int write_file(struct agent *a, const char *cid, char *errmsg, size_t errlen)
{
	char path[1100], tmp[1100], line[CLUSTER_ID_HEX + 2];
	int fd, rv = 0;

	if (file_path(a, "", path, sizeof path) != 0 || file_path(a, ".tmp", tmp, sizeof tmp) != 0) {
		snprintf(errmsg, errlen, "node.data_dir %s: path too long", a->cfg.node.data_dir);
		return -ENAMETOOLONG;
	}
	snprintf(line, sizeof line, "%s\n", cid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rv = -errno;
		snprintf(errmsg, errlen, "%s: %s", tmp, strerror(errno));
		return rv;
	}
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) || fsync(fd) != 0)
		rv = errno ? -errno : -EIO;
	if (close(fd) != 0 && rv == 0)
		rv = -errno;
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(-rv));
		unlink(tmp);
		return rv;
	}
	fd = open(a->cfg.node.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

static void refuse(struct agent *a, const char *state_id, const char *why)
{
	char detail[512], q[600];

	if (a->identity.failed)
		return;
	a->identity.failed = true;
	snprintf(detail, sizeof detail,
		 "data dir belongs to cluster %s, peers are cluster %s: move the data dir aside and "
		 "rejoin with canopyctl cluster add",
		 a->identity.file_id, state_id ? state_id : "(none yet)");
	log_error("refusing to run: this data dir belongs to another cluster", "data_dir=%s "
		  "data_dir_cluster_id=%s cluster_id=%s why=%s detail=%s",
		  a->cfg.node.data_dir, a->identity.file_id, state_id ? state_id : "none", why,
		  log_quote(q, sizeof q, detail));
	agent_shutdown(a, 1, detail);
}

/* After every loop iteration: entries are applied in libuv callbacks, so a
 * newly applied id is seen here before anything else runs on its account
 * (a leader's engine starts only through identity_lead, which checks too). */
static void on_watch(uv_check_t *h)
{
	struct agent *a = h->data;
	struct identity *id = &a->identity;
	const char *cid = cluster_id_get(&a->state);
	char err[1200];

	if (cid == NULL || id->failed)
		return;
	if (id->file_id[0] == '\0') {
		if (id->write_failed)
			return;
		if (write_file(a, cid, err, sizeof err) != 0) {
			id->write_failed = true;
			log_warn("cannot record the cluster id in the data dir", "cluster_id=%s error=\"%s\"",
				 cid, err);
			return;
		}
		memcpy(id->file_id, cid, CLUSTER_ID_HEX + 1);
		log_info("cluster id recorded", "cluster_id=%s data_dir=%s", cid, a->cfg.node.data_dir);
		return;
	}
	if (strcmp(id->file_id, cid) != 0)
		refuse(a, cid, "applied-cluster-id-differs");
}

int identity_load(struct agent *a, char *errmsg, size_t errlen)
{
	return read_file(a, errmsg, errlen);
}

void identity_start(struct agent *a)
{
	uv_check_init(&a->loop, &a->identity.watch);
	a->identity.watch.data = a;
	uv_check_start(&a->identity.watch, on_watch);
}

void identity_close(struct agent *a)
{
	uv_close((uv_handle_t *)&a->identity.watch, NULL);
}

const char *identity_cluster_id(struct agent *a)
{
	return cluster_id_get(&a->state);
}

static void start_export(struct agent *a)
{
	if (a->engine && !a->stopping && !a->identity.failed && node_leader_ready(&a->node))
		engine_lead(a->engine);
}

void identity_resume(struct agent *a)
{
	start_export(a);
}

static void on_id_committed(void *arg, int status)
{
	struct agent *a = arg;

	a->identity.committing = false;
	if (status != 0) {
		/* Leadership lost, typically: the next leader commits it. */
		log_warn("could not commit the cluster id", "error=\"%s\"", raft_strerror(status));
		return;
	}
	log_info("cluster id committed", "cluster_id=%s", identity_cluster_id(a));
	start_export(a);
}

static void on_confirmed(void *arg, int status)
{
	(void)arg;
	if (status != 0 && status != RAFT_LEADERSHIPLOST && status != RAFT_NOTLEADER)
		log_warn("could not re-commit the cluster id", "error=\"%s\"", raft_strerror(status));
}

static int commit_id(struct agent *a, const char *cid, node_apply_cb cb)
{
	struct state_batch b;
	struct raft_buffer buf;
	int rv;

	state_batch_init(&b);
	cluster_id_put(&b, cid);
	rv = state_batch_encode(&b, &buf);
	state_batch_close(&b);
	if (rv != 0) /* a 4-byte key and a 33-byte value are never refused as too long */
		return RAFT_INVALID;
	rv = node_apply(&a->node, &buf, cb, a);
	if (rv != 0)
		raft_free(buf.base);
	return rv;
}

void identity_lead(struct agent *a)
{
	struct identity *id = &a->identity;
	const char *cid = cluster_id_get(&a->state);
	char fresh[CLUSTER_ID_HEX + 1], err[256];
	int rv;

	if (id->failed || a->stopping)
		return;
	if (cid != NULL) {
		if (id->file_id[0] != '\0' && strcmp(id->file_id, cid) != 0) {
			refuse(a, cid, "applied-cluster-id-differs");
			return;
		}
		rv = commit_id(a, cid, on_confirmed);
		if (rv != 0)
			log_warn("could not re-commit the cluster id", "error=\"%s\"", raft_strerror(rv));
		start_export(a);
		return;
	}
	if (id->file_id[0] != '\0') {
		/* Every entry is applied before a leader is ready, so a cluster
		 * with an id would have shown it: this log is not the one the
		 * file was written with. */
		refuse(a, NULL, "data-dir-has-an-id-the-replicated-state-lacks");
		return;
	}
	if (id->committing)
		return;
	if (cluster_id_generate(fresh, err, sizeof err) != 0) {
		log_error("cannot make a cluster id; not exporting", "error=\"%s\"", err);
		return;
	}
	rv = commit_id(a, fresh, on_id_committed);
	if (rv != 0) {
		log_warn("could not commit the cluster id", "error=\"%s\"", raft_strerror(rv));
		return;
	}
	id->committing = true;
}
