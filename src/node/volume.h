/* Persistent volumes: an ext4 filesystem in a sparse image file per volume, attached
 * through a loop device and mounted inside the node's private mount namespace. The
 * filesystem's size is the volume's size, so writing past it fails with ENOSPC. The
 * loop device is auto-clearing: when the node's mount namespace goes away (even by
 * SIGKILL) the kernel unmounts and detaches everything. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"
#include "node/state.h"

/* Create the image with an empty ext4 filesystem owned by owner:owner if it does not
 * exist, large enough that the filesystem holds size bytes of data (the image is larger
 * by the filesystem's overhead). Refused (-ENOSPC, with a message) when the state
 * directory's filesystem has not that much free. */
int seed_volume_ensure(const char *image, uint64_t size, uid_t owner, seed_error **err);
/* Attach image to a free loop device and mount it at target (nosuid, nodev); grow it
 * online until df shows at least size. The root directory is chowned to owner if it
 * differs (a slot that moved). */
int seed_volume_mount(const char *image, const char *target, uint64_t size, uid_t owner, seed_error **err);
int seed_volume_umount(const char *target);
/* Bytes used and total of a mounted volume (statvfs). */
int seed_volume_usage_mounted(const char *target, uint64_t *used, uint64_t *total);
/* The same read from the ext4 superblock of an image that is not mounted. */
int seed_volume_usage_image(const char *image, uint64_t *used, uint64_t *total);

/* What `seed volume ls --json` shows of one volume (the node and the offline CLI alike):
 * id namespace instance name sizeBytes usedBytes capacityBytes inUse mountPoint created. */
json_t *seed_volume_row_json(const seed_volume_row *v, uint64_t used, uint64_t total, bool in_use,
                             const char *mount_point);
/* Split "NAMESPACE/INSTANCE/VOLUME"; false when id has another shape. */
bool seed_volume_parse_id(const char *id, char ns[128], char inst[128], char vol[128]);
/* Delete a volume's image and its row. -ENOENT: no such volume. */
int seed_volume_remove(seed_state *db, const char *ns, const char *inst, const char *vol, seed_error **err);
