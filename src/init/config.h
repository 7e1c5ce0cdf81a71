/* The configuration seed-init starts from (init/protocol.h describes the JSON), built
 * from an instance's spec: the node hands it over in a memfd, an image carries it as
 * /seed/image.json. One function for both, so that an image runs what a node runs. */
#pragma once

#include "spec/spec.h"

/* Where seed-init finds its configuration in an image (image mode: fd 3 is not open). */
#define SEED_IMAGE_CONFIG_PATH "/seed/image.json"

/* The instance environment: PATH, HOSTNAME, SEED_INSTANCE, SEED_NAMESPACE (when ns is
 * not NULL), SEED_SHOOT_URL (when the instance has shoots and shoot_url is not NULL),
 * the connect variables, then the instance's env. A NULL-terminated array in *ret.
 * Returns 0 or -ENOMEM. */
int seed_instance_init_env(const seed_instance *s, const char *ns, const char *shoot_url, char ***ret);

/* The init's configuration as compact JSON text (malloc'd) in *ret. Returns 0 or
 * -ENOMEM. */
int seed_instance_init_config(const seed_instance *s, const char *ns, const char *shoot_url,
                              unsigned grace_ms, char **ret);
