/* agentsim: a simulated fleet of chainwatch agents, speaking the real agent
 * protocol over TCP (and the audit webhook over HTTP). Used by tests,
 * benchmarks and the quickstart.
 *
 *   agentsim replay ...  plays scenario files (see replay.c)
 *   agentsim load ...    generates a steady synthetic load (see load.c)
 *
 * Main thread: parses the command line, then runs the subcommand's loop.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int sim_replay_main(int argc, char **argv);
int sim_load_main(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(f, "usage: agentsim replay [options] FILE...   replay scenario files\n"
               "       agentsim load [options]             generate synthetic agent load\n"
               "       agentsim COMMAND --help             options of a command\n");
}

int main(int argc, char **argv)
{
    /* A server that vanishes mid-write must not kill the simulator: libuv
     * leaves SIGPIPE alone, and the write then fails with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    int (*run)(int, char **) = NULL;
    if (strcmp(cmd, "replay") == 0) run = sim_replay_main;
    if (strcmp(cmd, "load") == 0) run = sim_load_main;
    if (!run) {
        fprintf(stderr, "agentsim: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "agentsim: curl_global_init failed\n");
        return 1;
    }
    int rc = run(argc - 1, argv + 1);
    curl_global_cleanup();
    return rc;
}
