/* src/cli/main.c — `macula SUBCOMMAND ...`. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "macula/version.h"

static void usage(FILE *f)
{
    fprintf(f,
            "macula %s — mesh node and supervision runtime\n\n"
            "usage: macula COMMAND [ARGS]\n\n"
            "commands:\n"
            "  node [OPTIONS]    run a node (zero configuration; `macula node --help`)\n"
            "  id [OPTIONS]      print this node's ID (creating its identity if absent)\n"
            "  ping URL          CONNECT to a node over QUIC and measure round trips\n"
            "  dht put|get|peers the DHT of a node (`macula dht --help`)\n"
            "  call PROC JSON    call a procedure served anywhere in the realm\n"
            "  advertise PROC -- CMD ARGS...  serve a procedure by running a command\n"
            "  pub TOPIC DATA    publish to a node's realm (`--qos 1`)\n"
            "  sub PATTERN       subscribe; prints TOPIC<TAB>PAYLOAD per message\n"
            "  peers             a node's connected peers and their per-peer state (`--json`)\n"
            "  chaos crash ACTOR kill a named actor of a node started with MACULA_CHAOS=1\n"
            "  tree              print a running node's supervision tree\n"
            "  sup-run FILE      play a supervision scenario on a virtual clock\n"
            "  mcp-fixture       MCP server with test fixture tools (stdio, or --http PORT)\n"
            "  flow ...          swarms, agents, tasks: flow mcp | serve | swarm | agent | task | "
            "cluster\n"
            "  version           print the version\n"
            "  help              this text\n",
            MACULA_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "node") == 0) {
        return cli_node(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "id") == 0) {
        return cli_id(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "sup-run") == 0) {
        return cli_sup_run(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "ping") == 0) {
        return cli_ping(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "dht") == 0) {
        return cli_dht(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "call") == 0) {
        return cli_call(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "advertise") == 0) {
        return cli_advertise(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "__handler-guard") == 0) {
        return cli_handler_guard(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "pub") == 0) {
        return cli_pub(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "sub") == 0) {
        return cli_sub(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "peers") == 0) {
        return cli_peers(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "chaos") == 0) {
        return cli_chaos(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "tree") == 0) {
        return cli_tree(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "flow-node") == 0) {
        return cli_flow_node(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "mcp-fixture") == 0) {
        return cli_mcp_fixture(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "flow") == 0) {
        return cli_flow(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("macula %s\n", MACULA_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "macula: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
