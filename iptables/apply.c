/* Runs iptables-restore/-save inside a pod's netns: apply and clean with save-and-restore rollback. */
#include "iptables/apply.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define IPT_EXIT_SETNS 125 /* child could not enter the netns or set up its stdio */
#define IPT_EXIT_EXEC  127 /* child could not exec the tool */
#define IPT_MAX_TOKENS 64  /* words in one rule spec handed to iptables -C */

#define STR_(x)	       #x
#define STR(x)	       STR_(x)
#define WAIT_ARG       "--wait=" STR(IPT_LOCK_WAIT_SECONDS)

extern char **environ;

enum ipt_tool {
	TOOL_RESTORE,
	TOOL_SAVE,
	TOOL_CMD
};

/* [backend][family 4 = 0, 6 = 1][tool] */
static const char *const tools[3][2][3] = {
	{{"iptables-restore", "iptables-save", "iptables"},
	 {"ip6tables-restore", "ip6tables-save", "ip6tables"}},
	{{"iptables-nft-restore", "iptables-nft-save", "iptables-nft"},
	 {"ip6tables-nft-restore", "ip6tables-nft-save", "ip6tables-nft"}},
	{{"iptables-legacy-restore", "iptables-legacy-save", "iptables-legacy"},
	 {"ip6tables-legacy-restore", "ip6tables-legacy-save", "ip6tables-legacy"}},
};

static const char *tool(enum ipt_backend be, int family, enum ipt_tool t)
{
	return tools[be][family == 6][t];
}

int ipt_backend_parse(const char *name, enum ipt_backend *be)
{
	if (!strcmp(name, "default") || !strcmp(name, "auto"))
		*be = IPT_BACKEND_DEFAULT;
	else if (!strcmp(name, "nft"))
		*be = IPT_BACKEND_NFT;
	else if (!strcmp(name, "legacy"))
		*be = IPT_BACKEND_LEGACY;
	else
		return -EINVAL;
	return 0;
}

const char *ipt_backend_name(enum ipt_backend be)
{
	static const char *const names[] = {"default", "nft", "legacy"};

	return be <= IPT_BACKEND_LEGACY ? names[be] : "?";
}

/* ---- running a tool inside the netns ----------------------------------------------------- */

/* Looked up before fork so the child only calls async-signal-safe functions. */
static int find_in_path(const char *name, char *path, size_t len)
{
	const char *p = getenv("PATH");

	if (!p || !*p)
		p = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*p) {
		size_t n = strcspn(p, ":");

		if (n > 0 && (size_t)snprintf(path, len, "%.*s/%s", (int)n, p, name) < len &&
		    access(path, X_OK) == 0)
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	return -ENOENT;
}

static int memfd_with(const char *name, const char *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int)n;
		}
		data += n;
		len -= (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static char *memfd_read(int fd, size_t *len)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *buf;
	size_t got = 0;

	if (size < 0 || lseek(fd, 0, SEEK_SET) < 0 || !(buf = malloc((size_t)size + 1)))
		return NULL;
	while (got < (size_t)size) {
		ssize_t n = read(fd, buf + got, (size_t)size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (len)
		*len = got;
	return buf;
}

/* The first line iptables prints on failure, plus the input line it names, so the one-line
 * reason says what and where: "Chain 'X' does not exist (input line 7)". */
static void error_line(const char *stderr_text, char *out, size_t len)
{
	const char *p = stderr_text, *at = strstr(stderr_text, "Error occurred at line: ");
	size_t n;

	while (*p == '\n')
		p++;
	n = strcspn(p, "\n");
	if (at)
		snprintf(out, len, "%.*s (input line %d)", (int)n, p, atoi(at + 24));
	else
		snprintf(out, len, "%.*s", (int)n, p);
}

/* Runs tool with args inside the netns, in as stdin. Returns its exit status (0-255), with
 * stdout in *out (malloc'd, if out) and the first error line in errline; or -errno when it
 * could not run at all. stdio goes through memfds: no pipes to deadlock on. */
static int run_in_netns(int nsfd, const char *name, char *const args[], const char *in,
			size_t in_len, char **out, char *errline, size_t errlen)
{
	int fds[3] = {-1, -1, -1}, status, ret;
	char path[PATH_MAX], *text;
	pid_t pid;

	errline[0] = '\0';
	if (out)
		*out = NULL;
	if (find_in_path(name, path, sizeof(path)) < 0) {
		snprintf(errline, errlen,
			 "%s: not found in PATH (is the iptables package installed?)", name);
		return -ENOENT;
	}
	fds[0] = memfd_with("ipt-stdin", in ? in : "", in ? in_len : 0);
	fds[1] = memfd_with("ipt-stdout", "", 0);
	fds[2] = memfd_with("ipt-stderr", "", 0);
	for (int i = 0; i < 3; i++) {
		if (fds[i] < 0) {
			ret = fds[i];
			snprintf(errline, errlen, "memfd_create: %s", strerror(-ret));
			goto out;
		}
	}
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		snprintf(errline, errlen, "fork: %s", strerror(-ret));
		goto out;
	}
	if (pid == 0) {
		if (setns(nsfd, CLONE_NEWNET) < 0 || dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 ||
		    dup2(fds[2], 2) < 0)
			_exit(IPT_EXIT_SETNS);
		execve(path, args, environ);
		_exit(IPT_EXIT_EXEC);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			ret = -errno;
			snprintf(errline, errlen, "waitpid: %s", strerror(-ret));
			goto out;
		}
	}
	if (WIFSIGNALED(status)) {
		snprintf(errline, errlen, "%s: killed by signal %d", name, WTERMSIG(status));
		ret = 128 + WTERMSIG(status);
		goto out;
	}
	ret = WEXITSTATUS(status);
	if (ret == IPT_EXIT_SETNS) {
		snprintf(errline, errlen, "cannot enter the network namespace to run %s", name);
		ret = -EPERM;
		goto out;
	}
	if (ret == IPT_EXIT_EXEC) {
		snprintf(errline, errlen, "%s: cannot execute %.200s", name, path);
		ret = -ENOEXEC;
		goto out;
	}
	if (ret != 0) {
		char line[IPT_ERR_MAX] = "";

		if ((text = memfd_read(fds[2], NULL))) {
			error_line(text, line, sizeof(line));
			free(text);
		}
		/* iptables names itself ("iptables-restore v1.8.9 (legacy): ..."); if not, we do. */
		if (!line[0])
			snprintf(errline, errlen, "%s: exit status %d", name, ret);
		else if (strncmp(line, "iptables", 8) && strncmp(line, "ip6tables", 9))
			snprintf(errline, errlen, "%s: %s", name, line);
		else
			snprintf(errline, errlen, "%s", line);
	}
	if (out && !(*out = memfd_read(fds[1], NULL)))
		ret = -ENOMEM;
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

/* ---- saved state ------------------------------------------------------------------------- */

/* iptables-save output cut into the tables shunt may touch; a table absent from the output
 * (legacy: never loaded in this netns; nft: never created) is NULL. */
struct saved {
	char *table[IPT_TABLE_COUNT];
};

static void saved_free(struct saved *s)
{
	for (int t = 0; t < IPT_TABLE_COUNT; t++)
		free(s->table[t]);
	memset(s, 0, sizeof(*s));
}

static int table_from_name(const char *name, size_t len)
{
	for (int t = 0; t < IPT_TABLE_COUNT; t++)
		if (strlen(ipt_table_name(t)) == len && !strncmp(ipt_table_name(t), name, len))
			return t;
	return -1;
}

static int saved_parse(const char *text, struct saved *s)
{
	enum {
		OUTSIDE,
		IN_TABLE,
		SKIP_TABLE
	} state = OUTSIDE;
	FILE *f = NULL;
	size_t len;

	memset(s, 0, sizeof(*s));
	for (const char *p = text; *p; p += strcspn(p, "\n"), p += *p == '\n') {
		size_t n = strcspn(p, "\n");
		bool commit = n == 6 && !strncmp(p, "COMMIT", 6);

		if (state == OUTSIDE && p[0] == '*') {
			const char *name = p + 1;
			int t;

			while (*name == ' ')
				name++;
			t = table_from_name(name, (size_t)(p + n - name));
			state = SKIP_TABLE; /* a table shunt never touches, or a repeated one */
			if (t >= 0 && !s->table[t]) {
				if (!(f = open_memstream(&s->table[t], &len)))
					goto nomem;
				state = IN_TABLE;
			}
		}
		if (state == IN_TABLE && p[0] != '#')
			fprintf(f, "%.*s\n", (int)n, p);
		if (commit && state == IN_TABLE) {
			state = OUTSIDE;
			if (fclose(f) != 0)
				goto nomem;
		}
		if (commit)
			state = OUTSIDE;
	}
	/* A table without COMMIT is cut short; a rollback to half of it would lose rules. */
	if (state == IN_TABLE) {
		fclose(f);
		saved_free(s);
		return -EIO;
	}
	return 0;
nomem:
	if (state == IN_TABLE)
		fclose(f);
	saved_free(s);
	return -ENOMEM;
}

/* The first ISTIO_* chain found, as "table/chain", or false. */
static bool saved_istio_chain(const struct saved *s, char *where, size_t len)
{
	for (int t = 0; t < IPT_TABLE_COUNT; t++) {
		const char *p = s->table[t];

		for (; p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
			if (!strncmp(p, ":ISTIO_", 7)) {
				snprintf(where, len, "%s/%.*s", ipt_table_name(t),
					 (int)strcspn(p + 1, " \n"), p + 1);
				return true;
			}
		}
	}
	return false;
}

static int save_state(int nsfd, enum ipt_backend be, int family, struct saved *s, char *err,
		      size_t errlen)
{
	const char *name = tool(be, family, TOOL_SAVE);
	char *args[] = {(char *)name, NULL}, *out, line[IPT_ERR_MAX];
	int ret = run_in_netns(nsfd, name, args, NULL, 0, &out, line, sizeof(line));

	if (ret != 0) {
		snprintf(err, errlen, "%s", line);
		free(out);
		return ret < 0 ? ret : -EIO;
	}
	ret = saved_parse(out, s);
	free(out);
	if (ret < 0)
		snprintf(err, errlen, "%s: %s", name,
			 ret == -EIO ? "output cut short" : strerror(-ret));
	return ret;
}

/* ---- all-or-nothing loading -------------------------------------------------------------- */

/* Up to two restore inputs (IPv4 then IPv6), with the saved state of every table they name. */
struct txn {
	int nsfd;
	enum ipt_backend be;
	int n;
	struct {
		int family;
		char *text;
		size_t len;
		unsigned tables; /* bit per enum ipt_table named in text */
		struct saved before;
	} part[2];
};

static void txn_free(struct txn *t)
{
	for (int i = 0; i < t->n; i++) {
		free(t->part[i].text);
		saved_free(&t->part[i].before);
	}
	t->n = 0;
}

static unsigned tables_in(const char *text)
{
	unsigned mask = 0;

	for (const char *p = text; *p; p += strcspn(p, "\n"), p += *p == '\n') {
		if (p[0] == '*') {
			const char *name = p + 1;
			int t;

			while (*name == ' ')
				name++;
			t = table_from_name(name, strcspn(name, "\n"));
			if (t >= 0)
				mask |= 1u << t;
		}
	}
	return mask;
}

/* Puts the touched tables of parts 0..last back as saved, without --noflush so each is
 * replaced whole. A table that did not exist is restored empty. */
static int txn_rollback(struct txn *t, int last, char *err, size_t errlen)
{
	int ret = 0;

	for (int i = 0; i <= last; i++) {
		const char *name = tool(t->be, t->part[i].family, TOOL_RESTORE);
		char *args[] = {(char *)name, WAIT_ARG, NULL};
		char *text = NULL, line[IPT_ERR_MAX];
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		int r;

		if (!f)
			return -ENOMEM;
		for (int tb = 0; tb < IPT_TABLE_COUNT; tb++) {
			if (!(t->part[i].tables & (1u << tb)))
				continue;
			if (t->part[i].before.table[tb])
				fputs(t->part[i].before.table[tb], f);
			else
				fprintf(f, "*%s\nCOMMIT\n", ipt_table_name(tb));
		}
		if (fclose(f) != 0) {
			free(text);
			return -ENOMEM;
		}
		r = run_in_netns(t->nsfd, name, args, text, len, NULL, line, sizeof(line));
		free(text);
		if (r != 0 && ret == 0) {
			snprintf(err, errlen, "%s", line);
			ret = r < 0 ? r : -EIO;
		}
	}
	return ret;
}

static int txn_commit(struct txn *t, char *err, size_t errlen)
{
	for (int i = 0; i < t->n; i++) {
		const char *name = tool(t->be, t->part[i].family, TOOL_RESTORE);
		char *args[] = {(char *)name, "--noflush", WAIT_ARG, NULL};
		char line[IPT_ERR_MAX], rb_err[IPT_ERR_MAX];
		int ret;

		ret = run_in_netns(t->nsfd, name, args, t->part[i].text, t->part[i].len, NULL, line,
				   sizeof(line));
		if (ret == 0)
			continue;
		/* Tables commit one by one, and an earlier family may have committed already:
		 * put back everything this transaction touched. */
		if (txn_rollback(t, i, rb_err, sizeof(rb_err)) < 0)
			snprintf(err, errlen, "%s; rollback failed too: %s", line, rb_err);
		else
			snprintf(err, errlen, "%s (nothing changed)", line);
		return ret < 0 ? ret : -EIO;
	}
	return 0;
}

/* ---- netns ------------------------------------------------------------------------------- */

static bool same_ns(const struct stat *a, const char *path)
{
	struct stat b;

	return stat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

static int check_not_host(int nsfd, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(nsfd, &st) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot stat the network namespace: %s", strerror(e));
		return -e;
	}
	if (same_ns(&st, "/proc/self/ns/net") || same_ns(&st, "/proc/1/ns/net")) {
		snprintf(err, errlen,
			 "refusing to change the host's network namespace (give a pod's pid)");
		return -EPERM;
	}
	return 0;
}

int ipt_netns_open(pid_t pid, char *err, size_t errlen)
{
	char path[64];
	int fd, ret;

	if (pid <= 0) {
		snprintf(err, errlen, "%d is not a pid", (int)pid);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT) {
			snprintf(err, errlen, "no process with pid %d", (int)pid);
			return -ESRCH;
		}
		snprintf(err, errlen, "cannot open %s: %s%s", path, strerror(e),
			 (e == EACCES || e == EPERM) && geteuid() != 0 ? " (need root)" : "");
		return -e;
	}
	ret = check_not_host(fd, err, errlen);
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

/* ---- apply ------------------------------------------------------------------------------- */

int ipt_apply_netns(int netns_fd, const struct ipt_config *cfg, enum ipt_backend be, char *err,
		    size_t errlen)
{
	struct txn t = {.nsfd = netns_fd, .be = be};
	int ret;

	ret = ipt_config_validate(cfg, err, errlen);
	if (ret < 0)
		return ret;
	ret = check_not_host(netns_fd, err, errlen);
	if (ret < 0)
		return ret;
	for (int family = 4; family <= 6; family += 2) {
		char where[96];

		if (family == 6 && !cfg->ipv6)
			break;
		t.part[t.n].family = family;
		ret = ipt_render_family(cfg, family, &t.part[t.n].text, &t.part[t.n].len);
		if (ret < 0) {
			snprintf(err, errlen, "cannot render the IPv%d rules: %s", family,
				 strerror(-ret));
			goto out;
		}
		t.part[t.n].tables = tables_in(t.part[t.n].text);
		ret = save_state(netns_fd, be, family, &t.part[t.n].before, err, errlen);
		t.n++;
		if (ret < 0)
			goto out;
		/* Loading twice would fail on -N anyway, half way through; say why up front. */
		if (saved_istio_chain(&t.part[t.n - 1].before, where, sizeof(where))) {
			snprintf(err, errlen, "IPv%d rules already present (%s); run clean first",
				 family, where);
			ret = -EEXIST;
			goto out;
		}
	}
	ret = txn_commit(&t, err, errlen);
out:
	txn_free(&t);
	return ret;
}

/* ---- clean ------------------------------------------------------------------------------- */

/* Asks iptables whether a rule exists, by its own parsing of the spec (-C), since
 * iptables-save prints rules in a normalised form that differs from the rendered one. */
static bool rule_exists(int nsfd, enum ipt_backend be, int family, const struct ipt_rule *r)
{
	const char *name = tool(be, family, TOOL_CMD);
	char *args[IPT_MAX_TOKENS + 8], *words = strdup(r->spec), *save = NULL, line[IPT_ERR_MAX];
	int n = 0, ret;

	if (!words)
		return false;
	args[n++] = (char *)name;
	args[n++] = WAIT_ARG;
	args[n++] = "-t";
	args[n++] = (char *)ipt_table_name(r->table);
	args[n++] = "-C";
	args[n++] = (char *)r->chain;
	for (char *w = strtok_r(words, " ", &save); w && n < IPT_MAX_TOKENS;
	     w = strtok_r(NULL, " ", &save))
		args[n++] = w;
	args[n] = NULL;
	ret = run_in_netns(nsfd, name, args, NULL, 0, NULL, line, sizeof(line));
	free(words);
	return ret == 0;
}

static bool is_istio_chain(const char *name, size_t len)
{
	return len > 6 && !strncmp(name, "ISTIO_", 6);
}

/* "-A CHAIN ... -j ISTIO_X" (or -g) from a chain that is not an ISTIO_* one: a jump in. */
static bool save_line_jumps_in(const char *line, size_t n)
{
	const char *chain = line + 3, *last;
	size_t chain_len;

	if (n < 4 || strncmp(line, "-A ", 3))
		return false;
	chain_len = strcspn(chain, " \n");
	if (is_istio_chain(chain, chain_len))
		return false;
	for (last = line + n; last > line && last[-1] != ' '; last--)
		;
	if (last - line < 3 || (strncmp(last - 3, "-j ", 3) && strncmp(last - 3, "-g ", 3)))
		return false;
	return is_istio_chain(last, (size_t)(line + n - last));
}

/* Deletion input for one family, or NULL text when the family has nothing of Istio's. */
static int clean_text(int nsfd, enum ipt_backend be, const struct ipt_config *cfg, int family,
		      const struct saved *s, char **text, size_t *len)
{
	struct ipt_ruleset rs;
	char where[96];
	FILE *f;
	int ret;

	*text = NULL;
	*len = 0;
	if (!saved_istio_chain(s, where, sizeof(where)))
		return 0;
	ret = ipt_build(cfg, family, &rs);
	if (ret < 0)
		return ret;
	f = open_memstream(text, len);
	if (!f) {
		ipt_ruleset_free(&rs);
		return -ENOMEM;
	}
	for (int t = 0; t < IPT_TABLE_COUNT; t++) {
		const char *p, *tab = s->table[t];
		bool header = false;

		/* Rules in built-in chains that do not jump to an ISTIO_* chain are invisible in
		 * the saved state as "ours"; cfg says which they are, -C whether they are there. */
		for (size_t i = 0; i < rs.n; i++) {
			const struct ipt_rule *r = &rs.rule[i];
			char jump[32];
			bool dup = false;

			if (r->table != (enum ipt_table)t || !ipt_is_builtin(r->chain) ||
			    (ipt_rule_jump(r, jump, sizeof(jump)) &&
			     is_istio_chain(jump, strlen(jump))))
				continue;
			for (size_t j = 0; j < i && !dup; j++)
				dup = rs.rule[j].table == r->table &&
				      !strcmp(rs.rule[j].chain, r->chain) &&
				      !strcmp(rs.rule[j].spec, r->spec);
			if (dup || !rule_exists(nsfd, be, family, r))
				continue;
			if (!header)
				fprintf(f, "*%s\n", ipt_table_name(t));
			header = true;
			fprintf(f, "-D %s %s\n", r->chain, r->spec);
		}
		/* Jumps into ISTIO_* chains, exactly as iptables-save printed them. */
		for (p = tab; p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
			size_t n = strcspn(p, "\n");

			if (!save_line_jumps_in(p, n))
				continue;
			if (!header)
				fprintf(f, "*%s\n", ipt_table_name(t));
			header = true;
			fprintf(f, "-D %.*s\n", (int)(n - 3), p + 3);
		}
		/* Flush every ISTIO_* chain before deleting any: they jump to each other. */
		for (int pass = 0; pass < 2; pass++) {
			for (p = tab; p && *p; p += strcspn(p, "\n"), p += *p == '\n') {
				size_t n = strcspn(p + 1, " \n");

				if (p[0] != ':' || !is_istio_chain(p + 1, n))
					continue;
				if (!header)
					fprintf(f, "*%s\n", ipt_table_name(t));
				header = true;
				fprintf(f, "%s %.*s\n", pass ? "-X" : "-F", (int)n, p + 1);
			}
		}
		if (header)
			fputs("COMMIT\n", f);
	}
	ipt_ruleset_free(&rs);
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}

int ipt_clean_netns(int netns_fd, const struct ipt_config *cfg, enum ipt_backend be, char *err,
		    size_t errlen)
{
	struct txn t = {.nsfd = netns_fd, .be = be};
	int ret;

	ret = ipt_config_validate(cfg, err, errlen);
	if (ret < 0)
		return ret;
	ret = check_not_host(netns_fd, err, errlen);
	if (ret < 0)
		return ret;
	/* Both families whatever cfg->ipv6 says, so an IPv6 block applied with other settings
	 * is not left behind; a kernel without IPv6 tables just has nothing to clean there. */
	for (int family = 4; family <= 6; family += 2) {
		struct saved s;
		char *text;
		size_t len;

		ret = save_state(netns_fd, be, family, &s, err, errlen);
		if (ret < 0) {
			if (family == 6 && !cfg->ipv6) {
				ret = 0;
				err[0] = '\0';
				continue;
			}
			goto out;
		}
		ret = clean_text(netns_fd, be, cfg, family, &s, &text, &len);
		if (ret < 0 || !text || !len) {
			saved_free(&s);
			free(text);
			if (ret < 0) {
				snprintf(err, errlen, "cannot build the IPv%d clean-up: %s", family,
					 strerror(-ret));
				goto out;
			}
			continue;
		}
		t.part[t.n].family = family;
		t.part[t.n].text = text;
		t.part[t.n].len = len;
		t.part[t.n].tables = tables_in(text);
		t.part[t.n].before = s;
		t.n++;
	}
	ret = txn_commit(&t, err, errlen);
out:
	txn_free(&t);
	return ret;
}

/* ---- by pid ------------------------------------------------------------------------------ */

typedef int (*netns_op)(int netns_fd, const struct ipt_config *cfg, enum ipt_backend be, char *err,
			size_t errlen);

static int by_pid(netns_op op, pid_t pid, const struct ipt_config *cfg, enum ipt_backend be,
		  char *err, size_t errlen)
{
	int fd = ipt_netns_open(pid, err, errlen), ret;

	if (fd < 0)
		return fd;
	ret = op(fd, cfg, be, err, errlen);
	close(fd);
	return ret;
}

int ipt_apply(pid_t pid, const struct ipt_config *cfg, enum ipt_backend be, char *err,
	      size_t errlen)
{
	return by_pid(ipt_apply_netns, pid, cfg, be, err, errlen);
}

int ipt_clean(pid_t pid, const struct ipt_config *cfg, enum ipt_backend be, char *err,
	      size_t errlen)
{
	return by_pid(ipt_clean_netns, pid, cfg, be, err, errlen);
}
