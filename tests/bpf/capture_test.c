/* Tests the outbound programs (connect4/6, getpeername4/6, getsockopt, sockops, sk_msg) as
 * loaded by agent/datapath.c, without shuntd: this process enters a private netns and cgroup,
 * enrolls its netns and plays a third-party proxy on 127.0.0.1:15001 itself. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netfilter_ipv4.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/counters.h"
#include "agent/datapath.h"
#include "lib/addr.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/netns.h"
#include "tests/lib/tap.h"

#define MARK	  0x534e
#define DST4	  "10.99.0.1"
#define DST6	  "fd99::1"
#define EXCL_PORT 9091
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static struct datapath dp;
static __u64 netns;
static char cg[PATH_MAX], home_cg[PATH_MAX], bpffs[64];

static int listen_on(int family, const char *ip, __u16 port)
{
	struct sockaddr_storage ss;
	struct shunt_addr a;
	int fd = socket(family, SOCK_STREAM, 0), one = 1;

	addr_parse(&a, ip);
	socklen_t len = addr_to_sockaddr(&a, port, family, &ss);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		tap_diag("listen %s:%u: %s", ip, port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Connects a socket of `family` to ip:port; returns the fd or -errno. mark: SO_MARK or 0. */
static int dial(int family, const char *ip, __u16 port, __u32 mark)
{
	struct sockaddr_storage ss;
	struct shunt_addr a;
	int fd = socket(family, SOCK_STREAM, 0);

	addr_parse(&a, ip);
	socklen_t len = addr_to_sockaddr(&a, port, family, &ss);

	if (mark)
		setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static const char *peer_of(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct shunt_addr a;
	__u16 port;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) ||
	    addr_from_sockaddr(&a, &port, (struct sockaddr *)&ss))
		return "?";
	return addr_port_fmt(&a, port, buf, len);
}

static const char *orig_dst_of(int fd, int level, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct shunt_addr a;
	__u16 port;

	memset(&ss, 0, sizeof(ss));
	if (getsockopt(fd, level, level == SOL_IP ? SO_ORIGINAL_DST : IP6T_SO_ORIGINAL_DST, &ss,
		       &sl))
		return strerror(errno);
	if (addr_from_sockaddr(&a, &port, (struct sockaddr *)&ss))
		return "?";
	return addr_port_fmt(&a, port, buf, len);
}

static __u64 stat_get(enum shunt_stat s)
{
	struct shunt_counters c;

	counters_read(dp.fd.stats, netns, &c);
	return c.v[s];
}

static int map_entries(int fd)
{
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	char key[128], next[128];
	void *prev = NULL;
	int n = 0;

	bpf_obj_get_info_by_fd(fd, &info, &len);
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, info.key_size);
		prev = key;
		n++;
	}
	return n;
}

static void set_pod_flags(__u32 flags)
{
	struct shunt_pod pod = {.flags = flags};

	snprintf(pod.name, sizeof(pod.name), "capture-test");
	bpf_map_update_elem(dp.fd.mesh_netns, &netns, &pod, BPF_ANY);
}

static int move_to(const char *cgroup)
{
	char path[PATH_MAX + 16], pid[16];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = snprintf(pid, sizeof(pid), "%d", getpid());
	if (write(fd, pid, (size_t)n) != n)
		err = -errno;
	close(fd);
	return err;
}

static int setup(void)
{
	char mnt[PATH_MAX], rel[PATH_MAX];
	static const __u16 excl_out[] = {EXCL_PORT, 0};
	struct dp_opts o = {.mark = MARK,
			    .sockmap = true,
			    .outbound = true,
			    .inbound = true,
			    .exclude_out = excl_out};
	struct shunt_counters zero[512] = {0};

	if (cgroup2_mount_find(mnt, sizeof(mnt)) || cgroup_path_of_pid(getpid(), rel, sizeof(rel)))
		return -1;
	snprintf(home_cg, sizeof(home_cg), "%s%s", mnt, rel);
	snprintf(cg, sizeof(cg), "%s/shunt-bpft-%d", mnt, getpid());
	snprintf(bpffs, sizeof(bpffs), "/tmp/shunt-bpft-%d", getpid());
	if (mkdir(cg, 0755))
		return -1;
	if (unshare(CLONE_NEWNET))
		return -1;
	/* Addresses outside 127/8 and ::1 on lo give the netns destinations that get captured
	 * (this kernel has no dummy interfaces). */
	if (system("ip link set lo up && ip addr add " DST4 "/32 dev lo && "
		   "ip addr add " DST6 "/128 dev lo nodad"))
		return -1;
	o.bpffs_dir = bpffs;
	o.cgroup_path = cg;
	if (dp_open(&dp, &o))
		return -1;
	if (netns_cookie_current(&netns))
		return -1;
	set_pod_flags(0);
	bpf_map_update_elem(dp.fd.stats, &netns, zero, BPF_ANY);
	return move_to(cg);
}

static void teardown(void)
{
	move_to(home_cg);
	dp_close(&dp);
	rmdir(cg);
}

/* A captured connection: client, the accepted end at the fake proxy. */
static void test_capture4(int proxy4, int server)
{
	char buf[64];
	int c, p;
	__u64 redirected = stat_get(SHUNT_STAT_CONNECT_REDIRECTED),
	      msgs = stat_get(SHUNT_STAT_MSG_REDIRECTED);

	c = dial(AF_INET, DST4, 80, 0);
	ok(c >= 0, "v4 connect to " DST4 ":80 succeeds");
	p = accept(proxy4, NULL, NULL);
	ok(p >= 0, "and lands on the proxy's 127.0.0.1:15001");
	is_int(stat_get(SHUNT_STAT_CONNECT_REDIRECTED), redirected + 1, "connect_redirected += 1");
	is_str(peer_of(c, buf, sizeof(buf)), DST4 ":80", "getpeername gives the app the original");
	is_str(orig_dst_of(p, SOL_IP, buf, sizeof(buf)), DST4 ":80",
	       "SO_ORIGINAL_DST on the accepted socket answers the original");
	is_int(map_entries(dp.fd.orig_dst_by_tuple), 1, "orig_dst_by_tuple holds it for the proxy");
	is_int(map_entries(dp.fd.sock_pairs), 2, "both ends of the hop are in sock_pairs");

	ok(write(c, "ping", 4) == 4 && read(p, buf, sizeof(buf)) == 4 && !memcmp(buf, "ping", 4),
	   "app -> proxy bytes arrive");
	ok(write(p, "pong!", 5) == 5 && read(c, buf, sizeof(buf)) == 5 && !memcmp(buf, "pong!", 5),
	   "proxy -> app bytes arrive");
	cmp_ge(stat_get(SHUNT_STAT_MSG_REDIRECTED), msgs + 2, "sk_msg redirected both messages");

	socklen_t len = sizeof(int);
	int type = 0;

	ok(getsockopt(p, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM,
	   "other options are left alone (SO_TYPE)");
	close(c);
	close(p);
	usleep(100 * 1000);
	is_int(map_entries(dp.fd.orig_dst_by_cookie), 0, "closing drops orig_dst_by_cookie");
	is_int(map_entries(dp.fd.orig_dst_by_tuple), 0, "and orig_dst_by_tuple");
	is_int(map_entries(dp.fd.sock_pairs), 0, "and sock_pairs");

	int s = dial(AF_INET, "127.0.0.1", 15001, 0), a = accept(proxy4, NULL, NULL);
	const char *answer = orig_dst_of(a, SOL_IP, buf, sizeof(buf));

	ok(strcmp(answer, DST4 ":80") != 0,
	   "SO_ORIGINAL_DST of an uncaptured connection is the kernel's own answer (%s)", answer);
	close(s);
	close(a);
	(void)server;
}

static void test_passthrough(int proxy4, int server)
{
	char buf[64];
	__u64 pt = stat_get(SHUNT_STAT_CONNECT_PASSTHROUGH);
	int c = dial(AF_INET, DST4, EXCL_PORT, 0), a;

	ok(c >= 0, "connect to the excluded port %d succeeds", EXCL_PORT);
	is_str(peer_of(c, buf, sizeof(buf)), DST4 ":9091", "and goes straight to the server");
	is_int(stat_get(SHUNT_STAT_CONNECT_PASSTHROUGH), pt + 1, "connect_passthrough += 1");
	a = accept(server, NULL, NULL);
	ok(a >= 0, "the server accepted it");
	close(a);
	close(c);

	/* The proxy's own sockets carry the mark: never captured again. */
	__u64 red = stat_get(SHUNT_STAT_CONNECT_REDIRECTED);

	c = dial(AF_INET, DST4, 80, MARK);
	ok(c >= 0 && stat_get(SHUNT_STAT_CONNECT_REDIRECTED) == red,
	   "a socket with shunt's mark is not redirected");
	if (c >= 0)
		close(c);
	(void)proxy4;
}

static void test_fail_modes(int *proxy4)
{
	__u64 np = stat_get(SHUNT_STAT_CONNECT_NO_PROXY), rf = stat_get(SHUNT_STAT_CONNECT_REFUSED);
	char buf[64];
	int c;

	close(*proxy4); /* shuntd is gone */
	c = dial(AF_INET, DST4, 80, 0);
	ok(c >= 0, "no proxy listening: the connect still succeeds (fail-open)");
	is_str(peer_of(c, buf, sizeof(buf)), DST4 ":80", "straight to the destination");
	is_int(stat_get(SHUNT_STAT_CONNECT_NO_PROXY), np + 1, "connect_no_proxy += 1");
	if (c >= 0)
		close(c);
	set_pod_flags(SHUNT_POD_F_FAIL_CLOSED);
	c = dial(AF_INET, DST4, 80, 0);
	is_int(c, -EPERM, "with fail-closed, the connect is refused (EPERM)");
	is_int(stat_get(SHUNT_STAT_CONNECT_REFUSED), rf + 1, "connect_refused += 1");
	set_pod_flags(0);
	*proxy4 = listen_on(AF_INET, "127.0.0.1", 15001);
}

static void test_v6(int proxy6, int proxy4)
{
	char buf[64];
	int c, p;

	c = dial(AF_INET6, DST6, 80, 0);
	p = c >= 0 ? accept(proxy6, NULL, NULL) : -1;
	ok(c >= 0 && p >= 0, "v6 connect to [" DST6 "]:80 lands on [::1]:15001");
	is_str(peer_of(c, buf, sizeof(buf)), "[" DST6 "]:80", "v6 getpeername gives the original");
	is_str(orig_dst_of(p, SOL_IPV6, buf, sizeof(buf)), "[" DST6 "]:80",
	       "IP6T_SO_ORIGINAL_DST answers the original");
	close(c);
	close(p);

	c = dial(AF_INET6, "::ffff:" DST4, 80, 0);
	p = c >= 0 ? accept(proxy4, NULL, NULL) : -1;
	ok(c >= 0 && p >= 0, "a v4-mapped connect from a v6 socket lands on 127.0.0.1:15001");
	is_str(peer_of(c, buf, sizeof(buf)), DST4 ":80",
	       "and getpeername gives back the v4-mapped original");
	close(c);
	close(p);
}

static void test_unenrolled(int server)
{
	__u64 red = stat_get(SHUNT_STAT_CONNECT_REDIRECTED);
	char buf[64];
	int c;

	bpf_map_delete_elem(dp.fd.mesh_netns, &netns);
	c = dial(AF_INET, DST4, EXCL_PORT, 0);
	is_str(c >= 0 ? peer_of(c, buf, sizeof(buf)) : "failed", DST4 ":9091",
	       "an unenrolled netns connects directly");
	c = dial(AF_INET, DST4, 80, 0);
	is_str(c >= 0 ? peer_of(c, buf, sizeof(buf)) : "failed", DST4 ":80",
	       "even to a port that would be captured");
	is_int(stat_get(SHUNT_STAT_CONNECT_REDIRECTED), red, "and nothing is counted for it");
	(void)server;
}

int main(void)
{
	int proxy4, proxy6, server, server_excl, server80;

	if (geteuid())
		skip_all("needs root");
	log_threshold = L_WARN;
	if (setup()) {
		tap_diag("setup failed: %s", strerror(errno));
		teardown();
		skip_all("cannot set up a private netns, cgroup and datapath");
	}
	proxy4 = listen_on(AF_INET, "127.0.0.1", 15001);
	proxy6 = listen_on(AF_INET6, "::1", 15001);
	server_excl = listen_on(AF_INET, DST4, EXCL_PORT);
	server80 = listen_on(AF_INET, DST4, 80);
	listen_on(AF_INET6, DST6, 80);
	server = server_excl;
	ok(proxy4 >= 0 && proxy6 >= 0 && server >= 0 && server80 >= 0,
	   "fake proxy and servers listen");

	test_capture4(proxy4, server);
	test_passthrough(proxy4, server);
	test_fail_modes(&proxy4);
	test_v6(proxy6, proxy4);
	test_unenrolled(server80);
	teardown();
	return done_testing();
}
