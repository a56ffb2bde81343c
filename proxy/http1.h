/* HTTP/1.1 codec: zero-copy resumable head parsers, chunked decoder and chunk framing.
 *
 * Every parse function returns the number of bytes it consumed (> 0), HTTP1_INVALID (the
 * reason is in the state's err field) or HTTP1_INCOMPLETE (call again with the same bytes
 * and more appended). Nothing allocates; returned spans point into the caller's buffer.
 *
 * Line endings: CRLF, or a bare LF, everywhere (head, chunk-size lines, after chunk data,
 * trailers), as RFC 9112 section 2.2 allows; a CR anywhere but right before LF is refused.
 * Because the chunked decoder is lenient that way and skips extensions, a proxy must write
 * its own chunk framing upstream (http1_chunk_header) rather than forward the client's.
 */
#ifndef SHUNT_PROXY_HTTP1_H
#define SHUNT_PROXY_HTTP1_H

#include <sys/types.h>

#include "proxy/http1-t.h"

#define HTTP1_INVALID	 (-1)
#define HTTP1_INCOMPLETE (-2)

/* Resolves 0 fields to defaults and clamps; lim may be NULL. */
void http1_limits_resolve(struct http1_limits *out, const struct http1_limits *lim);

/* Prepares p for one request head. hdrs[0..cap) receives the field lines; more than
 * min(cap, max_headers) of them is HTTP1_E_TOO_MANY_HEADERS. */
void http1_request_begin(struct http1_parser *p, const struct http1_limits *lim,
			 struct http1_header *hdrs, size_t cap);
/* Prepares p for the head of the response to a request with method req_method, which decides
 * whether a body follows (HEAD, CONNECT). */
void http1_response_begin(struct http1_parser *p, const struct http1_limits *lim,
			  struct http1_header *hdrs, size_t cap, enum http1_method req_method);

/* Parses buf[0..len), which starts at the beginning of the message (empty lines before a
 * start line are skipped and counted). On success fills msg; its spans point into buf. msg is
 * untouched otherwise. After HTTP1_INVALID the parser stays failed; after success it keeps
 * returning the same count and leaves msg alone until the next *_begin. */
int http1_parse_request(struct http1_parser *p, const char *buf, size_t len, struct http1_msg *msg);
int http1_parse_response(struct http1_parser *p, const char *buf, size_t len,
			 struct http1_msg *msg);

/* The status the proxy should answer an error with (400, 414, 431, 505), a short phrase
 * naming what was wrong, and whether it is a request smuggling shape (for counters). */
int http1_err_status(enum http1_err err);
const char *http1_err_text(enum http1_err err);
bool http1_err_is_smuggling(enum http1_err err);

const char *http1_method_name(enum http1_method m);

/* Case-insensitive comparison of a span with a lower-case string. */
bool http1_span_ieq(struct http1_span s, const char *lower);

/* Prepares c for one chunked body; trailers[0..cap) receives the trailer fields (cap may be 0,
 * then any trailer field is HTTP1_E_TOO_MANY_HEADERS). Limits as for heads; the trailer
 * section counts against max_head_bytes. */
void http1_chunked_begin(struct http1_chunked *c, const struct http1_limits *lim,
			 struct http1_header *trailers, size_t cap);
/* Decodes buf[0..len). Returns bytes consumed (> 0), and in *data the body bytes among them
 * (possibly none; always at the end of the consumed bytes), or HTTP1_INCOMPLETE when nothing
 * could be consumed (len 0, or a trailer section not yet complete: keep those bytes and call
 * again with more), or HTTP1_INVALID, or 0 once the body is complete. Each call returns at most
 * one data range, so the caller loops. Trailer spans point into the buffer of the call that
 * completed them. */
ssize_t http1_chunked_decode(struct http1_chunked *c, const char *buf, size_t len,
			     struct http1_span *data);
bool http1_chunked_done(const struct http1_chunked *c);
size_t http1_chunked_ntrailers(const struct http1_chunked *c);

/* Chunk framing for encoding: writes "<hex size>\r\n" into out, which has room for
 * HTTP1_CHUNK_HEADER_MAX bytes, and returns its length. Size 0 writes nothing and returns 0,
 * so an empty write can never end a body by accident; end it with HTTP1_CHUNK_LAST or
 * http1_chunk_last(). Each chunk's data is followed by HTTP1_CHUNK_END. */
size_t http1_chunk_header(char *out, uint64_t size);
/* Writes the last chunk and a trailer section with the given fields into out[0..cap); returns
 * its length, or -1 when it does not fit. */
ssize_t http1_chunk_last(char *out, size_t cap, const struct http1_header *trailers, size_t n);

#endif
