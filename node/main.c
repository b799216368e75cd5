/* node/main.c - the `cairn` command: dispatches to the daemon and the CLI. */
#include <stdio.h>
#include <string.h>

#include "ring/ring.h"

static int usage(FILE *f)
{
	fprintf(f, "usage: cairn COMMAND [ARGS]\n\n"
		   "commands:\n"
		   "  ring BUILDER_FILE VERB ...   build and inspect placement rings\n"
		   "\nRun 'cairn COMMAND --help' for a command's options.\n");
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return usage(stdout);
	if (strcmp(argv[1], "ring") == 0)
		return ring_cli_main(argc - 2, argv + 2);
	fprintf(stderr, "cairn: unknown command '%s'\n", argv[1]);
	return usage(stderr);
}
