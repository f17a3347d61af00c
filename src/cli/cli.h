/* src/cli/cli.h — one function per subcommand of the `macula` binary. */
#ifndef MACULA_CLI_H
#define MACULA_CLI_H

#include <stdarg.h>

int cli_node(int argc, char **argv);
int cli_sup_run(int argc, char **argv);
int cli_tree(int argc, char **argv);
int cli_mcp_fixture(int argc, char **argv);

#endif
