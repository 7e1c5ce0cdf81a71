/* The plan: what applying a project to the instances that run now takes, per
 * instance, decided by identity alone (PRODUCT.md: source -> spec -> plan ->
 * sandbox). Pure: no I/O, so `seed apply --dry-run`, the daemon and the tests
 * compute the same thing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "spec/spec.h"

struct json_t;

typedef enum seed_plan_kind {
    SEED_PLAN_UNCHANGED, /* same identity: never touched */
    SEED_PLAN_CREATE,
    SEED_PLAN_REPLACE, /* by the desired instance's rollout */
    SEED_PLAN_REMOVE,  /* stopped; volumes kept */
    _SEED_PLAN_KIND_MAX,
} seed_plan_kind;

/* An instance that exists now (running or not). */
typedef struct seed_plan_actual {
    const char *name;
    const char *identity;
} seed_plan_actual;

typedef struct seed_plan_step {
    seed_plan_kind kind;
    const char *name;
    seed_rollout rollout;         /* REPLACE: how */
    const seed_instance *desired; /* NULL for REMOVE */
    const char *old_identity;     /* NULL for CREATE */
    size_t actual;                /* index into the actual list; REPLACE, REMOVE, UNCHANGED */
} seed_plan_step;

typedef struct seed_plan {
    seed_plan_step *steps; /* sorted by name */
    size_t n;
    size_t counts[_SEED_PLAN_KIND_MAX];
} seed_plan;

/* Compare desired (a valid project) with what exists. only: restrict to one
 * instance name (NULL: all). 0, or -ENOMEM. */
int seed_plan_make(const seed_project *desired, const seed_plan_actual *actual, size_t n_actual,
                   const char *only, seed_plan *out);
void seed_plan_clear(seed_plan *p);
bool seed_plan_is_noop(const seed_plan *p);

const char *seed_plan_kind_name(seed_plan_kind k); /* "unchanged", "create", "replace", "remove" */
/* "+", "~", "-", "=" */
const char *seed_plan_kind_sign(seed_plan_kind k);
/* [{"name":..,"action":"replace","rollout":"rolling","identity":..,"oldIdentity":..}, ...] */
struct json_t *seed_plan_json(const seed_plan *p);
