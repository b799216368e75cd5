/* node/main.c - the `cairn` command: dispatches to the daemon and the CLI. */
#include <stdio.h>
#include <string.h>

#include "node/config.h"
#include "node/node.h"
#include "ring/ring.h"

static int usage(FILE *f)
{
	fprintf(f,
		"usage: cairn COMMAND [ARGS]\n\n"
		"cairn is a storage service: an S3 API over one deduplicated,\n"
		"erasure-coded pool of devices, and block volumes over NBD.\n\n"
		"commands:\n"
		"  serve [OPTIONS]                   run a node (S3, NBD, admin API, /metrics)\n"
		"  user create NAME | list | delete NAME\n"
		"                                    manage S3 users on a running node\n"
		"  key create USER | list [USER] | delete ID\n"
		"                                    manage access keys on a running node\n"
		"  token create USER [--ttl T] | list [--user U] | delete ID\n"
		"                                    manage bearer tokens (image registry)\n"
		"  fsck [--fix]                      check (and fix) reference counts and\n"
		"                                    pool counters against the manifests\n"
		"  gc                                free unreferenced chunks and stripes\n"
		"  scrub                             re-read and verify all data, repair damage\n"
		"  repair                            rebuild what lost devices held\n"
		"  df [--json]                       pool space, ratios and devices\n"
		"  volume create|clone|list|show|resize|qos|delete|rollback|attach|detach\n"
		"                                    manage block volumes (served over NBD)\n"
		"  snapshot create|list|delete|diff  manage volume snapshots\n"
		"  image register|create|df          images: register an S3 object, capture a\n"
		"                                    volume, space per image\n"

		"  ring BUILDER_FILE VERB ...        build and inspect placement rings\n"
		"  powerloss-replay DATA             apply a power-loss test log (tests)\n"
		"  version                           print the version\n"
		"\nRun 'cairn COMMAND --help' for a command's options.\n");
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
		return usage(stdout);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("cairn %s\n", CAIRN_VERSION);
		return 0;
	}
	if (strcmp(cmd, "ring") == 0)
		return ring_cli_main(argc - 2, argv + 2);
	if (strcmp(cmd, "serve") == 0)
		return node_serve_main(argc - 1, argv + 1);
	if (strcmp(cmd, "user") == 0)
		return node_user_main(argc - 1, argv + 1);
	if (strcmp(cmd, "key") == 0)
		return node_key_main(argc - 1, argv + 1);
	if (strcmp(cmd, "token") == 0)
		return node_token_main(argc - 1, argv + 1);
	if (strcmp(cmd, "fsck") == 0 || strcmp(cmd, "gc") == 0 || strcmp(cmd, "scrub") == 0 ||
	    strcmp(cmd, "repair") == 0)
		return node_job_main(argc - 1, argv + 1);
	if (strcmp(cmd, "volume") == 0)
		return node_volume_main(argc - 1, argv + 1);
	if (strcmp(cmd, "snapshot") == 0)
		return node_snapshot_main(argc - 1, argv + 1);
	if (strcmp(cmd, "image") == 0)
		return node_image_main(argc - 1, argv + 1);
	if (strcmp(cmd, "df") == 0)
		return node_df_main(argc - 1, argv + 1);
	if (strcmp(cmd, "powerloss-replay") == 0)
		return node_powerloss_replay_main(argc - 1, argv + 1);
	fprintf(stderr, "cairn: unknown command '%s'\n", cmd);
	return usage(stderr);
}
