/* The event loop: timers fire in deadline order, re-armed timers move, sources may be
 * freed from any callback (their own included), fds dispatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "base/event.h"

static char order[16];
static size_t n_order;

static int record(seed_source *s, void *userdata) {
    order[n_order++] = *(const char *)userdata;
    return 0;
}

static int stop(seed_source *s, void *userdata) {
    seed_loop_exit(userdata, 7);
    return 0;
}

static void test_timers_in_order(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    n_order = 0;
    seed_source *a, *b, *c, *d;
    assert_int_equal(seed_loop_add_timer(l, 30000, record, "c", &c), 0);
    assert_int_equal(seed_loop_add_timer(l, 10000, record, "a", &a), 0);
    assert_int_equal(seed_loop_add_timer(l, 20000, record, "b", &b), 0);
    assert_int_equal(seed_loop_add_timer(l, 15000, record, "x", &d), 0);
    seed_source_free(d);                               /* removed before it fires */
    assert_int_equal(seed_timer_restart(a, 25000), 0); /* moved after b */
    seed_source *end;
    assert_int_equal(seed_loop_add_timer(l, 50000, stop, l, &end), 0);
    assert_int_equal(seed_loop_run(l), 7);
    seed_source_free(end); /* fired timers stay allocated until their owner frees them */
    assert_int_equal(n_order, 3);
    assert_memory_equal(order, "bac", 3);
    seed_source_free(a);
    seed_source_free(b);
    seed_source_free(c);
    seed_loop_free(l);
}

typedef struct pair {
    seed_source *self, *other;
    int fired;
} pair;

static int free_both(seed_source *s, int fd, uint32_t events, void *userdata) {
    pair *p = userdata;
    char buf[8];
    (void)!read(fd, buf, sizeof(buf));
    p->fired++;
    seed_source_free(p->other); /* may already be queued in this batch */
    seed_source_free(p->self);
    return 0;
}

static void test_free_during_dispatch(void **state) {
    seed_loop *l = NULL;
    assert_int_equal(seed_loop_new(&l), 0);
    int p1[2], p2[2];
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    pair a = {0}, b = {0};
    assert_int_equal(seed_loop_add_io(l, p1[0], EPOLLIN, free_both, &a, &a.self), 0);
    assert_int_equal(seed_loop_add_io(l, p2[0], EPOLLIN, free_both, &b, &b.self), 0);
    a.other = b.self;
    b.other = a.self;
    assert_int_equal(write(p1[1], "x", 1), 1);
    assert_int_equal(write(p2[1], "y", 1), 1);
    assert_int_equal(seed_loop_run_once(l, 1000), 0);
    /* whichever ran first freed the other: exactly one callback ran */
    assert_int_equal(a.fired + b.fired, 1);
    seed_loop_free(l);
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_free_during_dispatch),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
