/* Fuzzes the istio-iptables flag parser and the renderer: no input may break a restore line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iptables/rules.h"

#define FUZZ_ARGS_MAX 32

/* Accepted settings always render to lines iptables-restore reads as intended: a table header,
 * a chain declaration, a rule or COMMIT. A value smuggling a newline or a quote into a rule
 * would show up here as a line of another shape. */
static void check_rendered(const char *text)
{
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");

		if (strncmp(p, "* ", 2) && strncmp(p, "-N ", 3) && strncmp(p, "-A ", 3) &&
		    strncmp(p, "-I ", 3) && !(n == 6 && !strncmp(p, "COMMIT", 6)))
			abort();
		for (size_t i = 0; i < n; i++)
			if (p[i] == '"' || p[i] == '\'' || p[i] == '\\' ||
			    (unsigned char)p[i] < ' ')
				abort();
		p += n;
		if (*p == '\n')
			p++;
	}
}

/* Input: arguments separated by newlines, as a command line would hand them over. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *args[FUZZ_ARGS_MAX], *text = NULL;
	struct ipt_config *cfg = malloc(sizeof(*cfg));
	int argc = 0, i = 0;
	size_t len = 0;
	FILE *out;

	if (!buf || !cfg)
		goto out;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; argc < FUZZ_ARGS_MAX;) {
		args[argc++] = p;
		p = strchr(p, '\n');
		if (!p)
			break;
		*p++ = '\0';
	}
	ipt_config_init(cfg);
	while (i < argc) {
		char err[IPT_ERR_MAX];
		int at = i;

		if (ipt_config_arg(cfg, argc, args, &i, err, sizeof(err)) < 0) {
			if (strchr(err, '\n'))
				abort(); /* error messages are one line, whatever the input */
			i = at + 1;
		}
	}
	if (ipt_config_validate(cfg, NULL, 0) < 0)
		goto out;
	out = open_memstream(&text, &len);
	if (!out)
		goto out;
	if (ipt_render(cfg, out) < 0)
		abort();
	fclose(out);
	check_rendered(text);
out:
	free(text);
	free(cfg);
	free(buf);
	return 0;
}
