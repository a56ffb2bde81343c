/* `shuntctl iptables render|apply|clean`: the command-line face of the Istio rule generator. */
#ifndef SHUNT_IPTABLES_CLI_H
#define SHUNT_IPTABLES_CLI_H

/* Exit codes, as every shuntctl command uses them. */
#define IPT_CLI_OK    0
#define IPT_CLI_FAIL  1 /* the command ran and failed; one line on stderr says why */
#define IPT_CLI_USAGE 2 /* bad command line; the reason and the usage go to stderr */

/* argv[0] is the command's own name (ignored), argv[1] render|apply|clean, then --pid PID,
 * --backend default|nft|legacy, --sidecar and istio-iptables setting flags. Returns an exit
 * code above. */
int ipt_cli_main(int argc, char **argv);

#endif
