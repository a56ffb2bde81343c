/* Types and limits of the HTTP/1.1 codec: spans, parsed heads, parser and chunked-decoder state. */
#ifndef SHUNT_PROXY_HTTP1_T_H
#define SHUNT_PROXY_HTTP1_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults of struct http1_limits. Envoy's max_request_headers_kb (60) and
 * max_headers_count (100); Envoy has no separate URI limit, so by default neither do we. */
#define HTTP1_MAX_HEAD_BYTES_DEF   (60 * 1024)
#define HTTP1_MAX_HEADERS_DEF	   100
#define HTTP1_MAX_REQUEST_LINE_DEF HTTP1_MAX_HEAD_BYTES_DEF
/* Ceiling of any configured head limit: offsets are 32-bit and results are ints. */
#define HTTP1_MAX_HEAD_BYTES_CAP (64 * 1024 * 1024)

/* A chunk-size line (size plus extensions, without CRLF) longer than this is refused: extensions carry
 * nothing we use, and an endless one would otherwise be a free way to hold a connection. */
#define HTTP1_MAX_CHUNK_LINE 4096
/* Largest Content-Length or chunk size accepted; anything above it cannot be a real body
 * and keeping it below 2^63 lets callers use signed arithmetic. */
#define HTTP1_MAX_BODY_LENGTH INT64_MAX
/* Room http1_chunk_header() needs: 16 hex digits and CRLF. */
#define HTTP1_CHUNK_HEADER_MAX 18
/* What follows the data of each chunk, and the last chunk with an empty trailer section. */
#define HTTP1_CHUNK_END	 "\r\n"
#define HTTP1_CHUNK_LAST "0\r\n\r\n"

/* Bytes in the caller's buffer. Never owns memory; never NUL-terminated. */
struct http1_span {
	const char *p;
	size_t len;
};

/* One field line; name as received (case preserved), value without surrounding whitespace. */
struct http1_header {
	struct http1_span name;
	struct http1_span value;
};

/* Methods the proxy treats specially or counts; anything else is HTTP1_METHOD_OTHER with
 * its name in http1_msg.method_name. Methods are case-sensitive: "get" is OTHER. */
enum http1_method {
	HTTP1_METHOD_OTHER,
	HTTP1_METHOD_GET,
	HTTP1_METHOD_HEAD,
	HTTP1_METHOD_POST,
	HTTP1_METHOD_PUT,
	HTTP1_METHOD_DELETE,
	HTTP1_METHOD_CONNECT,
	HTTP1_METHOD_OPTIONS,
	HTTP1_METHOD_TRACE,
	HTTP1_METHOD_PATCH,
};

/* RFC 9112 section 3.2. Authority-form is accepted only with CONNECT, asterisk-form only with
 * OPTIONS, and CONNECT accepts nothing else. */
enum http1_target_form {
	HTTP1_FORM_ORIGIN,    /* /path?query */
	HTTP1_FORM_ABSOLUTE,  /* http://authority/path?query */
	HTTP1_FORM_AUTHORITY, /* host:port */
	HTTP1_FORM_ASTERISK,  /* * */
};

/* How the body after a head is delimited. */
enum http1_body {
	HTTP1_BODY_NONE,	/* no body: the next message (or nothing) follows the head */
	HTTP1_BODY_LENGTH,	/* exactly content_length (> 0) bytes */
	HTTP1_BODY_CHUNKED,	/* chunked coding: feed it to the chunked decoder */
	HTTP1_BODY_UNTIL_CLOSE, /* response only: everything until the server closes */
	HTTP1_BODY_TUNNEL,	/* response only: 2xx to CONNECT or 101; raw bytes both ways */
};

/* Why a head or a chunked body was refused. http1_err_status() maps each to the status the
 * proxy answers with, http1_err_text() to a phrase for logs and error bodies. */
enum http1_err {
	HTTP1_OK,
	HTTP1_E_REQUEST_LINE, /* wrong spacing or missing parts */
	HTTP1_E_METHOD,
	HTTP1_E_TARGET,
	HTTP1_E_TARGET_FORM,
	HTTP1_E_VERSION,
	HTTP1_E_VERSION_UNSUPPORTED,
	HTTP1_E_STATUS_LINE,
	HTTP1_E_STATUS,
	HTTP1_E_BARE_CR,
	HTTP1_E_OBS_FOLD,
	HTTP1_E_HEADER_NAME,
	HTTP1_E_HEADER_NAME_SPACE,
	HTTP1_E_HEADER_NO_COLON,
	HTTP1_E_HEADER_VALUE,
	HTTP1_E_HOST_MISSING,
	HTTP1_E_HOST_REPEATED,
	HTTP1_E_HOST_INVALID,
	HTTP1_E_CONTENT_LENGTH,
	/* Request smuggling shapes: framing two parties could read differently. */
	HTTP1_E_CL_CONFLICT,
	HTTP1_E_TE_CL,
	HTTP1_E_TE_HTTP10,
	HTTP1_E_TE_NOT_CHUNKED,
	HTTP1_E_TE_INVALID,
	HTTP1_E_CONNECT_BODY,
	/* Limits. */
	HTTP1_E_URI_TOO_LONG,
	HTTP1_E_HEAD_TOO_LARGE,
	HTTP1_E_TOO_MANY_HEADERS,
	/* Chunked body. */
	HTTP1_E_CHUNK_SIZE,
	HTTP1_E_CHUNK_EXT,
	HTTP1_E_CHUNK_LINE_TOO_LONG,
	HTTP1_E_CHUNK_DATA_END,
	HTTP1_E__COUNT,
};

/* Caller-tunable limits (from HttpConnectionManager config). Values of 0 mean the default;
 * head sizes above HTTP1_MAX_HEAD_BYTES_CAP are clamped to it. */
struct http1_limits {
	uint32_t max_head_bytes;   /* start line + fields + blank line -> 431 */
	uint32_t max_headers;	   /* field lines -> 431 */
	uint32_t max_request_line; /* request line without its CRLF -> 414 */
};

/* A parsed request or response head. Every span points into the buffer given to the call that
 * completed the head and stays valid as long as those bytes do; the header array is the
 * caller's. Fields not listed for a direction are zero. */
struct http1_msg {
	/* Request line. */
	enum http1_method method;
	struct http1_span method_name;
	struct http1_span target;
	enum http1_target_form form;
	struct http1_span authority; /* from an absolute- or authority-form target, else empty */
	struct http1_span path;	     /* origin-form: the target; absolute-form: the part after the
				      * authority (may be empty); otherwise empty */
	/* Status line. */
	int status;
	struct http1_span reason;

	uint8_t minor; /* HTTP/1.<minor>: 0 or 1 (1.2+ is handled as 1.1 but reported as is) */
	struct http1_header *headers;
	size_t nheaders;

	/* Semantics, precomputed. */
	enum http1_body body;
	uint64_t content_length;   /* when body == HTTP1_BODY_LENGTH */
	struct http1_span host;	   /* request: the Host value; p == NULL when absent */
	struct http1_span upgrade; /* the Upgrade value when upgrade is set */
	bool keep_alive;	   /* the connection may carry another message after this one */
	bool upgrade_requested;	   /* request: Upgrade + Connection: upgrade, HTTP/1.1 */
	bool expect_continue;	   /* request: Expect: 100-continue, HTTP/1.1 */
};

/* Resumable head parser; one per message direction of a connection, reset per message.
 * Holds offsets, not pointers, so the caller may move the buffer between calls as long as the
 * bytes already passed are unchanged. */
struct http1_parser {
	struct http1_limits lim;
	struct http1_header *hdrs; /* caller's array; holds offsets until the head completes */
	uint32_t hdr_cap;
	uint32_t nhdrs;
	uint32_t scan; /* next byte to look at for a line feed */
	uint32_t line; /* start of the line being collected */
	uint8_t stage;
	bool response;
	enum http1_method req_method; /* response: the method of the request it answers */
	enum http1_err err;
	uint32_t err_off; /* where the error was found, for logs */
	/* Start line, as offsets. */
	uint32_t sl_a_off, sl_a_len; /* method, or reason */
	uint32_t sl_b_off, sl_b_len; /* target */
	uint32_t auth_off, auth_len;
	uint32_t path_off, path_len;
	enum http1_target_form form;
	enum http1_method method;
	uint16_t status;
	uint8_t minor;
	/* Field semantics gathered line by line. */
	uint16_t flags;
	uint64_t content_length;
	uint32_t host_off, host_len;
	uint32_t upgrade_off, upgrade_len;
};

/* Resumable chunked-body decoder. Chunk framing is consumed byte by byte, so the caller never
 * has to keep it; only the trailer section is collected whole, like a head. */
struct http1_chunked {
	uint64_t left; /* data bytes left in the current chunk */
	uint32_t line_len;
	uint8_t state;
	uint8_t quoted; /* inside a quoted-string of a chunk extension */
	enum http1_err err;
	struct http1_limits lim;
	struct http1_header *trailers; /* caller's array */
	uint32_t trailer_cap;
	uint32_t ntrailers;
	uint32_t scan, line; /* trailer section, relative to its first byte */
};

#endif
