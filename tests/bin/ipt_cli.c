/* Test driver: `shuntctl iptables` as a binary of its own, until shuntctl wires it in. */
#include "iptables/cli.h"

int main(int argc, char **argv)
{
	return ipt_cli_main(argc, argv);
}
