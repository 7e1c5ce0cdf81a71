/* seed_image_push (see push.h). The order: every blob the manifest names (layers, then
 * the configuration) present, mounted or uploaded, then the manifest: a registry never
 * holds a manifest whose blobs it lacks, and a failed push leaves no tag behind. */
#include "image/push.h"

#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

#include "base/fileio.h"

/* The mount cache: {"host": {"digest": "repo"}}. Best effort: a broken or missing file
 * means no mounts, never a failed push. */
static json_t *cache_load(const char *path) {
    json_t *j = path ? json_load_file(path, 0, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    return j;
}

static void cache_save(const char *path, json_t *j) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        seed_mkdir_p(dir, 0700);
    }
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    if (json_dump_file(j, tmp, JSON_COMPACT) == 0 && rename(tmp, path) == 0)
        return;
    unlink(tmp);
}

static int push_blob(const seed_image_src *src, const seed_image_ref *ref, seed_registry *r,
                     const seed_image_push_opts *o, const seed_image_desc *d, json_t *hosts, json_t *res,
                     seed_error **err) {
    int ret = seed_registry_blob_exists(r, ref->repo, d->digest, err);
    if (ret < 0)
        return ret;
    if (ret == 1)
        return json_array_append_new(json_object_get(res, "skipped"), json_string(d->digest)) < 0 ? -ENOMEM
                                                                                                  : 0;
    _cleanup_free_ char *location = NULL;
    const char *from = json_string_value(json_object_get(json_object_get(hosts, ref->host), d->digest));
    if (from && !streq(from, ref->repo)) {
        ret = seed_registry_blob_mount(r, ref->repo, d->digest, from, &location, err);
        if (ret < 0)
            return ret;
        if (ret == 1)
            return json_array_append_new(json_object_get(res, "mounted"), json_string(d->digest)) < 0
                       ? -ENOMEM
                       : 0;
    }
    _cleanup_close_ int fd = -1;
    off_t off;
    uint64_t size;
    if ((ret = seed_image_src_blob(src, d->digest, &fd, &off, &size, err)) < 0)
        return ret;
    if (size != (uint64_t)d->size)
        return seed_error_set(err, EBADMSG, "%s: blob %s has %llu bytes, its descriptor says %lld", src->path,
                              d->digest, (unsigned long long)size, (long long)d->size);
    ret = seed_registry_blob_upload(r, ref->repo, d->digest, fd, off, size, o->chunk_size, location,
                                    src->path, err);
    if (ret < 0)
        return ret;
    return json_array_append_new(json_object_get(res, "uploaded"), json_string(d->digest)) < 0 ? -ENOMEM : 0;
}

int seed_image_push(const seed_image_src *src, const seed_image_ref *ref, seed_registry *r,
                    const seed_image_push_opts *o, json_t **ret, seed_error **err) {
    char refstr[1024];
    snprintf(refstr, sizeof(refstr), "%s/%s%s%s", ref->name, ref->repo, ref->tag ? ":" : "@",
             ref->tag ? ref->tag : ref->digest);
    if (ref->digest && !streq(ref->digest, src->manifest_digest))
        return seed_error_set(err, EINVAL, "%s names digest %s, but the image's manifest is %s", refstr,
                              ref->digest, src->manifest_digest);
    json_t *res = json_pack("{s:s, s:s, s:[], s:[], s:[]}", "ref", refstr, "digest", src->manifest_digest,
                            "uploaded", "skipped", "mounted");
    json_t *cache = cache_load(o->mount_cache);
    if (!res || !cache) {
        json_decref(res);
        json_decref(cache);
        return -ENOMEM;
    }
    int r_ = 0;
    for (size_t i = 0; r_ >= 0 && i <= src->m.n_layers; i++) {
        const seed_image_desc *d = i < src->m.n_layers ? &src->m.layers[i] : &src->m.config;
        /* The same layer twice in one manifest is pushed once. */
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = streq(src->m.layers[k].digest, d->digest);
        if (!dup)
            r_ = push_blob(src, ref, r, o, d, cache, res, err);
    }
    if (r_ >= 0)
        r_ = seed_registry_manifest_put(r, ref->repo, ref->tag ? ref->tag : ref->digest, src->m.media_type,
                                        src->manifest, src->manifest_len, err);
    if (r_ >= 0 && o->mount_cache) {
        /* Remember where the blobs now are, for a push of them to another repository. */
        json_t *h = json_object_get(cache, ref->host);
        if (!json_is_object(h)) {
            h = json_object();
            json_object_set_new(cache, ref->host, h);
        }
        for (size_t i = 0; i <= src->m.n_layers; i++) {
            const seed_image_desc *d = i < src->m.n_layers ? &src->m.layers[i] : &src->m.config;
            if (!json_object_get(h, d->digest))
                json_object_set_new(h, d->digest, json_string(ref->repo));
        }
        cache_save(o->mount_cache, cache);
    }
    json_decref(cache);
    if (r_ < 0) {
        json_decref(res);
        return r_;
    }
    *ret = res;
    return 0;
}
