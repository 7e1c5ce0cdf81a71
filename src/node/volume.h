/* Persistent volumes: an ext4 filesystem in a sparse image file per volume, attached
 * through a loop device and mounted inside the node's private mount namespace. The
 * filesystem's size is the volume's size, so writing past it fails with ENOSPC. The
 * loop device is auto-clearing: when the node's mount namespace goes away (even by
 * SIGKILL) the kernel unmounts and detaches everything. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

/* Create the image with an ext4 filesystem owned by owner:owner if it does not exist;
 * grow it if it is smaller than size. Shrinking is refused (-EFBIG) with a message. */
int seed_volume_ensure(const char *image, uint64_t size, uid_t owner, seed_error **err);
/* Attach image to a free loop device and mount it at target (nosuid, nodev). The
 * root directory is chowned to owner if it differs (a slot that moved). */
int seed_volume_mount(const char *image, const char *target, uid_t owner, seed_error **err);
int seed_volume_umount(const char *target);
/* Bytes used and total of a mounted volume (statvfs). */
int seed_volume_usage_mounted(const char *target, uint64_t *used, uint64_t *total);
/* The same read from the ext4 superblock of an image that is not mounted. */
int seed_volume_usage_image(const char *image, uint64_t *used, uint64_t *total);
