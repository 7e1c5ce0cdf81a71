/* The diff between a desired project and the instances that exist, by name and
 * identity. */
#include "plan/plan.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"

static const char *const kind_names[] = {"unchanged", "create", "replace", "remove"};
static const char *const kind_signs[] = {"=", "+", "~", "-"};

const char *seed_plan_kind_name(seed_plan_kind k) {
    return k < _SEED_PLAN_KIND_MAX ? kind_names[k] : "?";
}

const char *seed_plan_kind_sign(seed_plan_kind k) {
    return k < _SEED_PLAN_KIND_MAX ? kind_signs[k] : "?";
}

static int cmp_step(const void *a, const void *b) {
    return strcmp(((const seed_plan_step *)a)->name, ((const seed_plan_step *)b)->name);
}

int seed_plan_make(const seed_project *desired, const seed_plan_actual *actual, size_t n_actual,
                   const char *only, seed_plan *out) {
    *out = (seed_plan){0};
    out->steps = calloc(desired->n_instances + n_actual + 1, sizeof(seed_plan_step));
    if (!out->steps)
        return -ENOMEM;
    bool *matched = calloc(n_actual + 1, sizeof(bool));
    if (!matched) {
        seed_plan_clear(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < desired->n_instances; i++) {
        const seed_instance *d = &desired->instances[i];
        if (only && !streq(only, d->name))
            continue;
        seed_plan_step st = {.kind = SEED_PLAN_CREATE, .name = d->name, .rollout = d->rollout, .desired = d};
        for (size_t k = 0; k < n_actual; k++) {
            if (matched[k] || !streq(actual[k].name, d->name))
                continue;
            matched[k] = true;
            st.actual = k;
            st.old_identity = actual[k].identity;
            st.kind = streq(actual[k].identity, d->identity) ? SEED_PLAN_UNCHANGED : SEED_PLAN_REPLACE;
            break;
        }
        out->steps[out->n++] = st;
        out->counts[st.kind]++;
    }
    for (size_t k = 0; k < n_actual; k++) {
        if (matched[k] || (only && !streq(only, actual[k].name)))
            continue;
        out->steps[out->n++] = (seed_plan_step){.kind = SEED_PLAN_REMOVE,
                                                .name = actual[k].name,
                                                .old_identity = actual[k].identity,
                                                .actual = k};
        out->counts[SEED_PLAN_REMOVE]++;
    }
    free(matched);
    qsort(out->steps, out->n, sizeof(seed_plan_step), cmp_step);
    return 0;
}

void seed_plan_clear(seed_plan *p) {
    free(p->steps);
    *p = (seed_plan){0};
}

bool seed_plan_is_noop(const seed_plan *p) {
    return p->counts[SEED_PLAN_UNCHANGED] == p->n;
}

json_t *seed_plan_json(const seed_plan *p) {
    json_t *arr = json_array();
    for (size_t i = 0; i < p->n; i++) {
        const seed_plan_step *s = &p->steps[i];
        json_t *o = json_pack("{s:s, s:s}", "name", s->name, "action", seed_plan_kind_name(s->kind));
        if (s->kind == SEED_PLAN_REPLACE)
            json_object_set_new(o, "rollout", json_string(seed_rollout_to_string(s->rollout)));
        json_object_set_new(o, "identity", s->desired ? json_string(s->desired->identity) : json_null());
        json_object_set_new(o, "oldIdentity", s->old_identity ? json_string(s->old_identity) : json_null());
        json_array_append_new(arr, o);
    }
    return arr;
}
