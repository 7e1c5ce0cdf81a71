/* ext4-in-a-file volumes on auto-clearing loop devices. */
#include "node/volume.h"

#include <fcntl.h>
#include <ftw.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/units.h"

/* Run a helper (mkfs.ext4, resize2fs) with stdio on /dev/null; its stderr is kept
 * for the error message. */
static int run_tool(char *const argv[], char *out, size_t out_len) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return negative_errno();
    pid_t pid = fork();
    if (pid < 0) {
        int r = negative_errno();
        close(pipefd[0]);
        close(pipefd[1]);
        return r;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        setenv("PATH", "/usr/sbin:/sbin:/usr/bin:/bin", 1);
        execvp(argv[0], argv);
        dprintf(2, "cannot execute %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    size_t o = 0;
    ssize_t n;
    char buf[512];
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n && o + 1 < out_len; i++)
            out[o++] = buf[i] == '\n' ? ' ' : buf[i];
    out[o] = 0;
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct ext4_sb {
    uint64_t blocks, free_blocks, block_size;
} ext4_sb;

/* The counts of an ext4 superblock (at byte 1024): blocks (lo @4, hi @0x150), free
 * blocks (lo @12, hi @0x158), log2(block size) - 10 @24, magic 0xEF53 @0x38, incompat
 * @0x60 with 0x80 = 64bit. Accurate after a clean unmount or a fresh mkfs. */
static int read_sb(const char *image, ext4_sb *ret) {
    _cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    uint8_t sb[1024];
    if (pread(fd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
        return -EIO;
    if (sb[0x38] != 0x53 || sb[0x39] != 0xef || le32(sb + 24) > 6)
        return -EINVAL;
    ret->blocks = le32(sb + 4);
    ret->free_blocks = le32(sb + 12);
    if (le32(sb + 0x60) & 0x80) {
        ret->blocks |= (uint64_t)le32(sb + 0x150) << 32;
        ret->free_blocks |= (uint64_t)le32(sb + 0x158) << 32;
    }
    ret->block_size = 1024ull << le32(sb + 24);
    return 0;
}

/* The directory part of a path, in buf. */
static void dir_of(const char *path, char *buf, size_t size) {
    snprintf(buf, size, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash && slash != buf)
        *slash = 0;
}

/* What the node's volume images (under <state>/volumes) may still take: the part of
 * each sparse image not yet allocated, which its filesystem will fill as it is used. */
static uint64_t promised;
static const char *promised_skip;
static int add_promised(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    size_t l = strlen(path);
    if (type == FTW_F && l > 4 && streq(path + l - 4, ".img") && !streq(path, promised_skip) &&
        (uint64_t)st->st_size > (uint64_t)st->st_blocks * 512)
        promised += (uint64_t)st->st_size - (uint64_t)st->st_blocks * 512;
    return 0;
}

/* Refuse to commit more to a sparse image than its filesystem has free, less what the
 * other images were promised: volumes that do not fit would fail later, inside their
 * instances, at some write (and so would the state database beside them). */
static int check_free_space(const char *dir, const char *image, uint64_t more, seed_error **err) {
    struct statvfs sv;
    if (statvfs(dir, &sv) < 0)
        return seed_error_setp(err, errno, "checking the free space of %s", dir);
    /* image is <state>/volumes/<namespace>/<instance>/<volume>.img */
    char root[4096];
    snprintf(root, sizeof(root), "%s", image);
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(root, '/');
        if (slash && slash != root)
            *slash = 0;
    }
    promised = 0;
    promised_skip = image;
    nftw(root, add_promised, 16, FTW_PHYS);
    uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    free_bytes = free_bytes > promised ? free_bytes - promised : 0;
    if (more <= free_bytes)
        return 0;
    char need[32], have[32], other[32];
    seed_format_bytes(more, need, sizeof(need));
    seed_format_bytes(free_bytes, have, sizeof(have));
    seed_format_bytes(promised, other, sizeof(other));
    return seed_error_set(err, ENOSPC,
                          "volume %s needs %s (%llu bytes) more on the filesystem of %s, which has %s free "
                          "besides the %s the other volumes may still fill: free some space or ask for a "
                          "smaller size",
                          image, need, (unsigned long long)more, dir, have, other);
}

/* What an empty filesystem of blocks (free of them free) gives its user: ext4 holds
 * back 2 % of the blocks, at most 4096, for its own allocations (even with -m 0; counted here
 * from a little less than all its blocks, so rounded up), and
 * a few go to the root directory and lost+found as files are made. */
static uint64_t usable_bytes(uint64_t blocks, uint64_t free_blocks, uint64_t block_size) {
    uint64_t held = MIN(blocks / 49, (uint64_t)4096) + 128;
    return free_blocks > held ? (free_blocks - held) * block_size : 0;
}

/* Make an image of file_size bytes with an empty ext4 filesystem owned by owner. */
static int make_image(const char *tmp, uint64_t file_size, uid_t owner, seed_error **err) {
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return seed_error_setp(err, errno, "creating %s", tmp);
    if (ftruncate(fd, (off_t)file_size) < 0)
        return seed_error_setp(err, errno, "sizing %s", tmp);
    char out[1024] = "", opts[128];
    snprintf(opts, sizeof(opts), "root_owner=%u:%u,nodiscard", (unsigned)owner, (unsigned)owner);
    char *mkfs[] = {"mkfs.ext4", "-q", "-F", "-m", "0", "-E", opts, (char *)tmp, NULL};
    if (run_tool(mkfs, out, sizeof(out)) < 0)
        return seed_error_set(err, EIO, "mkfs.ext4 for %s failed: %s", tmp, out);
    if (fsync(fd) < 0)
        return seed_error_setp(err, errno, "writing %s", tmp);
    return 0;
}

int seed_volume_ensure(const char *image, uint64_t size, uid_t owner, seed_error **err) {
    char marker[4200];
    snprintf(marker, sizeof(marker), "%s.growing", image); /* left by older versions */
    struct stat st;
    if (stat(image, &st) == 0) {
        unlink(marker);
        return 0; /* grown, if it must be, once mounted (seed_volume_mount) */
    }
    if (errno != ENOENT)
        return seed_error_setp(err, errno, "checking %s", image);

    char dir[4096];
    dir_of(image, dir, sizeof(dir));
    int r = seed_mkdir_p(dir, 0700);
    if (r < 0)
        return seed_error_setp(err, -r, "creating %s", dir);
    /* The declared size is what the instance can store (as Kubernetes' capacity >=
     * request): the image is larger by the filesystem's own overhead (inode tables,
     * journal, group descriptors), which mkfs decides. Guess, measure, correct. */
    uint64_t file_size = size + size / 16 + (2u << 20);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.new", image); /* a crash never leaves a half-made image */
    for (int attempt = 0;; attempt++) {
        file_size = (file_size + 65535) & ~(uint64_t)65535;
        if ((r = check_free_space(dir, image, file_size, err)) < 0)
            return r;
        ext4_sb sb;
        if ((r = make_image(tmp, file_size, owner, err)) < 0 || (r = read_sb(tmp, &sb)) < 0) {
            unlink(tmp);
            if (r < 0 && err && !*err)
                seed_error_setp(err, -r, "reading the filesystem of %s", tmp);
            return r;
        }
        uint64_t usable = usable_bytes(sb.blocks, sb.free_blocks, sb.block_size);
        if (usable >= size || attempt == 3)
            break;
        file_size += size - usable + (size - usable) / 8;
    }
    if (rename(tmp, image) < 0) {
        int e = errno;
        unlink(tmp);
        return seed_error_setp(err, e, "finishing %s", image);
    }
    unlink(marker);
    return 0;
}

/* How much more the image needs for df to show size, given what a mount of it shows
 * (0: nothing). Grown by a little more than the gap: the filesystem's overhead grows
 * with it. */
static uint64_t missing_bytes(const char *target, uint64_t size, int *err) {
    struct statvfs sv;
    if (statvfs(target, &sv) < 0) {
        *err = -errno;
        return 0;
    }
    /* As if empty: what it holds in all, less what ext4 holds back. */
    uint64_t shown = usable_bytes(sv.f_blocks, sv.f_blocks, sv.f_frsize);
    *err = 0;
    if (shown >= size)
        return 0;
    return size - shown + (size - shown) / 16 + (1u << 20);
}

/* Grow the image (not mounted) by more bytes: the file, then the filesystem, offline
 * (growing it online takes CAP_SYS_RESOURCE, which a node may not have). A node killed
 * in between leaves a file larger than its filesystem, which the next grow uses. */
static int grow_image(const char *image, uint64_t more, seed_error **err) {
    struct stat st;
    if (stat(image, &st) < 0)
        return seed_error_setp(err, errno, "checking %s", image);
    char dir[4096], out[1024] = "";
    dir_of(image, dir, sizeof(dir));
    int r = check_free_space(dir, image, more, err);
    if (r < 0)
        return r;
    uint64_t file_size = ((uint64_t)st.st_size + more + 65535) & ~(uint64_t)65535;
    if (truncate(image, (off_t)file_size) < 0)
        return seed_error_setp(err, errno, "growing %s", image);
    char *fsck[] = {"e2fsck", "-f", "-p", (char *)image, NULL};
    run_tool(fsck, out, sizeof(out));
    char *resize[] = {"resize2fs", (char *)image, NULL};
    if (run_tool(resize, out, sizeof(out)) < 0)
        return seed_error_set(err, EIO, "resize2fs %s failed: %s", image, out);
    return 0;
}

/* A free loop device bound to the image, auto-clearing. LOOP_CONFIGURE does it in
 * one step (Linux 5.8); older kernels take LOOP_SET_FD + LOOP_SET_STATUS64. */
static int loop_attach(int imgfd, char *dev, size_t devlen) {
    _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return negative_errno();
    for (int tries = 0; tries < 64; tries++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            return negative_errno();
        snprintf(dev, devlen, "/dev/loop%d", n);
        int lfd = open(dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0 && errno == ENOENT) {
            /* No devtmpfs node yet (a minimal /dev): make one. */
            mknod(dev, S_IFBLK | 0660, makedev(7, (unsigned)n));
            lfd = open(dev, O_RDWR | O_CLOEXEC);
        }
        if (lfd < 0)
            return negative_errno();
        struct loop_config cfg = {.fd = (uint32_t)imgfd, .info = {.lo_flags = LO_FLAGS_AUTOCLEAR}};
        int r = ioctl(lfd, LOOP_CONFIGURE, &cfg);
        if (r < 0 && errno == EINVAL) {
            r = ioctl(lfd, LOOP_SET_FD, imgfd);
            if (r == 0) {
                struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};
                ioctl(lfd, LOOP_SET_STATUS64, &info);
            }
        }
        if (r == 0)
            return lfd;
        int e = errno;
        close(lfd);
        if (e != EBUSY)
            return -e; /* somebody else took it between GET_FREE and us: retry */
    }
    return -EBUSY;
}

static int mount_image(const char *image, const char *target, seed_error **err) {
    _cleanup_close_ int imgfd = open(image, O_RDWR | O_CLOEXEC);
    if (imgfd < 0)
        return seed_error_setp(err, errno, "opening volume image %s", image);
    char dev[64];
    _cleanup_close_ int lfd = loop_attach(imgfd, dev, sizeof(dev));
    if (lfd < 0)
        return seed_error_setp(err, -lfd, "attaching %s to a loop device", image);
    if (mount(dev, target, "ext4", MS_NOSUID | MS_NODEV, "") < 0) {
        int e = errno;
        ioctl(lfd, LOOP_CLR_FD, 0);
        return seed_error_setp(err, e, "mounting %s (%s) at %s", image, dev, target);
    }
    /* The loop fd closes here; with autoclear the device frees itself on unmount. */
    return 0;
}

int seed_volume_mount(const char *image, const char *target, uint64_t size, uid_t owner, seed_error **err) {
    /* 0711: the sandbox (another uid) must traverse to bind the mount, never list. */
    int r = seed_mkdir_p(target, 0711);
    if (r < 0)
        return seed_error_setp(err, -r, "creating %s", target);
    /* Mounted, it says how much it holds; short of size (a volume declared larger
     * since, or one made by an older version), it is grown and mounted again. */
    for (int attempt = 0;; attempt++) {
        if ((r = mount_image(image, target, err)) < 0)
            return r;
        uint64_t more = missing_bytes(target, size, &r);
        if (r < 0) {
            umount2(target, MNT_DETACH);
            return seed_error_setp(err, -r, "checking the size of %s", target);
        }
        if (more == 0)
            break;
        if (umount2(target, 0) < 0) {
            int e = errno;
            umount2(target, MNT_DETACH);
            return seed_error_setp(err, e, "unmounting %s to grow it", target);
        }
        if (attempt == 3)
            return seed_error_set(err, EIO, "volume %s did not grow to %llu bytes", image,
                                  (unsigned long long)size);
        if ((r = grow_image(image, more, err)) < 0)
            return r;
    }
    struct stat st;
    if (stat(target, &st) == 0 && (st.st_uid != owner || st.st_gid != owner) &&
        chown(target, owner, owner) < 0) {
        int e = errno;
        umount2(target, MNT_DETACH); /* not left mounted where nothing unmounts it */
        return seed_error_setp(err, e, "giving %s to uid %u", target, (unsigned)owner);
    }
    return 0;
}

int seed_volume_umount(const char *target) {
    if (umount2(target, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
        return negative_errno();
    return 0;
}

int seed_volume_usage_mounted(const char *target, uint64_t *used, uint64_t *total) {
    struct statvfs sv;
    if (statvfs(target, &sv) < 0)
        return negative_errno();
    *total = (uint64_t)sv.f_blocks * sv.f_frsize;
    *used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
    return 0;
}

int seed_volume_usage_image(const char *image, uint64_t *used, uint64_t *total) {
    ext4_sb sb;
    int r = read_sb(image, &sb);
    if (r < 0)
        return r;
    *total = sb.blocks * sb.block_size;
    *used = (sb.blocks - sb.free_blocks) * sb.block_size;
    return 0;
}

json_t *seed_volume_row_json(const seed_volume_row *v, uint64_t used, uint64_t total, bool in_use,
                             const char *mount_point) {
    char id[512];
    snprintf(id, sizeof(id), "%s/%s/%s", v->namespace, v->instance, v->name);
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:s?, s:s}", "id", id, "namespace",
                     v->namespace, "instance", v->instance, "name", v->name, "sizeBytes",
                     (json_int_t)v->size_bytes, "usedBytes", (json_int_t)used, "capacityBytes",
                     (json_int_t)total, "inUse", in_use, "mountPoint", mount_point, "created", v->created);
}

bool seed_volume_parse_id(const char *id, char ns[128], char inst[128], char vol[128]) {
    return id && sscanf(id, "%127[^/]/%127[^/]/%127s", ns, inst, vol) == 3;
}

int seed_volume_remove(seed_state *db, const char *ns, const char *inst, const char *vol, seed_error **err) {
    seed_volume_row row;
    if (seed_state_volume_get(db, ns, inst, vol, &row) < 0)
        return seed_error_set(err, ENOENT, "no volume %s/%s/%s", ns, inst, vol);
    int r = 0;
    if (unlink(row.image) < 0 && errno != ENOENT) {
        r = seed_error_setp(err, errno, "removing %s", row.image);
    } else {
        char marker[4200];
        snprintf(marker, sizeof(marker), "%s.growing", row.image);
        unlink(marker);
        r = seed_state_volume_delete(db, ns, inst, vol);
        if (r < 0)
            r = seed_error_setp(err, -r, "forgetting volume %s/%s/%s", ns, inst, vol);
    }
    seed_volume_row_clear(&row);
    return r;
}
