/* Talking to a running node over its control socket (see node/control.c). */
#pragma once

#include <jansson.h>
#include <stdio.h>

/* Connect to the node of state_dir; prints why not and returns -errno. */
int cli_connect(const char *state_dir, int *ret);
/* The same without printing: -ENOENT or -ECONNREFUSED mean no node is running. */
int cli_connect_quiet(const char *state_dir, int *ret);
/* Print why cli_connect_quiet failed with r. */
void cli_connect_report(const char *state_dir, int r);
/* For a user other than root: if the state directory is closed to us (the node makes
 * what is in it root's only), say that seed needs root and return -EACCES; else 0. */
int cli_state_access(const char *state_dir);
/* Send one request and return a stream to read the answer lines from. */
int cli_request(int fd, json_t *req, FILE **ret);
/* Read one answer line; NULL at the end of the stream. */
json_t *cli_read_answer(FILE *f);
/* A one-answer request: returns the answer if it says ok, else prints the error
 * (prefixed with verb) and returns NULL. */
json_t *cli_call(const char *state_dir, const char *verb, json_t *req);
