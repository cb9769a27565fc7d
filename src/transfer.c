#include "transfer.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lauxlib.h>

#include "compat.h"
#include "files.h"
#include "json.h"
#include "keys.h"
#include "profile.h"
#include "credentials.h"

/* Headers a hostile server may send before we give up on it (libcurl has its
 * own, smaller, per-line cap). */
#define KL_MAX_HEADER_BYTES (64 * 1024)

/* ---- libcurl callbacks: C buffers only, never the Lua state ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    kl_transfer *t = userp;
    size_t n = size * nmemb;
    if (t->out != NULL) {
        /* written only grows from 0, so it fits a size_t */
        if (t->body.limit && (n > t->body.limit || (size_t)t->written > t->body.limit - n)) {
            t->too_large = 1;
            return 0;
        }
        if (fwrite(data, 1, n, t->out) != n) {
            t->write_failed = 1;
            return 0;
        }
        t->written += (curl_off_t)n;
        return n;
    }
    switch (kl_buffer_append(&t->body, data, n)) {
    case KL_BUFFER_OK:
        return n;
    case KL_BUFFER_FULL:
        t->too_large = 1;
        return 0;
    default:
        t->write_failed = 1;
        return 0;
    }
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    kl_transfer *t = userp;
    size_t n = size * nmemb;
    /* keep only the final response's headers (not a 100 Continue's, nor a redirect's) */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        kl_buffer_reset(&t->head);
    if (kl_buffer_append(&t->head, data, n) != KL_BUFFER_OK) {
        t->too_large = 1;
        return 0;
    }
    return n;
}

/* One line of verbose output: an authorization header's value is cut off
 * (so even a token split across two callbacks is not shown), and the token
 * is blanked out wherever else it stands. */
static void log_line(kl_log *log, const char *prefix, const char *line, size_t len)
{
    size_t cut = kl_authorization_value(line, len);
    kl_buffer_append(&log->text, prefix, 2);
    if (cut > 0) {
        kl_redact_append(&log->text, line, cut, log->secrets);
        kl_buffer_append(&log->text, " " KL_REDACTED, sizeof KL_REDACTED);
    } else {
        kl_redact_append(&log->text, line, len, log->secrets);
    }
    kl_buffer_append(&log->text, "\n", 1);
}

/* Verbose output goes through here so that credentials never reach it, in
 * whatever debug text type libcurl uses for them. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userp)
{
    kl_log *log = userp;
    const char *prefix;
    (void)easy;
    switch (type) {
    case CURLINFO_TEXT: prefix = "* "; break;
    case CURLINFO_HEADER_IN: prefix = "< "; break;
    case CURLINFO_HEADER_OUT: prefix = "> "; break;
    default: return 0;
    }
    while (size > 0) {
        const char *nl = memchr(data, '\n', size);
        size_t len = nl ? (size_t)(nl - data) + 1 : size;
        size_t text = len;
        while (text > 0 && (data[text - 1] == '\n' || data[text - 1] == '\r'))
            text--;
        if (text > 0)
            log_line(log, prefix, data, text);
        data += len;
        size -= len;
    }
    return 0;
}

/* Called by libcurl once the connection is ready and before a byte of the
 * request is sent: a request still queued (behind max_connections, or
 * connecting) has sent nothing and may be dropped. */
#if LIBCURL_VERSION_NUM >= 0x075000
static int on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    kl_transfer *t = userp;
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    t->handed_over = 1;
    return CURL_PREREQFUNC_OK;
}
#endif

/* The body of a held request. The request line and headers may have gone
 * out, but a POST whose body never arrives is never acted on: the body is
 * what hands a submit over. It waits (paused) until the owner has made the
 * hand-over durable in the journal and releases it (kl_transfer_release). */
static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    kl_transfer *t = userp;
    size_t n = size * nitems, left = t->upload_len - t->upload_pos;
    if (t->journal_refused)
        return CURL_READFUNC_ABORT;
    if (!t->released) {
        if (!t->holding) {
            t->holding = 1;
            if (t->new_holds != NULL)
                (*t->new_holds)++;
        }
        return CURL_READFUNC_PAUSE;
    }
    if (n > left)
        n = left;
    memcpy(buf, t->upload + t->upload_pos, n);
    t->upload_pos += n;
    return n;
}

/* libcurl rewinds a body only to send it again: for a redirect, another
 * auth round, or when a reused connection died before any answer, which it
 * retries on a new one without telling. A submit's body that has begun to go
 * out is never sent again (docs/design.md, "Never billed twice"): the
 * transfer fails instead (CURLE_SEND_FAIL_REWIND, reason "rewind"), and the
 * submit counts as possibly taken. With this, submits may share connections. */
static int on_seek(void *userp, curl_off_t offset, int origin)
{
    kl_transfer *t = userp;
    if (offset == 0 && origin == SEEK_SET && t->upload_pos == 0)
        return CURL_SEEKFUNC_OK;
    t->rewind_refused = 1;
    return CURL_SEEKFUNC_CANTSEEK;
}

void kl_transfer_release(kl_transfer *t, int ok)
{
    if (ok) {
        t->released = 1;
        t->handed_over = 1;
    } else {
        t->journal_refused = 1;
    }
    t->holding = 0;
    curl_easy_pause(t->easy, CURLPAUSE_CONT);
}

/* Counts bytes for a caller's progress display (uploads and downloads). */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    kl_transfer *t = userp;
    t->down_total = dltotal;
    t->down_now = dlnow;
    t->up_total = ultotal;
    t->up_now = ulnow;
    if (t->form_fd >= 0) { /* a file's upload counts the file's bytes, not the multipart body's */
        t->up_total = (curl_off_t)t->form_size;
        t->up_now = (curl_off_t)t->form_pos;
    }
    return 0;
}

/* ---- building the easy handle (plain C) ---- */

/* The bytes of an uploaded file, for libcurl's MIME part. Exactly the size
 * measured when the file was opened goes out: a file that shrinks would
 * leave the body short (the upload would hang until its timeout), one that
 * grows would send a part whose bytes match no size; either ends the
 * upload as "file_changed". */
static size_t on_form_read(char *buf, size_t size, size_t nitems, void *userp)
{
    kl_transfer *t = userp;
    long long left = t->form_size - t->form_pos;
    size_t n = size * nitems;
    ssize_t got;
    struct stat st;
    if (left <= 0 || (long long)n > left)
        n = left > 0 ? (size_t)left : 0;
    if (n > 0) {
        do
            got = read(t->form_fd, buf, n);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            t->write_failed = 1; /* reported as a failure to read the file */
            return CURL_READFUNC_ABORT;
        }
        if (got == 0) { /* the file ended before its size: it shrank */
            t->file_changed = 1;
            return CURL_READFUNC_ABORT;
        }
        t->form_pos += got;
    } else {
        got = 0;
    }
    if (t->form_pos == t->form_size && (fstat(t->form_fd, &st) != 0 || (long long)st.st_size != t->form_size)) {
        t->file_changed = 1;
        return CURL_READFUNC_ABORT;
    }
    return (size_t)got;
}

/* libcurl rewinds a part it must send again (a redirect, an auth retry). */
static int on_form_seek(void *userp, curl_off_t offset, int origin)
{
    kl_transfer *t = userp;
    if (origin != SEEK_SET || offset < 0 || offset > t->form_size
        || lseek(t->form_fd, (off_t)offset, SEEK_SET) != (off_t)offset)
        return CURL_SEEKFUNC_FAIL;
    t->form_pos = offset;
    return CURL_SEEKFUNC_OK;
}

/* One part named "file" (the platform API's name for it, docs/api.md),
 * streamed from the file (a regular file, checked when opened), or sent
 * from memory. */
static int build_form(kl_transfer *t, const kl_request *req, char *err, size_t errlen)
{
    curl_mimepart *part;
    CURLcode rc;
    t->mime = curl_mime_init(t->easy);
    part = t->mime ? curl_mime_addpart(t->mime) : NULL;
    if (part == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    rc = curl_mime_name(part, "file");
    if (rc == CURLE_OK && req->form_file != NULL) {
        t->form_fd = kl_open_regular(req->form_file, &t->form_size, err, errlen);
        if (t->form_fd < 0)
            return 0;
        rc = curl_mime_data_cb(part, (curl_off_t)t->form_size, on_form_read, on_form_seek, NULL, t);
    } else if (rc == CURLE_OK) {
        rc = curl_mime_data(part, req->form_data, req->form_data_len);
    }
    if (rc == CURLE_OK && req->form_name != NULL)
        rc = curl_mime_filename(part, req->form_name);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot read %s: %s", req->form_file ? req->form_file : "the upload",
                 curl_easy_strerror(rc));
        return 0;
    }
    return 1;
}

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return 0;
    *list = l;
    return 1;
}

int kl_headers_build(struct curl_slist **list, const kl_request *req, const char *auth_header)
{
    int i;
    /* no "Expect: 100-continue" round trip for our small JSON bodies */
    if (!add_header(list, "Expect:"))
        return 0;
    for (i = 0; i < req->header_count; i++)
        if (!add_header(list, req->headers[i]))
            return 0;
    if (auth_header != NULL && !add_header(list, auth_header))
        return 0;
    return 1;
}

static int starts_with_nocase(const char *s, const char *prefix)
{
    for (; *prefix != '\0'; s++, prefix++)
        if (tolower((unsigned char)*s) != *prefix)
            return 0;
    return 1;
}

/* Redirects from an https URL stay on https unless the caller allows the
 * downgrade: a plain-http hop would expose the download to the network. */
static void set_protocols(CURL *e, const kl_request *req)
{
    int https_only = req->follow && !req->allow_downgrade && starts_with_nocase(req->url, "https:");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->follow)
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, https_only ? "https" : "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (req->follow)
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS,
                         https_only ? (long)CURLPROTO_HTTPS : (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

static void configure(kl_transfer *t, const kl_request *req, kl_log *log)
{
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->profile != NULL ? req->profile->headers : t->headers);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    set_protocols(e, req);
    if (t->upload != NULL) { /* a submit: a POST whose body on_read gives out (once) */
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->upload_len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, (void *)t);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, (void *)t);
    } else if (req->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    if (t->mime != NULL)
        curl_easy_setopt(e, CURLOPT_MIMEPOST, t->mime);
    if (t->mime != NULL || t->to_file) {
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)t);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    }
    if (req->follow) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    }
    if (req->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    if (req->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    if (req->user_agent != NULL)
        curl_easy_setopt(e, CURLOPT_USERAGENT, req->user_agent);
    if (req->cainfo != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, req->cainfo);
    if (req->capath != NULL)
        curl_easy_setopt(e, CURLOPT_CAPATH, req->capath);
    if (req->proxy != NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, req->proxy);
    if (req->fresh_connect)
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
#if LIBCURL_VERSION_NUM >= 0x075000
    if (req->handover && !req->hold) {
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, (void *)t);
    }
#endif
    if (req->verbose) {
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(e, CURLOPT_DEBUGDATA, (void *)log);
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
}

/* Can a request reuse, as it is, a handle last configured for its profile?
 * Only a plain POST of the profile: anything else sets options that the
 * next request must not inherit, so its handle is reset when it ends. */
static int reusable_as_is(const kl_request *req)
{
    return req->profile != NULL && req->body != NULL && !req->hold && !req->handover && !req->fresh_connect
           && !req->verbose;
}

/* Only what differs between two plain POSTs of one profile. */
static void configure_call(kl_transfer *t, const kl_request *req)
{
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
}

/* libcurl 7.82 to 8.0 keep a pointer to the last header a transfer stored
 * (for unfolding a continuation line) after the next transfer on the same
 * easy handle has freed it: an answer whose first header line is folded
 * (starts with a space or a tab) then frees that memory a second time and
 * the process aborts (curl issue 11101, fixed in 8.1.0). Any server can
 * send one, and neither curl_easy_reset nor seeing the line in our header
 * callback (libcurl stores the header before calling it) helps, so with
 * those versions no easy handle is given a second transfer: the pool keeps
 * a transfer's buffers, and its handle is made anew. The connection cache
 * is the multi handle's, so connections are still reused. */
#define KL_HEADER_UNFOLD_FIXED 0x080100

void kl_transfer_pool_init(kl_transfer_pool *pool)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    memset(pool, 0, sizeof *pool);
    pool->single_use_handles = v == NULL || v->version_num < KL_HEADER_UNFOLD_FIXED;
}

/* A transfer from the pool, cleared, with its easy handle (unless handles
 * are single-use) and the memory of its buffers; or a new one. */
static kl_transfer *take(kl_transfer_pool *pool)
{
    kl_transfer *t;
    if (pool != NULL && pool->count > 0) {
        t = pool->free[--pool->count];
        if (t->easy == NULL && (t->easy = curl_easy_init()) == NULL) {
            pool->free[pool->count++] = t;
            return NULL;
        }
        return t;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->form_fd = -1;
    kl_buffer_init(&t->body, 0);
    kl_buffer_init(&t->head, KL_MAX_HEADER_BYTES);
    t->easy = curl_easy_init();
    if (t->easy == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

kl_transfer *kl_transfer_new(const kl_request *req, lua_Integer id, kl_transfer_pool *pool,
                             const char *const *auth_headers, kl_log *log, int *new_holds, char *err,
                             size_t errlen)
{
    kl_transfer *t = take(pool);
    int as_is = reusable_as_is(req);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->pool = pool;
    t->id = id;
    t->decode = req->decode;
    if (req->apart != NULL) {
        strcpy(t->apart, req->apart); /* shorter than KL_NAME_MAX: request.c */
        strcpy(t->apart_key, req->apart_key);
    }
    t->want_headers = req->want_headers;
    t->follow = req->follow;
#if LIBCURL_VERSION_NUM < 0x075000
    t->handed_over = !req->hold; /* no pre-request hook: assume the worst at once */
#endif
    t->body.limit = req->max_body;
    t->new_holds = new_holds;
    if (t->configured != NULL && !(as_is && t->configured == req->profile)) {
        curl_easy_reset(t->easy); /* another profile's options, or this one's for another kind of call */
        t->configured = NULL;
    }
    if (t->configured != NULL) {
        configure_call(t, req);
        return t;
    }
    if (req->hold || req->handover) { /* a submit's body: on_read, never sent twice */
        t->released = !req->hold;
        t->upload = malloc(req->body_len ? req->body_len : 1);
        if (t->upload == NULL) {
            snprintf(err, errlen, "out of memory");
            kl_transfer_free(t);
            return NULL;
        }
        memcpy(t->upload, req->body, req->body_len);
        t->upload_len = req->body_len;
    }
    if (req->profile == NULL
        && !kl_headers_build(&t->headers, req, req->auth != KL_AUTH_NONE ? auth_headers[req->auth] : NULL)) {
        snprintf(err, errlen, "out of memory");
        kl_transfer_free(t);
        return NULL;
    }
    if (req->output != NULL) {
        /* a file of this transfer's own: created new (two writers of one
         * name would write into each other's), the caller renames it */
        int fd = kl_create_new(req->output);
        t->to_file = 1;
        t->out = fd >= 0 ? fdopen(fd, "wb") : NULL;
        if (t->out == NULL) {
            snprintf(err, errlen, "cannot create %s: %s", req->output, strerror(errno));
            if (fd >= 0)
                close(fd);
            kl_transfer_free(t);
            return NULL;
        }
    }
    if ((req->form_file != NULL || req->form_data != NULL) && !build_form(t, req, err, errlen)) {
        kl_transfer_free(t);
        return NULL;
    }
    configure(t, req, log);
    t->configured = as_is ? req->profile : NULL;
    return t;
}

void kl_transfer_finish(kl_transfer *t, CURLcode result)
{
    t->result = result;
    if (t->out != NULL) {
        if (fclose(t->out) != 0 && t->result == CURLE_OK) {
            t->write_failed = 1;
            t->result = CURLE_WRITE_ERROR;
        }
        t->out = NULL;
    }
}

/* ---- reporting the outcome to Lua (may raise: the caller still owns t) ---- */

/* Why a transfer failed, in the words the Lua layer's retry rules use. */
static const char *failure_reason(const kl_transfer *t, long status)
{
    if (t->too_large)
        return "too_large";
    if (t->write_failed)
        return "write";
    if (t->journal_refused)
        return "journal";
    if (t->rewind_refused)
        return "rewind";
    if (t->file_changed)
        return "file_changed";
    /* a Location that libcurl refused to follow (another scheme, a
     * downgrade, a malformed URL): the server's doing, not the caller's URL */
    if (t->follow && status >= 300 && status <= 399
        && (t->result == CURLE_UNSUPPORTED_PROTOCOL || t->result == CURLE_URL_MALFORMAT))
        return "redirect";
    switch (t->result) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "resolve";
    case CURLE_COULDNT_CONNECT: return "connect";
    case CURLE_GOT_NOTHING: return "empty";
    case CURLE_URL_MALFORMAT: return "url";
    /* with the URL's scheme checked before sending, this means the server
     * answered in something other than HTTP (libcurl refuses HTTP/0.9) */
    case CURLE_UNSUPPORTED_PROTOCOL: return "protocol";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND: return "tls";
    default: return "network";
    }
}

static void push_headers(lua_State *L, const kl_buffer *head)
{
    const char *p, *end;
    lua_newtable(L);
    if (head->len == 0) /* data may be NULL: no arithmetic on it */
        return;
    p = head->data;
    end = head->data + head->len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon != NULL && colon > p) {
            const char *v = colon + 1, *ve = line_end;
            luaL_Buffer name;
            const char *c;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            luaL_buffinit(L, &name);
            for (c = p; c < colon; c++)
                luaL_addchar(&name, (char)tolower((unsigned char)*c));
            luaL_pushresult(&name);
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_settable(L, -3);
        }
        p = eol ? eol + 1 : end;
    }
}

/* 0 when the body was to be decoded and is not JSON. The text itself comes
 * only with what was not decoded, or when keep_text: a decoded answer that
 * went well never pays for a second copy. */
static int push_body(lua_State *L, kl_transfer *t, int decode_idx, int keys_idx, int keep_text,
                     kl_decoder *apart)
{
    int ok = 1, decoded = 0;
    if (t->to_file) {
        kl_key_push(L, keys_idx, KL_KEY_BYTES);
        lua_pushinteger(L, (lua_Integer)t->written);
        lua_rawset(L, -3);
        return 1;
    }
    kl_key_push(L, keys_idx, KL_KEY_BYTES);
    lua_pushinteger(L, (lua_Integer)t->body.len);
    lua_rawset(L, -3);
    if (t->decode && t->result == CURLE_OK && t->body.len > 0) {
        /* a good answer asked for apart; anything else the caller reads whole */
        if (apart != NULL && t->apart[0] != '\0' && !keep_text)
            ok = kl_decoder_push(L, apart, t->body.data, t->body.len, t->apart, t->apart_key);
        else
            ok = kl_json_decode(L, decode_idx, t->body.data, t->body.len);
        decoded = ok;
        if (ok)
            kl_key_set(L, keys_idx, KL_KEY_JSON);
        else
            lua_setfield(L, -2, "json_error");
    }
    if (!decoded || keep_text) {
        lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
        lua_setfield(L, -2, "body");
    }
    return ok;
}

void kl_transfer_push_result(lua_State *L, kl_transfer *t, int decode_idx, int keys_idx, kl_decoder *apart)
{
    long status = 0, sent = 0; /* CURLINFO_REQUEST_SIZE is a long */
    int failed = t->result != CURLE_OK || t->too_large || t->write_failed || t->journal_refused || t->file_changed,
        plain;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent);
    lua_createtable(L, 0, 8);
    kl_key_push(L, keys_idx, KL_KEY_ID);
    lua_pushinteger(L, t->id);
    lua_rawset(L, -3);
    kl_key_push(L, keys_idx, KL_KEY_STATUS);
    lua_pushinteger(L, (lua_Integer)status);
    lua_rawset(L, -3);
    /* a held body the journal refused never went out: nothing was submitted;
     * a body libcurl wanted to send again had gone out (or may have) */
    kl_key_push(L, keys_idx, KL_KEY_SENT);
    lua_pushboolean(L, (sent > 0 || t->rewind_refused) && !t->journal_refused);
    lua_rawset(L, -3);
    if (failed) {
        lua_pushinteger(L, (lua_Integer)t->result);
        lua_setfield(L, -2, "curl_code");
        lua_pushstring(L, t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result));
        lua_setfield(L, -2, "error");
        lua_pushstring(L, failure_reason(t, status));
        lua_setfield(L, -2, "reason");
    }
    if (t->mime != NULL || t->to_file) { /* the last progress figures */
        lua_pushnumber(L, (lua_Number)t->up_now);
        lua_setfield(L, -2, "sent_bytes");
        lua_pushnumber(L, (lua_Number)t->up_total);
        lua_setfield(L, -2, "to_send");
        lua_pushnumber(L, (lua_Number)t->down_total);
        lua_setfield(L, -2, "to_receive");
    }
    plain = !failed && status >= 200 && status <= 299 && !t->want_headers;
    if (!push_body(L, t, decode_idx, keys_idx, !plain, apart) || !plain) {
        push_headers(L, &t->head);
        lua_setfield(L, -2, "headers");
    }
}

/* A pooled transfer keeps this much of a body buffer's memory, at most: a
 * task record or a submit's answer, not a batch of fifty (64 pooled
 * transfers holding 64 KiB each would be 4 MiB of idle memory). */
#define KL_KEPT_BUFFER_BYTES (16 * 1024)

/* Everything of t but its handle, its profile and its buffers' memory goes. */
static void clear_for_reuse(kl_transfer *t)
{
    CURL *easy = t->easy;
    const kl_profile *configured = t->configured;
    kl_buffer body = t->body, head = t->head;
    memset(t, 0, sizeof *t);
    t->easy = easy;
    t->configured = configured;
    if (body.cap > KL_KEPT_BUFFER_BYTES)
        kl_buffer_free(&body);
    t->body = body;
    t->head = head;
    t->form_fd = -1;
    kl_buffer_reset(&t->body);
    kl_buffer_reset(&t->head);
}

void kl_transfer_free(kl_transfer *t)
{
    kl_transfer_pool *pool;
    if (t == NULL)
        return;
    pool = t->pool;
    if (t->out != NULL)
        fclose(t->out);
    if (pool == NULL || pool->count >= KL_TRANSFER_POOL_MAX || pool->single_use_handles) {
        curl_easy_cleanup(t->easy); /* before the form, the header list and the upload it refers to */
        t->easy = NULL;
        t->configured = NULL;
    } else if (t->configured == NULL) {
        /* reset unless it holds only its profile's options: it must no
         * longer refer to the form, the header list or the upload freed below */
        curl_easy_reset(t->easy);
    }
    curl_mime_free(t->mime); /* after the handle that used it */
    if (t->form_fd >= 0)
        close(t->form_fd);
    curl_slist_free_all(t->headers);
    free(t->upload);
    if (pool != NULL && pool->count < KL_TRANSFER_POOL_MAX) {
        clear_for_reuse(t);
        pool->free[pool->count++] = t;
        return;
    }
    kl_buffer_free(&t->body);
    kl_buffer_free(&t->head);
    free(t);
}

void kl_transfer_pool_free(kl_transfer_pool *pool)
{
    while (pool->count > 0) {
        kl_transfer *t = pool->free[--pool->count];
        t->pool = NULL;
        kl_transfer_free(t);
    }
}
