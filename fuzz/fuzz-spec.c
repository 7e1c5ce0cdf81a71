/* libFuzzer harness for the spec parser: the input is a seeds.json. A small project
 * directory (instance files, a root directory, a symlink leading out) is created once
 * so that file references and root digests are exercised too. Every diagnostic and,
 * for valid input, the meta JSON is produced, as `seed eval` would. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spec/meta.h"
#include "spec/spec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int project_fd = -1;
static char project_dir[64];

static void put(const char *rel, const char *content) {
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", project_dir, rel);
    FILE *f = fopen(p, "w");
    if (!f)
        abort();
    fputs(content, f);
    fclose(f);
}

static void remove_project(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", project_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz-spec: could not remove %s\n", project_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    strcpy(project_dir, "/tmp/seed-fuzz.XXXXXX");
    if (!mkdtemp(project_dir))
        abort();
    char p[256];
    snprintf(p, sizeof(p), "%s/rootfs/bin", project_dir);
    if (mkdir(p, 0755) < 0 && (snprintf(p, sizeof(p), "%s/rootfs", project_dir), mkdir(p, 0755) < 0))
        abort();
    snprintf(p, sizeof(p), "%s/rootfs/bin", project_dir);
    mkdir(p, 0755);
    put("rootfs/bin/app", "#!/bin/sh\n");
    put("a.json", "{\"size\": \"m\", \"expose\": {\"h\": 80}, \"storage\": {\"d\": \"1Gi\"}}");
    put("b.json", "{\"size\": ");
    put("c.json", "{\"root\": \"rootfs\", \"processes\": {\"p\": {\"command\": [\"/bin/app\"]}}}");
    snprintf(p, sizeof(p), "%s/out", project_dir);
    symlink("/etc", p);
    project_fd = open(project_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (project_fd < 0)
        abort();
    atexit(remove_project);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    seed_diags d = {0};
    seed_project *p = NULL;
    int r = seed_project_parse((const char *)data, size, project_fd, project_dir, "fuzz:input", &p, &d);
    if (r == 0 && seed_diags_count(&d) == 0) {
        json_t *m = seed_project_meta(p);
        char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
        free(s);
        json_decref(m);
    }
    seed_diags_clear(&d);
    seed_project_free(p);
    return 0;
}
