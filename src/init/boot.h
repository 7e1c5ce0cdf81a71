/* Image mode's boot tasks: what seed-init does before it starts the processes when it
 * is PID 1 of an image (`seed image build`) rather than of a node's sandbox. Each task
 * logs one line "seed-init: <task>: <what happened>" on stderr and fails soft: a
 * missing tool or a read-only file is a warning, not a dead machine. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/macro.h"
#include "init/users.h"

/* One line "seed-init: <task>: <message>" on stderr. A message starting "warning: " is
 * the task failing soft. */
void seed_boot_log(const char *task, const char *fmt, ...) _printf_(2, 3);

/* The boot tasks, as they log themselves, and the names boot.required takes. */
#define SEED_BOOT_TASKS "users", "password", "ssh", "tailscale", "gpu", "persist", "nix"

/* Whether task did its work: it said something and nothing of it was a warning; else
 * why not, in why. */
bool seed_boot_task_done(const char *task, char *why, size_t why_len);

/* The spec's users: passwd/group/shadow entries for those the image lacks (written in
 * place, or bind-mounted from /run/seed/etc where /etc is read-only), and their home
 * directories when missing. */
void seed_boot_accounts(const seed_account *a, size_t n);

/* The value of the environment variable name, taken out of our environment: unset, and
 * its bytes in the environment block /proc/1/environ shows overwritten, so that no
 * process started afterwards inherits it and nothing reads it there. NULL when unset;
 * else malloc'd. */
char *seed_boot_take_env(const char *name);

/* ROOT_PASSWORD: root's /etc/shadow entry gets its yescrypt hash (SHA-512 crypt where
 * the library lacks yescrypt); without it, an empty root password becomes "*" (none). */
void seed_boot_password(const char *password);

/* SSH_PUBLIC_KEYS (and the file SSH_PUBLIC_KEYS_FILE) into ~/.ssh/authorized_keys of
 * root and of each spec user (0700/0600, owned by them; keys there already are kept). */
void seed_boot_ssh_keys(const char *keys, const char *keys_file, const seed_account *users, size_t n);

/* When the image has sshd: host keys generated once (ssh-keygen -A) under
 * <persist>/.seed/ssh (NULL persist: /etc/ssh), the privilege separation account and
 * directory, and the argv (malloc'd, NULL-terminated) of `sshd -D -e` on port with
 * password and keyboard-interactive authentication off. NULL without sshd or keys. */
char **seed_boot_sshd(const char *persist, unsigned port);

/* TAILSCALE_AUTHKEY, when the image has tailscaled and tailscale: the key written to a
 * root-only file (so that it is in no process's arguments or environment), and the argv
 * of tailscaled (state under <persist>/.seed/tailscale, userspace networking without
 * /dev/net/tun) and of `tailscale up --authkey=file:<that file> --hostname=<hostname>`
 * (malloc'd, NULL-terminated). 0, or -ENOENT (without tailscaled: one warning logged). */
#define SEED_TAILSCALE_KEY_FILE "/run/seed/tailscale-authkey"
int seed_boot_tailscale(const char *key, const char *persist, const char *hostname, char ***daemon,
                        char ***up);

/* GPU driver libraries injected by the host runtime: when the container has NVIDIA
 * devices (/dev/nvidia*, $NVIDIA_VISIBLE_DEVICES), wait up to $SEED_GPU_WAIT seconds
 * (default 30) for libcuda.so.1 in the usual directories, then make the image's
 * programs find the driver's libraries: ldconfig with those directories where the image
 * has one (an FHS image), else the NixOS link farm /run/opengl-driver/lib. */
void seed_boot_gpu(void);

/* Persistence on the volume persist (NULL: nothing): /nix as an overlay (the image's
 * below, <persist>/.seed/nix/upper above), else a copy on the volume made on first boot
 * (new store paths of a newer image added on later ones) bound or, without the right
 * to mount, linked over /nix; the spec users' homes from <persist>/homes/<user>, made
 * on first boot from the image's home or /etc/skel, bound (or linked) over their home;
 * and `sandbox = false` in /etc/nix/nix.conf where namespaces for the Nix sandbox
 * cannot be made. */
void seed_boot_persist(const char *persist, const seed_account *users, size_t n);

/* The argv of the image's nix-daemon (NULL: none). */
char **seed_boot_nix_daemon(void);
