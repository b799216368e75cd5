/* tests/ring/ring_cli_driver.c - `ring_cli_driver BUILDER_FILE VERB ...` is
 * `cairn ring BUILDER_FILE VERB ...` without linking the whole node, so the
 * CLI tests and the bench run while other modules are still being built. */
#include "ring/ring.h"

int main(int argc, char **argv)
{
	return ring_cli_main(argc - 1, argv + 1);
}
