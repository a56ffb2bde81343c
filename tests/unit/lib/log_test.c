/* Tests lib/log.c: level names round-trip, bad names rejected, threshold filtering. */
#include "lib/log.h"
#include "tests/lib/tap.h"

int main(void)
{
	static const char *names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++) {
		is_int(log_level_parse(names[i]), i, "parse %s", names[i]);
		is_str(log_level_name(i), names[i], "name of level %d", i);
	}
	is_int(log_level_parse("verbose"), -1, "unknown level rejected");
	is_int(log_level_parse(""), -1, "empty level rejected");
	is_int(log_level_parse("INFO"), -1, "level names are lower case, as Envoy's");
	is_str(log_level_name(7), "?", "out-of-range level has a placeholder name");
	return done_testing();
}
