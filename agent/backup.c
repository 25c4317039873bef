/*
 * agent/backup.c -- canopy-agent --backup DIR: a consistent copy of this
 * node's data dir, taken while the agent is stopped (raft/backup.h says why
 * it must be; docs/operations.md, "Backups of the data dir", says how to
 * take one without stopping the sync and how to restore it).
 */
#include "agent/agent.h"

#include "agent/config.h"
#include "raft/backup.h"
#include "raft/lock.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

int agent_backup(const char *config_path, const char *dest, char *errmsg, size_t errlen)
{
	struct config cfg;
	struct storage_info info;
	struct stat sb;
	int fd, code = 1;

	if (config_load(config_path, &cfg, errmsg, errlen) != 0)
		return AGENT_EXIT_CONFIG;
	if (stat(cfg.node.data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(errmsg, errlen, "data dir %s: not a directory: nothing to back up",
			 cfg.node.data_dir);
		goto out;
	}
	if (lock_check_owner(cfg.node.data_dir, errmsg, errlen) != 0)
		goto out;
	fd = lock_acquire(cfg.node.data_dir, errmsg, errlen);
	if (fd < 0)
		goto out;
	if (backup_copy(cfg.node.data_dir, dest, &info, errmsg, errlen) == 0) {
		printf("backed up %s to %s: term %llu, last index %llu, snapshot at %llu, "
		       "committed here at least to %llu\n",
		       cfg.node.data_dir, dest, (unsigned long long)info.term,
		       (unsigned long long)info.last_index, (unsigned long long)info.snapshot_index,
		       (unsigned long long)info.marker_commit);
		code = 0;
	}
	lock_release(fd);
out:
	config_free(&cfg);
	return code;
}
