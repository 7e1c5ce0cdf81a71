/* The shoot API's HTTP server (see http.c). */
#pragma once

#include <sys/socket.h>

#include "base/error.h"
#include "base/event.h"
#include "shoot/pool.h"

typedef struct seed_shoot_http seed_shoot_http;

/* Which pool serves a caller at this source address; NULL (with *why) for a 403. */
typedef seed_shoot_pool *(*seed_shoot_resolve_fn)(void *userdata, const struct sockaddr *peer,
                                                  const char **why);

/* Serve POST /shoot on listen_fd (bound and listening, non-blocking). */
int seed_shoot_http_new(seed_loop *loop, int listen_fd, seed_shoot_resolve_fn resolve, void *userdata,
                        seed_shoot_http **ret, seed_error **err);
void seed_shoot_http_free(seed_shoot_http *h);
