/* Tests lib/addr.c: parsing, formatting, sockaddr round trips and key reversal. */
#include <arpa/inet.h>
#include <errno.h>

#include "lib/addr.h"
#include "tests/lib/tap.h"

static const struct {
	const char *in;
	int ok;
	int v4;
	const char *fmt;
	const char *fmt_port; /* with port 8080 */
} cases[] = {
	{"10.0.0.2", 1, 1, "10.0.0.2", "10.0.0.2:8080"},
	{"127.0.0.1", 1, 1, "127.0.0.1", "127.0.0.1:8080"},
	{"0.0.0.0", 1, 1, "0.0.0.0", "0.0.0.0:8080"},
	{"fd00::2", 1, 0, "fd00::2", "[fd00::2]:8080"},
	{"::1", 1, 0, "::1", "[::1]:8080"},
	{"::ffff:10.1.2.3", 1, 1, "10.1.2.3", "10.1.2.3:8080"}, /* v4-mapped is v4 */
	{"10.0.0", 0, 0, NULL, NULL},
	{"10.0.0.256", 0, 0, NULL, NULL},
	{"fd00:::2", 0, 0, NULL, NULL},
	{"", 0, 0, NULL, NULL},
	{"example.com", 0, 0, NULL, NULL},
};

int main(void)
{
	char buf[ADDR_STRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct shunt_addr a;
		int rc = addr_parse(&a, cases[i].in);

		is_int(rc == 0, cases[i].ok, "parse \"%s\" %s", cases[i].in,
		       cases[i].ok ? "accepted" : "rejected");
		if (!cases[i].ok || rc)
			continue;
		is_int(addr_is_v4(&a), cases[i].v4, "\"%s\" is %s", cases[i].in,
		       cases[i].v4 ? "v4" : "v6");
		is_str(addr_fmt(&a, buf, sizeof(buf)), cases[i].fmt, "format \"%s\"", cases[i].in);
		is_str(addr_port_fmt(&a, 8080, buf, sizeof(buf)), cases[i].fmt_port,
		       "format \"%s\" with a port", cases[i].in);

		/* sockaddr round trip, in both families where that makes sense. */
		for (int fam = AF_INET; fam <= AF_INET6; fam += AF_INET6 - AF_INET) {
			struct sockaddr_storage ss;
			struct shunt_addr back;
			__u16 port = 0;

			if (fam == AF_INET && !cases[i].v4)
				continue;
			addr_to_sockaddr(&a, 8080, fam, &ss);
			is_int(ss.ss_family, fam, "\"%s\" as family %d", cases[i].in, fam);
			ok(addr_from_sockaddr(&back, &port, (struct sockaddr *)&ss) == 0 &&
				   memcmp(&back, &a, sizeof(a)) == 0 && port == 8080,
			   "\"%s\" round-trips through sockaddr family %d", cases[i].in, fam);
		}
	}

	struct sockaddr_un {
		sa_family_t f;
	} un = {AF_UNIX};
	struct shunt_addr a;
	__u16 port;

	is_int(addr_from_sockaddr(&a, &port, (struct sockaddr *)&un), -EAFNOSUPPORT,
	       "a unix sockaddr is refused");

	struct shunt_sock_key k = {.netns = 7, .local_port = 15001, .remote_port = 40000}, r, rr;

	addr_parse(&k.local, "127.0.0.1");
	addr_parse(&k.remote, "127.0.0.2");
	sock_key_reverse(&r, &k);
	ok(r.netns == 7 && r.local_port == 40000 && r.remote_port == 15001 &&
		   !memcmp(&r.local, &k.remote, sizeof(r.local)) &&
		   !memcmp(&r.remote, &k.local, sizeof(r.remote)),
	   "reversing a key swaps the ends and keeps the netns");
	sock_key_reverse(&rr, &r);
	ok(!memcmp(&rr, &k, sizeof(k)), "reversing twice gives the key back");
	sock_key_reverse(&k, &k);
	ok(k.local_port == 40000 && k.remote_port == 15001, "reversing in place works");
	return done_testing();
}
