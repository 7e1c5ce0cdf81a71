/* Control socket client. */
#include "cli/client.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/macro.h"
#include "cli/cli.h"
#include "node/node.h"

int cli_connect_quiet(const char *state_dir, int *ret) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", state_dir, SEED_CONTROL_SOCKET);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return negative_errno();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *ret = fd;
    return 0;
}

int cli_state_access(const char *state_dir) {
    if (geteuid() == 0)
        return 0;
    /* The directory is traversable (sandboxes bind mounts through it); what is in it
     * is root's, node.lock first. */
    char lock[4200];
    snprintf(lock, sizeof(lock), "%s/" SEED_NODE_LOCK, state_dir);
    if ((access(state_dir, X_OK) == 0 || errno != EACCES) && (access(lock, W_OK) == 0 || errno != EACCES))
        return 0;
    cli_needs_root("the node's state directory is root's only");
    return -EACCES;
}

void cli_connect_report(const char *state_dir, int r) {
    if ((r == -EACCES || r == -EPERM) && geteuid() != 0)
        cli_needs_root("the node's control socket is root's only");
    else if (r == -ENAMETOOLONG)
        fprintf(stderr, "seed: state directory path too long: %s\n", state_dir);
    else if (r == -ENOENT || r == -ECONNREFUSED)
        fprintf(stderr, "seed: no node is running on %s (start one with: seed up)\n", state_dir);
    else
        fprintf(stderr, "seed: connecting to %s/%s: %s\n", state_dir, SEED_CONTROL_SOCKET, strerror(-r));
}

int cli_connect(const char *state_dir, int *ret) {
    int r = cli_connect_quiet(state_dir, ret);
    if (r < 0)
        cli_connect_report(state_dir, r);
    return r;
}

int cli_request(int fd, json_t *req, FILE **ret) {
    char *s = json_dumps(req, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    size_t len = strlen(s);
    int r = 0;
    if (send(fd, s, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
        r = negative_errno();
    free(s);
    if (r < 0)
        return r;
    FILE *f = fdopen(fd, "r");
    if (!f)
        return negative_errno();
    *ret = f;
    return 0;
}

json_t *cli_read_answer(FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n <= 0) {
        free(line);
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(line, (size_t)n, 0, &e);
    free(line);
    return j;
}

json_t *cli_call(const char *state_dir, const char *verb, json_t *req) {
    int fd;
    FILE *f = NULL;
    if (cli_connect(state_dir, &fd) < 0) {
        json_decref(req);
        return NULL;
    }
    int r = cli_request(fd, req, &f);
    json_decref(req);
    if (r < 0) {
        close(fd);
        fprintf(stderr, "seed %s: %s\n", verb, strerror(-r));
        return NULL;
    }
    json_t *a = cli_read_answer(f);
    fclose(f);
    if (!a) {
        fprintf(stderr, "seed %s: the node closed the connection without an answer\n", verb);
        return NULL;
    }
    if (!json_is_true(json_object_get(a, "ok"))) {
        fprintf(stderr, "seed %s: %s\n", verb, json_string_value(json_object_get(a, "error")) ?: "failed");
        json_decref(a);
        return NULL;
    }
    return a;
}
