/*
 * src/cli/id.c — `macula id [OPTIONS]`: prints the node ID (64 lowercase hex digits) of the
 * identity `macula node` with the same options would use, creating it when absent. Takes the
 * node's options (--data-dir, --cert-path, --key-path, --config, ...: `macula node --help`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_id(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: macula id [--data-dir DIR] [other `macula node` options]\n"
                   "Prints the node ID: SHA-256 of the certificate's public key, in hex.\n");
            return 0;
        }
    }
    macula_config *conf = malloc(sizeof *conf);
    if (conf == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        return 1;
    }
    identity *id = NULL;
    int rc = cli_load_config(argc, argv, conf);
    if (rc == 0) {
        rc = cli_load_identity(conf, &id);
    }
    if (rc == 0) {
        char hex[IDENTITY_ID_HEX_LEN + 1];
        identity_node_id_hex(id, hex);
        if (identity_created(id)) {
            fprintf(stderr, "macula: created the identity in %s and %s\n", identity_key_path(id),
                    identity_cert_path(id));
        }
        printf("%s\n", hex);
        identity_free(id);
    }
    free(conf);
    return rc;
}
