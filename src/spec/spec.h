/* The seed project spec: the typed, coerced form of seeds.json and its instance
 * files (PRODUCT.md § "A seed project"), plus the hashes derived from it
 * (namespace, instance identity, project generation). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/diag.h"

/* Bounds that keep evaluation of hostile input in bounded time and memory. */
#define SEED_SPEC_MAX_FILE (16u << 20) /* bytes per JSON file */
#define SEED_SPEC_MAX_INSTANCES 10000
#define SEED_SPEC_MAX_ENTRIES 1000        /* entries in one expose/storage/env/... map */
#define SEED_SPEC_MAX_NAME 58             /* "seed-" + name must fit a 63-byte DNS label */
#define SEED_SPEC_MIN_VOLUME (1ull << 20) /* 1Mi: smaller volumes cannot hold a filesystem */
/* 16Ti: the largest file ext4 holds with 4 KiB blocks, so the largest image a volume can
 * live in on the usual state directory filesystem. */
#define SEED_SPEC_MAX_VOLUME (16ull << 40)
#define SEED_SHOOT_DEFAULT_MAX 4 /* shoot.max: shoots of one instance running at once */
#define SEED_SHOOT_MAX_LIMIT 256 /* the largest shoot.max */

typedef enum seed_size_tier {
    SEED_SIZE_XS,
    SEED_SIZE_S,
    SEED_SIZE_M,
    SEED_SIZE_L,
    SEED_SIZE_XL,
    _SEED_SIZE_MAX,
} seed_size_tier;

typedef enum seed_protocol {
    SEED_PROTO_TCP,
    SEED_PROTO_UDP,
    SEED_PROTO_DNS, /* TCP and UDP */
    SEED_PROTO_HTTP,
    SEED_PROTO_GRPC,
    _SEED_PROTO_MAX,
} seed_protocol;

typedef enum seed_rollout {
    SEED_ROLLOUT_RECREATE,
    SEED_ROLLOUT_ROLLING,
    _SEED_ROLLOUT_MAX,
} seed_rollout;

typedef enum seed_restart {
    SEED_RESTART_ALWAYS,
    SEED_RESTART_ON_FAILURE,
    SEED_RESTART_NO,
    _SEED_RESTART_MAX,
} seed_restart;

typedef enum seed_root_kind {
    SEED_ROOT_NONE,  /* a NixOS instance: `toplevel` instead of a root */
    SEED_ROOT_HOST,  /* read-only view of the host's /usr tree */
    SEED_ROOT_DIR,   /* a directory of the project */
    SEED_ROOT_STORE, /* a Nix store path: its closure is the instance's /nix/store */
} seed_root_kind;

typedef struct seed_kv {
    char *key;
    char *value;
} seed_kv;

typedef struct seed_expose {
    char *name;
    unsigned port;
    seed_protocol protocol;
} seed_expose;

typedef struct seed_volume {
    char *name;
    char *size;          /* as written, e.g. "1.5Gi" */
    uint64_t size_bytes; /* rounded up to whole bytes */
    char *mount_point;   /* absolute and normalised */
} seed_volume;

typedef struct seed_connect {
    char *name;
    char *service;
    unsigned port; /* 0: no port */
} seed_connect;

typedef struct seed_process {
    char *name;
    char **command; /* NULL-terminated, at least one element */
    size_t n_command;
    seed_kv *env;
    size_t n_env;
    char *cwd;  /* NULL: "/" */
    char *user; /* NULL: root; "name", "uid", "name:group" or "uid:gid" */
    seed_restart restart;
    bool foreground; /* its exit ends the instance, with its exit code */
} seed_process;

/* An account the instance declares (`users`, ours): its passwd/group/shadow entries are
 * created at boot in an image; on a node its processes run with these ids. */
typedef struct seed_user {
    char *name;
    unsigned uid;
    unsigned gid; /* default: uid */
    char *shell;  /* default: /bin/sh */
    char *home;   /* default: /home/<name> */
} seed_user;

typedef enum seed_health_kind {
    SEED_HEALTH_HTTP,    /* GET <http_path> on <port>: ready on a 2xx or 3xx status */
    SEED_HEALTH_COMMAND, /* <command> run inside the instance: ready on exit code 0 */
} seed_health_kind;

/* The `health` option (ours): how to tell that an instance is ready to serve. */
typedef struct seed_health {
    seed_health_kind kind;
    char *http_path; /* HTTP: starts with '/', printable ASCII without spaces */
    unsigned port;   /* HTTP: one of the instance's exposed TCP ports */
    char **command;  /* COMMAND: NULL-terminated, at least one element */
    size_t n_command;
    unsigned interval_ms; /* between the starts of two checks */
    unsigned timeout_ms;  /* one check fails when it takes longer */
    unsigned retries;     /* consecutive failures before a ready instance counts as unhealthy */
} seed_health;

/* One entry of `secrets` (ours): an age or sops file, relative to the declaring file,
 * decrypted at start into /run/secrets/<name> (and/or an environment variable). */
typedef struct seed_secret {
    char *name;
    char *file;          /* as written */
    char *key;           /* sops: the one value to take ("db.password"); NULL: the whole document */
    unsigned mode;       /* of /run/secrets/<name>: 0400 unless given */
    char *owner;         /* a user of the instance ("name", "uid", "name:group", "uid:gid"); NULL: root */
    char *env;           /* NULL, or a variable every process gets with the value */
    char *format;        /* "age", "sops-yaml", "sops-json", "sops-dotenv" or "sops-binary" */
    char digest[65];     /* sha256 of the encrypted file (never of its plaintext) */
    unsigned char *data; /* the encrypted file as read when the project was loaded */
    size_t len;
} seed_secret;

#define SEED_SECRET_MAX_FILE (4u << 20) /* bytes of one encrypted secret file */

#define SEED_HEALTH_DEFAULT_INTERVAL_MS 5000
#define SEED_HEALTH_DEFAULT_TIMEOUT_MS 2000
#define SEED_HEALTH_DEFAULT_RETRIES 3
#define SEED_ROLLOUT_DEFAULT_TIMEOUT_MS 60000

typedef struct seed_instance {
    char *name;
    char *file; /* the JSON file it was declared in, relative to the project */
    char *system;
    seed_size_tier size;
    unsigned vcpus;
    unsigned memory_mib;
    seed_expose *expose;
    size_t n_expose;
    seed_volume *storage;
    size_t n_storage;
    seed_connect *connect;
    size_t n_connect;
    seed_rollout rollout;
    unsigned rollout_timeout_ms; /* how long a new instance may take to become ready */
    seed_health *health;         /* NULL: ready = every exposed TCP port accepts a connection */
    bool shoot_enable;
    unsigned shoot_max; /* shoots of this instance running at once (shoot.max) */

    seed_root_kind root_kind;
    char *root;           /* as written: "host", a path relative to `file` or a store path */
    char *root_path;      /* SEED_ROOT_DIR: absolute path of the directory; _STORE: the store path */
    char root_digest[65]; /* SEED_ROOT_DIR: digest of the directory's content */
    seed_kv *env;
    size_t n_env;
    seed_process *processes;
    size_t n_processes;
    seed_user *users; /* sorted by name */
    size_t n_users;
    char *toplevel;
    char **boot_required; /* image mode: boot tasks whose failure stops the container */
    size_t n_boot_required;
    /* nix: a working Nix inside the instance, its store on a volume */
    bool nix_enable;
    char *nix_volume;                  /* the storage name (default: the first by name) */
    bool nix_daemon;                   /* multi-user: a nix-daemon process, NIX_REMOTE=daemon for the rest */
    char *nix_min_free, *nix_max_free; /* GC limits as written ("1Gi"), or NULL */
    uint64_t nix_min_free_bytes, nix_max_free_bytes;
    seed_secret *secrets; /* sorted by name */
    size_t n_secrets;

    char identity[65];
} seed_instance;

typedef struct seed_project {
    char *dir; /* absolute path of the project directory */
    char *uri;
    char namespace[16];
    char generation[13];
    seed_instance *instances; /* sorted by name */
    size_t n_instances;
} seed_project;

/* Names and tables for the enums above. */
const char *seed_size_tier_to_string(seed_size_tier t);
const char *seed_protocol_to_string(seed_protocol p);
const char *seed_rollout_to_string(seed_rollout r);
const char *seed_restart_to_string(seed_restart r);
/* Resources of a size tier: vCPUs and memory in MiB. */
void seed_size_tier_resources(seed_size_tier t, unsigned *vcpus, unsigned *memory_mib);
/* Whether a protocol is carried over TCP and/or UDP. */
bool seed_protocol_uses_tcp(seed_protocol p);
bool seed_protocol_uses_udp(seed_protocol p);

/* Load the project at `source` (a directory holding seeds.json, or else a flake.nix;
 * the path of a seeds.json file; or a flake reference). uri overrides the default
 * "path:<absolute directory>" (for a flake reference: the reference itself).
 * Every problem is added to diags; *ret is set (possibly partially filled) unless a
 * negative errno is returned for an internal failure such as lack of memory. The
 * project is valid exactly when diags is empty afterwards. */
int seed_project_load(const char *source, const char *uri, seed_project **ret, seed_diags *diags);

/* Whether s is a flake reference (path:, git+..., github:, flake:, ...) rather than a
 * directory: seed_project_load evaluates those with Nix (spec/flake.c). */
bool seed_is_flake_ref(const char *s);

/* Parse seeds.json content already in memory (used by the loader and the fuzzer).
 * dirfd is the project directory for instance files and roots, or -1 when there is
 * none (references to files are then reported as errors). */
int seed_project_parse(const char *buf, size_t len, int dirfd, const char *dir, const char *uri,
                       seed_project **ret, seed_diags *diags);

void seed_project_free(seed_project *p);
DEFINE_CLEANUP_FUNC(seed_project, seed_project_free)

const seed_instance *seed_project_find(const seed_project *p, const char *name);

/* Hashes. */
/* "s-" + 12 base32 characters; out must hold 16 bytes. */
int seed_namespace_from_uri(const char *uri, char out[16]);
/* First 12 hex digits of sha256 over "name=<identity>\n" lines sorted by name. */
int seed_project_generation(const seed_project *p, char out[13]);
/* Content digest of one instance (meta and payload, root directory files included). */
int seed_instance_identity(const seed_instance *inst, char out[65]);
/* Digest of a directory tree: names, types, executable bits, file contents, link
 * targets. Returns -EINVAL with a message for special files. */
int seed_tree_digest(int dirfd, char out[65], char **errmsg);

/* Storage quantity in Kubernetes syntax ("1Gi", "500Mi", "1.5Gi", "10G", "1e9",
 * "1073741824"). Returns 0 and the size rounded up to whole bytes, or -EINVAL /
 * -ERANGE with a message in *errmsg (malloc'd). */
int seed_parse_quantity(const char *s, uint64_t *ret, char **errmsg);
/* Duration "500ms", "5s", "1.5m", "1h" (units ms, s, m, h; a fraction must come to whole
 * milliseconds). Returns 0 and the milliseconds, or -EINVAL / -ERANGE with a message in
 * *errmsg (malloc'd). Bounds are the caller's. */
int seed_parse_duration(const char *s, uint64_t *ret_ms, char **errmsg);
/* The shortest exact text of a duration in the largest whole unit: "100ms", "5s", "1h". */
void seed_format_duration(uint64_t ms, char *buf, size_t size);
