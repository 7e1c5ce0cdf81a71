/* `seed identity NAME [--json]`, `seed identity rotate NAME`, `seed identity rm NAME`:
 * an instance's age identity (issue 11), through the running node, which keeps it
 * sealed under its node key. The recipient is public; the identity never leaves the
 * node but as /seed/tpm/age-identity inside the instance. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/macro.h"
#include "cli/cli.h"
#include "cli/client.h"

static const char identity_usage[] =
    "Usage: seed identity NAME [--json] [--state-dir DIR]\n"
    "       seed identity rotate NAME [--json] [--state-dir DIR]\n"
    "       seed identity rm NAME [--state-dir DIR]\n"
    "\n"
    "Print the age recipient (age1...) of instance NAME: encrypt its secrets to it with\n"
    "age -r or sops. The instance has the identity at /seed/tpm/age-identity; the node makes\n"
    "it the first time the instance starts (or here, if it has not started yet) and keeps it\n"
    "until the instance's last volume is removed or 'seed identity rm'.\n"
    "\n"
    "  rotate  make a new identity: the old recipient no longer decrypts, so re-encrypt the\n"
    "          instance's secrets to the new one; the instance gets it at its next start\n"
    "  rm      delete the identity (a new one is made at the next start)\n"
    "  --json  print {namespace instance recipient created|previous|removed}\n";

int cli_identity(const cli_globals *g, int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h') {
            fputs(identity_usage, stdout);
            return 0;
        } else
            return cli_usage_error("identity", "unknown option '%s'", argv[optind - 1]);
    }
    const char *action = "show", *name = NULL;
    if (optind < argc && (streq(argv[optind], "rotate") || streq(argv[optind], "rm")))
        action = argv[optind++];
    if (argc - optind != 1)
        return cli_usage_error("identity", "expected one instance NAME (seed identity [rotate|rm] NAME)");
    name = argv[optind];
    if (streq(action, "rm") && json)
        return cli_usage_error("identity rm", "--json is an option of 'identity' and 'identity rotate'");
    if (cli_state_access(g->state_dir) < 0)
        return 1;
    char verb[32];
    snprintf(verb, sizeof(verb), streq(action, "show") ? "identity" : "identity %s", action);
    json_t *a = cli_call(g->state_dir, verb,
                         json_pack("{s:s, s:s, s:s}", "op", "identity", "name", name, "action", action));
    if (!a)
        return 1;
    json_object_del(a, "ok");
    const char *rcpt = json_string_value(json_object_get(a, "recipient"));
    const char *ns = json_string_value(json_object_get(a, "namespace"));
    if (json)
        cli_print_json(a);
    else if (streq(action, "show"))
        printf("%s\n", rcpt ? rcpt : "");
    else if (streq(action, "rotate")) {
        const char *prev = json_string_value(json_object_get(a, "previous"));
        printf("%s\n", rcpt ? rcpt : "");
        if (prev)
            fprintf(
                stderr,
                "seed identity rotate: %s/%s has a new identity; the old recipient %s no longer decrypts: "
                "re-encrypt its secrets to %s (the instance reads the new identity at its next start)\n",
                ns, name, prev, rcpt);
    } else
        printf(json_is_true(json_object_get(a, "removed")) ? "removed the identity of %s/%s\n"
                                                           : "%s/%s has no identity\n",
               ns, name);
    json_decref(a);
    return 0;
}
