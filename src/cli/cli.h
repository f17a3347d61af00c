/* src/cli/cli.h — one function per subcommand of the `macula` binary. */
#ifndef MACULA_CLI_H
#define MACULA_CLI_H

#include <stdarg.h>

#include "macula/config.h"
#include "mesh/identity.h"

int cli_node(int argc, char **argv);
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
int cli_pub(int argc, char **argv);
int cli_sub(int argc, char **argv);
int cli_chaos(int argc, char **argv);
/* A throw-away identity in a private temporary directory (a CLI client is not a member of the
 * mesh and must never take the id of a node on the same machine); prog prefixes messages.
 * Remove it with cli_temp_identity_remove(dir) after identity_free. */
int cli_temp_identity(const char *prog, char *dir, size_t dirsize, identity **out);
void cli_temp_identity_remove(const char *dir);

#endif
