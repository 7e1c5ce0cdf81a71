/* The plan: what applying a project takes, decided by identity alone. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "plan/plan.h"
#include "spec/spec.h"

static seed_project *load(const char *json) {
    seed_project *p = NULL;
    seed_diags d = {0};
    assert_int_equal(seed_project_parse(json, strlen(json), -1, NULL, "test:plan", &p, &d), 0);
    assert_int_equal(seed_diags_count(&d), 0);
    seed_diags_clear(&d);
    return p;
}

static const char *id(const seed_project *p, const char *name) {
    return seed_project_find(p, name)->identity;
}

static const seed_plan_step *step(const seed_plan *plan, const char *name) {
    for (size_t i = 0; i < plan->n; i++)
        if (strcmp(plan->steps[i].name, name) == 0)
            return &plan->steps[i];
    fail_msg("no step for %s", name);
    return NULL;
}

static void test_each_kind(void **state) {
    seed_project *old = load("{\"a\": {}, \"b\": {\"env\": {\"V\": \"1\"}}, \"c\": {}}");
    seed_project *new =
        load("{\"a\": {}, \"b\": {\"env\": {\"V\": \"2\"}, \"rollout\": \"rolling\"}, \"d\": {}}");
    seed_plan_actual actual[] = {{"a", id(old, "a")}, {"b", id(old, "b")}, {"c", id(old, "c")}};
    seed_plan plan;
    assert_int_equal(seed_plan_make(new, actual, 3, NULL, &plan), 0);
    assert_int_equal(plan.n, 4);
    /* sorted by name */
    assert_string_equal(plan.steps[0].name, "a");
    assert_string_equal(plan.steps[3].name, "d");
    assert_int_equal(step(&plan, "a")->kind, SEED_PLAN_UNCHANGED);
    assert_int_equal(step(&plan, "b")->kind, SEED_PLAN_REPLACE);
    assert_int_equal(step(&plan, "b")->rollout, SEED_ROLLOUT_ROLLING); /* the new spec's */
    assert_int_equal(step(&plan, "b")->actual, 1);
    assert_string_equal(step(&plan, "b")->old_identity, id(old, "b"));
    assert_int_equal(step(&plan, "c")->kind, SEED_PLAN_REMOVE);
    assert_null(step(&plan, "c")->desired);
    assert_int_equal(step(&plan, "d")->kind, SEED_PLAN_CREATE);
    assert_null(step(&plan, "d")->old_identity);
    for (int k = 0; k < _SEED_PLAN_KIND_MAX; k++)
        assert_int_equal(plan.counts[k], 1);
    assert_false(seed_plan_is_noop(&plan));

    json_t *j = seed_plan_json(&plan);
    assert_int_equal(json_array_size(j), 4);
    json_t *b = json_array_get(j, 1);
    assert_string_equal(json_string_value(json_object_get(b, "action")), "replace");
    assert_string_equal(json_string_value(json_object_get(b, "rollout")), "rolling");
    assert_null(json_object_get(json_array_get(j, 0), "rollout"));
    assert_true(json_is_null(json_object_get(json_array_get(j, 2), "identity")));
    json_decref(j);
    seed_plan_clear(&plan);
    seed_project_free(old);
    seed_project_free(new);
}

static void test_noop_and_only(void **state) {
    seed_project *p = load("{\"a\": {}, \"b\": {}}");
    seed_plan_actual actual[] = {{"b", id(p, "b")}, {"a", id(p, "a")}};
    seed_plan plan;
    assert_int_equal(seed_plan_make(p, actual, 2, NULL, &plan), 0);
    assert_true(seed_plan_is_noop(&plan));
    assert_int_equal(plan.counts[SEED_PLAN_UNCHANGED], 2);
    seed_plan_clear(&plan);
    /* only one instance: the others are not in the plan */
    seed_plan_actual changed[] = {{"a", "0000"}, {"b", "1111"}, {"gone", "2222"}};
    assert_int_equal(seed_plan_make(p, changed, 3, "a", &plan), 0);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.steps[0].kind, SEED_PLAN_REPLACE);
    seed_plan_clear(&plan);
    assert_int_equal(seed_plan_make(p, changed, 3, "gone", &plan), 0);
    assert_int_equal(plan.n, 1);
    assert_int_equal(plan.steps[0].kind, SEED_PLAN_REMOVE);
    seed_plan_clear(&plan);
    assert_int_equal(seed_plan_make(p, changed, 3, "nothing", &plan), 0);
    assert_int_equal(plan.n, 0);
    seed_plan_clear(&plan);
    seed_project_free(p);
}

static void test_empty_sides(void **state) {
    seed_project *empty = load("{}");
    seed_plan_actual actual[] = {{"x", "1"}, {"y", "2"}};
    seed_plan plan;
    assert_int_equal(seed_plan_make(empty, actual, 2, NULL, &plan), 0);
    assert_int_equal(plan.counts[SEED_PLAN_REMOVE], 2);
    seed_plan_clear(&plan);
    seed_project *p = load("{\"x\": {}}");
    assert_int_equal(seed_plan_make(p, NULL, 0, NULL, &plan), 0);
    assert_int_equal(plan.counts[SEED_PLAN_CREATE], 1);
    assert_string_equal(seed_plan_kind_sign(plan.steps[0].kind), "+");
    assert_string_equal(seed_plan_kind_name(plan.steps[0].kind), "create");
    seed_plan_clear(&plan);
    seed_project_free(p);
    seed_project_free(empty);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_kind),
        cmocka_unit_test(test_noop_and_only),
        cmocka_unit_test(test_empty_sides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
