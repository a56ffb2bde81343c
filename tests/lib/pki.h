/* Certificates for unit tests, made by the openssl command in the test's own temporary
 * directory: EC P-256, valid one day. */
#ifndef SHUNT_TESTS_PKI_H
#define SHUNT_TESTS_PKI_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "proxy/tls.h"

static inline int pki_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command line; its exit status (0: success). */
static inline int pki_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* A self-signed CA: dir/name.crt and dir/name.key. */
static inline int pki_ca(const char *dir, const char *name)
{
	return pki_sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		      "-nodes -days 1 -subj /CN=%s -keyout %s.key -out %s.crt 2>/dev/null",
		      dir, name, name, name);
}

/* A leaf signed by ca with one subjectAltName ("DNS:a.test", "URI:spiffe://..."):
 * dir/name.crt and dir/name.key. */
static inline int pki_leaf(const char *dir, const char *name, const char *ca, const char *san)
{
	return pki_sh(
		"cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		"-subj /CN=%s -keyout %s.key -out %s.csr 2>/dev/null && "
		"echo 'subjectAltName=%s' >%s.ext && "
		"openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -CAcreateserial -days 1 "
		"-extfile %s.ext -out %s.crt 2>/dev/null",
		dir, name, name, name, san, name, name, ca, ca, name, name);
}

/* A key belonging to no certificate: dir/name.key. */
static inline int pki_key(const char *dir, const char *name)
{
	return pki_sh(
		"cd %s && openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 "
		"-out %s.key 2>/dev/null",
		dir, name);
}

/* dir/file into buf (at most cap bytes); its length, or 0 when it cannot be read. */
static inline size_t pki_read(const char *dir, const char *file, char *buf, size_t cap)
{
	char path[512];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* dir/file as the PEM input of a px_tls_cfg; the text lives in one of 16 rotating buffers, so
 * a test may hold that many at once. Absent: {NULL, 0}. */
static inline struct px_tls_pem pki_pem(const char *dir, const char *file)
{
	static char bufs[16][8192];
	static unsigned next;
	struct px_tls_pem p = {0};
	char *buf = bufs[next % 16];
	size_t n = pki_read(dir, file, buf, sizeof(bufs[0]));

	if (n) {
		next++;
		p.data = buf;
		p.len = n;
	}
	return p;
}

static inline void pki_remove(const char *dir)
{
	pki_sh("rm -rf %s", dir);
}

#endif
