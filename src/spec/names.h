/* Validation of the names and paths a spec carries: instance and volume names (DNS
 * labels), service names (DNS names), mount points, environment names, users. Each
 * returns NULL when valid or a phrase saying what is wrong ("must start with ..."). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

const char *seed_check_dns_label(const char *s, size_t max);
const char *seed_check_hostname(const char *s);
const char *seed_check_process_name(const char *s);
const char *seed_check_connect_name(const char *s);
const char *seed_check_env_name(const char *s);
const char *seed_check_user(const char *s);
/* The name of an account the spec declares (`users`): a name, not a number. */
const char *seed_check_user_name(const char *s);
const char *seed_check_abs_path(const char *s);

/* Normalise an absolute mount point (collapse "//", drop a trailing "/") into out
 * (malloc'd). Returns NULL on success or the reason it is not acceptable: relative,
 * ".." or "." components, or reserved for the sandbox (/, /proc, /sys, /dev, ...). */
const char *seed_normalize_mount_point(const char *s, char **out);

/* The environment variable name a connect entry produces: SEED_<NAME>_HOST with the
 * name upper-cased and '-' turned into '_'. */
char *seed_connect_env_name(const char *name);
