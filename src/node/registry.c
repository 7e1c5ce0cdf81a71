/* The node's registry, the bottom of the node component: the projects instances are
 * made from, the list of instances and how to find one by name, and the two hooks
 * through which what happens below reaches what is above (events flow up, calls flow
 * down): node_instance_changed and node_event. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "node/deploy.h"
#include "node/keeper.h"

node_project *node_project_new(seed_project *p) {
    node_project *np = calloc(1, sizeof(*np));
    if (!np) {
        seed_project_free(p);
        return NULL;
    }
    np->p = p;
    np->refs = 1;
    return np;
}

node_project *node_project_ref(node_project *np) {
    if (np)
        np->refs++;
    return np;
}

void node_project_unref(node_project *np) {
    if (!np || --np->refs > 0)
        return;
    seed_project_free(np->p);
    free(np);
}

instance *node_find(node *n, const char *name, char *why, size_t why_size) {
    const char *slash = strchr(name, '/');
    size_t src_len = slash ? (size_t)(slash - name) : 0;
    const char *inst = slash ? slash + 1 : name;
    instance *found = NULL;
    const char *other = NULL;
    for (size_t i = 0; i < n->n_insts; i++) {
        instance *in = n->insts[i];
        if (in->role != ROLE_ACTIVE || !streq(in->spec->name, inst))
            continue;
        if (slash && (strlen(in->src->name) != src_len || strncmp(in->src->name, name, src_len) != 0))
            continue;
        if (found) {
            other = in->src->name;
            break;
        }
        found = in;
    }
    if (found && other) {
        snprintf(why, why_size,
                 "\"%s\" is an instance of sources %s and %s (and maybe more): say which, as SOURCE/NAME "
                 "(%s/%s)",
                 inst, found->src->name, other, found->src->name, inst);
        return NULL;
    }
    if (!found)
        snprintf(why, why_size, "no instance named \"%s\" on this node%s", name,
                 slash ? "" : " (seed ps lists them)");
    return found;
}

int node_add_instance(node *n, instance *in) {
    if (n->n_insts == n->cap_insts) {
        size_t cap = n->cap_insts ? n->cap_insts * 2 : 16;
        instance **m = realloc(n->insts, cap * sizeof(*m));
        if (!m)
            return -ENOMEM;
        n->insts = m;
        n->cap_insts = cap;
    }
    n->insts[n->n_insts++] = in;
    return 0;
}

void node_remove_instance(node *n, instance *in) {
    for (size_t i = 0; i < n->n_insts; i++)
        if (n->insts[i] == in) {
            memmove(&n->insts[i], &n->insts[i + 1], (n->n_insts - i - 1) * sizeof(*n->insts));
            n->n_insts--;
            return;
        }
}

void node_event(node *n, const char *kind, const char *source, const char *inst, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *ev = n->db ? seed_state_event_add(n->db, kind, source, inst, msg) : NULL;
    if (ev && n->on_event)
        n->on_event(n, ev);
    json_decref(ev);
}

void node_instance_changed(instance *in) {
    if (in->node->on_change)
        in->node->on_change(in);
}

json_t *node_keeper(node *n, json_t *req, const int *fds, size_t n_fds, int *rfds, size_t *n_rfds) {
    _cleanup_error_ seed_error *err = NULL;
    if (n->keeper_fd < 0) {
        json_decref(req);
        return NULL;
    }
    json_t *r = seed_keeper_call(n->keeper_fd, req, fds, n_fds, rfds, n_rfds, &err);
    if (!r)
        log_error("keeper: %s", err->msg);
    return r;
}

static bool all_settled(node *n) {
    for (size_t i = 0; i < n->n_insts; i++)
        if (!instance_settled(n->insts[i]))
            return false;
    return true;
}

void node_instance_stopped(node *n) {
    if ((n->stopping || n->exit_when_stopped) && all_settled(n))
        seed_loop_exit(n->loop, 0);
}
