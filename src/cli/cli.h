/* src/cli/cli.h — one function per subcommand of the `macula` binary. */
#ifndef MACULA_CLI_H
#define MACULA_CLI_H

#include <stdarg.h>
#include <stddef.h>

#include "macula/config.h"
#include "mesh/identity.h"

int cli_node(int argc, char **argv);
/* A node with extras (`macula flow serve`): more children of macula_root after the gateway
 * system, `started` once the tree is up (non-zero: the node stops with status 1), `stopping`
 * once when the node begins to stop (signal or root ended), before the tree shuts down. */
struct sup_child_spec;
struct uv_loop_s;
struct sup_rt;
typedef struct cli_node_ext {
    const struct sup_child_spec *children;
    size_t nchildren;
    int (*started)(void *user, struct uv_loop_s *loop, struct sup_rt *rt,
                   const macula_config *conf);
    void (*stopping)(void *user);
    void *user;
} cli_node_ext;
int cli_node_run(int argc, char **argv, const cli_node_ext *ext);
int cli_id(int argc, char **argv);
/* Shared by node and id (argv[0] is the subcommand): the configuration, or a message on
 * stderr and the exit status (2: invalid configuration); the identity, or a message and
 * 1 (2 when the configuration made it invalid). */
int cli_load_config(int argc, char **argv, macula_config *conf);
int cli_load_identity(const macula_config *conf, identity **out);
int cli_sup_run(int argc, char **argv);
int cli_tree(int argc, char **argv);
int cli_ping(int argc, char **argv);
int cli_mcp_fixture(int argc, char **argv);
int cli_dht(int argc, char **argv);
int cli_call(int argc, char **argv);
int cli_advertise(int argc, char **argv);
/* `macula __handler-guard PID CMD ARGS...` (internal, started by advertise, PID its own):
 * runs CMD in the guard's process group, exits as CMD did, and kills the group when
 * advertise dies. */
int cli_handler_guard(int argc, char **argv);
int cli_pub(int argc, char **argv);
int cli_sub(int argc, char **argv);
int cli_chaos(int argc, char **argv);
int cli_peers(int argc, char **argv);
/* A throw-away identity in a private temporary directory (a CLI client is not a member of the
 * mesh and must never take the id of a node on the same machine); prog prefixes messages.
 * Remove it with cli_temp_identity_remove(dir) after identity_free. */
int cli_temp_identity(const char *prog, char *dir, size_t dirsize, identity **out);
void cli_temp_identity_remove(const char *dir);
/* flow_cluster.c: `macula flow cluster ...` (argv[0] = "cluster") and the hidden flow-node. */
int cli_flow_cluster(int argc, char **argv);
int cli_flow_node(int argc, char **argv);
int cli_flow(int argc, char **argv);

#endif
