/*
 * agent/config.h -- the agent's YAML configuration.
 *
 * One YAML file per agent (docs/configuration.md is the full reference). The
 * keys listed in docs/configuration.md are a contract shared with deployment tooling:
 * they may be extended, never renamed.
 *
 * Errors name the file, the line (1-based, as an editor shows it) and the
 * key path, e.g.
 *     single.yaml:7: cluster.election_timeout_ms: expected an integer, got "fast"
 * Unknown keys are refused at every level, so a typo never silently falls
 * back to a default.
 */
#ifndef CANOPY_AGENT_CONFIG_H
#define CANOPY_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/log.h"

#define CONFIG_MAX_MEMBERS 16
#define CONFIG_MAX_URLS 8
#define CONFIG_MAX_MAPPINGS 64

/* Defaults for the optional keys (docs/configuration.md). */
#define CONFIG_DEFAULT_ELECTION_TIMEOUT_MS 1000
#define CONFIG_DEFAULT_HEARTBEAT_MS 100
#define CONFIG_DEFAULT_SNAPSHOT_THRESHOLD 1024
#define CONFIG_DEFAULT_SNAPSHOT_TRAILING 2048
#define CONFIG_DEFAULT_SNAPSHOT_LOG_MIB 32
#define CONFIG_MAX_SNAPSHOT_LOG_MIB 65536
#define CONFIG_DEFAULT_MAX_IN_FLIGHT 8
#define CONFIG_DEFAULT_MAX_IN_FLIGHT_ENTRA 16 /* target.kind entra */
#define CONFIG_EXTERNAL_ID_PREFIX_MAX 32 /* target.external_id_prefix, bytes */
#define CONFIG_DEFAULT_DELETE_THRESHOLD 500
#define CONFIG_DEFAULT_USER_FILTER "(objectClass=inetOrgPerson)"
#define CONFIG_DEFAULT_GROUP_FILTER "(objectClass=groupOfNames)"
/* kind ad: people, not machine accounts (computer is a subclass of user) */
#define CONFIG_DEFAULT_AD_USER_FILTER "(&(objectClass=user)(!(objectClass=computer)))"
#define CONFIG_DEFAULT_AD_GROUP_FILTER "(objectClass=group)"
#define CONFIG_DEFAULT_AD_POLL_S 30
/* kind ldap-poll: poll every 60 s, read in full every 10th poll (deletes) */
#define CONFIG_DEFAULT_POLL_INTERVAL_S 60
#define CONFIG_DEFAULT_POLL_FULL_EVERY 10
#define CONFIG_DEFAULT_AD_RECONCILE_S 3600

/* A bootstrap voter: "ID@HOST:PORT". */
struct config_member {
	uint64_t id;
	char address[256];
};

#define CONFIG_MAX_EXCLUDES 8

/* A search scope of the source: base DN + LDAP filter, minus excluded subtrees. */
struct config_scope {
	char base[512];
	char filter[512];
	char exclude[CONFIG_MAX_EXCLUDES][512]; /* subtrees below base that are out of scope */
	unsigned n_exclude;
	char member_of[512]; /* users only: in scope only as (nested) members of this group; "" = off */
	/* groups only (docs/sources.md): the attribute holding a group's members
	 * (default "member") and what its values name: "dn" (default) or the
	 * user attribute they equal (memberUid -> "uid") */
	char member_attribute[128];
	char member_value[128];
};

/* One mapping line: target SCIM attribute path <- expression text. The line
 * number is kept so that an expression parse error can point at the file. */
struct config_mapping {
	char attr[256];
	char expr[1024];
	int line;
};

/*
 * The keys that take one of a few words are read once, here, into these
 * enums; each *_name() gives back the word of the configuration.
 */

/* cluster.bootstrap: absent, false, true. */
enum config_bootstrap { CONFIG_BOOTSTRAP_UNSET = -1, CONFIG_BOOTSTRAP_NO = 0, CONFIG_BOOTSTRAP_YES = 1 };

/* source.kind: "openldap" | "ad" | "ldap-poll" */
enum config_source_kind { CONFIG_SOURCE_OPENLDAP, CONFIG_SOURCE_AD, CONFIG_SOURCE_LDAP_POLL };
const char *config_source_kind_name(enum config_source_kind k);
/* source.sasl.mech; CONFIG_SASL_NONE: no source.sasl (a simple bind, or anonymous) */
enum config_sasl_mech { CONFIG_SASL_NONE, CONFIG_SASL_GSSAPI };
const char *config_sasl_mech_name(enum config_sasl_mech m);

/* target.kind: "scim" | "entra" (Microsoft Graph, sync/target/entra.h) */
enum config_target_kind { CONFIG_TARGET_SCIM, CONFIG_TARGET_ENTRA };
const char *config_target_kind_name(enum config_target_kind k);

/* target.mode, kind entra only: "graph" (default: Microsoft Graph's users
 * and groups, sync/target/entra.h) | "bulkupload" (API-driven inbound
 * provisioning: users only, sync/target/entra_bulk.h) */
enum config_target_mode { CONFIG_MODE_GRAPH, CONFIG_MODE_BULKUPLOAD };
const char *config_target_mode_name(enum config_target_mode m);

/* target.auth.kind: "oauth2"; CONFIG_AUTH_NONE when target.auth is absent. */
enum config_auth_kind { CONFIG_AUTH_NONE, CONFIG_AUTH_OAUTH2 };
const char *config_auth_kind_name(enum config_auth_kind k); /* "" for none */

/* safety.deprovision: "delete" (default) | "disable" */
enum config_deprovision { CONFIG_DEPROVISION_DELETE, CONFIG_DEPROVISION_DISABLE };
const char *config_deprovision_name(enum config_deprovision d);

/* target.nested_groups: "native" (default) | "flatten" | "skip" (docs/targets.md) */
enum config_nested_groups { CONFIG_NESTED_NATIVE, CONFIG_NESTED_FLATTEN, CONFIG_NESTED_SKIP };
const char *config_nested_groups_name(enum config_nested_groups n);

/* target.patch_style: "auto" (default) | "standard" | "value_remove" |
 * "members_replace" | "put" (docs/targets.md; same order as
 * sync/target/scim.h enum scim_patch_style) */
enum config_patch_style {
	CONFIG_PATCH_AUTO,
	CONFIG_PATCH_STANDARD,
	CONFIG_PATCH_VALUE_REMOVE,
	CONFIG_PATCH_MEMBERS_REPLACE,
	CONFIG_PATCH_PUT
};
const char *config_patch_style_name(enum config_patch_style p);

/* safety.on_threshold: "stage_excess" (default) | "stop" */
enum config_on_threshold { CONFIG_ON_THRESHOLD_STAGE_EXCESS, CONFIG_ON_THRESHOLD_STOP };
const char *config_on_threshold_name(enum config_on_threshold t);

struct config {
	char path[512]; /* the file this was read from */

	struct {
		uint64_t id;
		char raft_address[256];
		char control_address[256];
		char data_dir[512];
	} node;

	struct {
		char name[128];
		struct config_member members[CONFIG_MAX_MEMBERS];
		unsigned n_members;
		unsigned election_timeout_ms; /* default 1000 */
		unsigned heartbeat_ms;        /* default 100 */
		bool pre_vote;                /* default true (docs/configuration.md) */
		bool early_election;          /* default true: agent/leader_watch.h */
		unsigned snapshot_threshold;  /* entries between snapshots; default 1024 */
		unsigned snapshot_trailing;   /* entries kept after a snapshot; default 2048 */
		unsigned snapshot_log_mib;    /* MiB of entries kept in memory (0: the counts
					       * alone); default 32 (raft/node.h) */
		/* cluster.bootstrap: CONFIG_BOOTSTRAP_UNSET when absent. Only
		 * matters when members lists this node (see docs/configuration.md). */
		enum config_bootstrap bootstrap;
		/* cluster.tls: mutual TLS between members (raft/transport_tls.h).
		 * All three set (absolute paths), or all "" for plain TCP. */
		char tls_ca[512], tls_cert[512], tls_key[512];
	} cluster;

	struct {
		bool present;
		enum config_source_kind kind;
		char urls[CONFIG_MAX_URLS][512];
		unsigned n_urls;
		char bind_dn[512];
		char password_file[512];
		char *password; /* read from password_file; NULL if none */
		struct config_scope users;  /* required when source is present */
		struct config_scope groups; /* base "" when absent: groups not synced */
		/* source.tls: verify the directory's certificate against this CA
		 * only (ldaps://), and StartTLS on ldap:// URLs (RFC 4513 §3).
		 * tls false: ldaps:// against the system store, ldap:// in clear. */
		bool tls;
		char tls_ca[512]; /* source.tls.ca (absolute); "" = the system store */
		unsigned poll_s;  /* kind ad: source.poll_s, DirSync at least this often */
		/* source.sasl: a SASL bind (sync/source/source_sasl.h) instead
		 * of bind_dn + password_file; mech CONFIG_SASL_NONE when absent. */
		struct {
			enum config_sasl_mech mech;
			char keytab[512];    /* absolute; readable when the file was loaded */
			char principal[256]; /* name@REALM */
		} sasl;
		bool notify;      /* kind ad: source.notify, wake on change notifications (default true) */
		unsigned reconcile_s; /* kind ad: source.reconcile_s, anchor comparison period; 0 = off */
		/* kind ldap-poll (sync/source/ldap_poll.h): the poll interval
		 * (default 60), a full read every n-th poll (default 10), and the
		 * anchor attribute (default entryUUID). Not source.poll_s: that
		 * one is the ad kind's "DirSync at least this often". */
		unsigned poll_interval_s;
		unsigned poll_full_every;
		char anchor_attribute[128];
	} source;

	struct {
		bool present;
		enum config_target_kind kind;
		char url[512];
		char token_file[512];
		char *token; /* read from token_file; NULL if none */
		unsigned max_in_flight; /* concurrent target requests; default 8 (scim), 16 (entra) */
		double max_requests_per_s; /* kind entra: the request budget (> 0); 0: not given,
					    * the target's default (ENTRA_DEFAULT_RPS) */
		bool bulk;              /* use SCIM Bulk (RFC 7644 §3.7) when advertised; default false */
		enum config_nested_groups nested_groups; /* groups that are members of groups */
		enum config_patch_style patch_style; /* how PATCH-like changes are written */
		bool strict_schema; /* a mapped attribute the target's schema lacks: quarantine */
		unsigned timeout_ms;    /* one request; default 30000 */
		unsigned max_attempts;  /* tries of one request before the object goes to the retry set;
					 * default 6 */
		/* target.tls.ca: an extra CA for the target's certificate; the
		 * system store is always used too. "" = system store only. */
		char tls_ca[512];
		/* target.external_id_prefix: prepended to every externalId the
		 * target writes and looks up (several domains, one tenant); "" =
		 * none, the anchor alone. */
		char external_id_prefix[CONFIG_EXTERNAL_ID_PREFIX_MAX + 1];
		/* target.mode (kind entra) and, for bulkupload, the provisioning
		 * app's service principal object id and synchronization job id,
		 * and how long to wait for the provisioning logs' verdict on an
		 * operation before reporting it accepted (default 60000; 0: do
		 * not read the logs). */
		enum config_target_mode mode;
		char service_principal_id[128];
		char job_id[256];
		unsigned results_wait_ms;
		/* target.auth: OAuth2 client credentials (RFC 6749 §4.4), instead
		 * of token_file. kind CONFIG_AUTH_NONE = absent. Either
		 * client_secret_file or client_cert + client_key (RFC 7523 JWT
		 * client assertion). */
		struct config_oauth2 {
			enum config_auth_kind kind;
			char token_url[512];
			char client_id[256];
			char client_secret_file[512]; /* "" with client_cert */
			char *client_secret;          /* read at load (checks); re-read before each fetch */
			char scope[512];              /* "" = none sent */
			char client_cert[512];        /* PEM certificate registered with the IdP */
			char client_key[512];         /* its PEM private key (mode 0600) */
		} auth;
	} target;

	struct {
		struct config_mapping user[CONFIG_MAX_MAPPINGS];
		unsigned n_user;
		struct config_mapping group[CONFIG_MAX_MAPPINGS];
		unsigned n_group;
	} mapping;

	struct {
		unsigned delete_threshold; /* default 500 */
		unsigned delete_threshold_percent; /* 1..100; default 0 = no percent check */
		enum config_deprovision deprovision; /* delete (default) | disable: users leaving scope */
		unsigned delete_window_s;          /* sliding window deletes are counted over; default 300 */
		enum config_on_threshold on_threshold; /* stage_excess (default): run deletes up to the
							* threshold, stage the rest; stop: stage them all */
	} safety;

	struct {
		enum log_level level; /* debug | info | warn | error (log_level_name()); default info */
		enum log_format format; /* text (default: logfmt) | json (log_format_name()) */
		/* the provisioning log (sync/provlog.h) rotates before it would pass
		 * provisioning_max_bytes (4096..1 TiB, default 64 MiB) and keeps
		 * provisioning_keep rotated files (1..100, default 5) */
		uint64_t provisioning_max_bytes;
		unsigned provisioning_keep;
	} log;

	/* The control API (agent/control.c). Without token_file, mutations are
	 * unauthenticated, which is only allowed on a loopback control_address. */
	struct {
		char token_file[512]; /* "" when absent */
		char *token;          /* read from token_file at start; NULL if none */
	} control;
};

/*
 * Read and validate the configuration in `path`.
 *
 * On success returns 0 and fills `*cfg` (release with config_free()).
 * On failure returns a negative errno-style code and writes one line into
 * `errmsg` naming the file, the line and the key; `*cfg` needs no freeing.
 *
 * Secrets (source.password_file, target.token_file) are read here. A secret
 * file readable by group or others is refused: the agent must not run with a
 * credential that other local users can read.
 */
int config_load(const char *path, struct config *cfg, char *errmsg, size_t errlen);

/*
 * The same from memory: `name` stands for the file in errors and relative
 * paths resolve against the current directory (tests/fuzz/fuzz_config.c).
 */
int config_load_buffer(const char *name, const char *buf, size_t len, struct config *cfg, char *errmsg,
		       size_t errlen);

/*
 * The same from memory, with the file's directory given (absolute): relative
 * paths in the text resolve against `dir`, and errors start with `name`, as
 * config_load() of that file would say them. Used for a configuration sent
 * to the control API (agent/replconf.h).
 */
int config_load_text(const char *name, const char *dir, const char *buf, size_t len, struct config *cfg,
		     char *errmsg, size_t errlen);

/*
 * Only the pass over libyaml's events that config_load() makes before it
 * builds a document: YAML syntax, the limits below, no tags. For other
 * readers of configuration text (agent/config_sync.h). Returns 0, or a
 * negative errno with "NAME:LINE: cause" in errmsg.
 */
int config_check_yaml(const char *name, const char *buf, size_t len, char *errmsg, size_t errlen);

/* Limits of the YAML reader: a configuration is small and flat, so anything
 * past these is refused before it is built into a document (libyaml's cost
 * grows with the square of the nesting depth). */
#define CONFIG_MAX_FILE_BYTES (1024 * 1024)
#define CONFIG_MAX_DEPTH 32
#define CONFIG_MAX_ALIASES 64

/* True when `address` (HOST:PORT, [V6]:PORT) names a loopback host:
 * 127.0.0.0/8, ::1 or "localhost". */
bool config_is_loopback(const char *address);

/* Release what config_load() allocated (the secrets, zeroed first). */
void config_free(struct config *cfg);

/*
 * Parse "ID@HOST:PORT" into `m`. Returns 0, or -EINVAL with the cause in
 * errmsg. Also used by the CLI for `cluster add`.
 */
int config_parse_member(const char *text, struct config_member *m, char *errmsg, size_t errlen);

#endif /* CANOPY_AGENT_CONFIG_H */
