/* kling.core.probe(path): what a local media file is, read from its headers
 * only: PNG and JPEG dimensions; MP4/MOV (ISO base media) dimensions and
 * duration from the movie and track headers. Every read is bounded and every
 * length read from the file is checked against the file's size, so a
 * truncated or hostile file gives a clear error, never a crash or a hang
 * (fuzz/probe_fuzz.c). Limits that apply to these facts: docs/api.md. */
#define _FILE_OFFSET_BITS 64

#include "media.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <lauxlib.h>

#include "files.h"

/* Boxes and JPEG segments looked at before giving up on a file. */
#define KL_MAX_STEPS 100000
#define KL_MAX_DEPTH 8

typedef struct kl_reader {
    const kl_source *src;
    const char *error;
} kl_reader;

static int read_at(kl_reader *r, uint64_t at, void *buf, size_t n)
{
    if (at > r->src->size || n > r->src->size - at) {
        r->error = "the file is truncated";
        return 0;
    }
    if (r->src->read(r->src->ctx, at, buf, n) != 0) {
        r->error = "cannot read the file";
        return 0;
    }
    return 1;
}

/* Records why the probe failed (the first reason wins) and returns 0. */
static int fail(kl_reader *r, const char *why)
{
    if (r->error == NULL)
        r->error = why;
    return 0;
}

static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* ---- PNG: the signature, then IHDR, which must come first ---- */

static int probe_png(kl_reader *r, kl_media *m)
{
    unsigned char h[24];
    if (!read_at(r, 0, h, sizeof h))
        return 0;
    if (be32(h + 8) != 13 || memcmp(h + 12, "IHDR", 4) != 0) {
        r->error = "a PNG file without its IHDR header";
        return 0;
    }
    m->kind = "image";
    m->format = "png";
    m->width = be32(h + 16);
    m->height = be32(h + 20);
    return 1;
}

/* ---- JPEG: segments up to the first start-of-frame ---- */

static int is_sof(unsigned char marker)
{
    return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

static int probe_jpeg(kl_reader *r, kl_media *m)
{
    uint64_t at = 2;
    int steps;
    for (steps = 0; steps < KL_MAX_STEPS; steps++) {
        unsigned char h[4];
        unsigned char marker;
        if (!read_at(r, at, h, 2))
            return 0;
        if (h[0] != 0xFF) {
            r->error = "a JPEG file with a broken segment";
            return 0;
        }
        marker = h[1];
        if (marker == 0xFF) { /* fill byte */
            at += 1;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) { /* no length */
            at += 2;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) {
            r->error = "a JPEG file without a frame header";
            return 0;
        }
        if (!read_at(r, at + 2, h + 2, 2))
            return 0;
        if (be16(h + 2) < 2) {
            r->error = "a JPEG file with a broken segment length";
            return 0;
        }
        if (is_sof(marker)) {
            unsigned char f[5];
            if (be16(h + 2) < 7 || !read_at(r, at + 4, f, sizeof f))
                return fail(r, "a JPEG frame header too short");
            m->kind = "image";
            m->format = "jpeg";
            m->height = be16(f + 1);
            m->width = be16(f + 3);
            return 1;
        }
        at += 2 + (uint64_t)be16(h + 2);
    }
    r->error = "a JPEG file with too many segments";
    return 0;
}

/* ---- MP4 / MOV: boxes; moov holds mvhd (duration) and trak/tkhd (size) ---- */

typedef struct kl_box {
    uint64_t start, size, content; /* content: where the box's payload begins */
    char type[5];
} kl_box;

/* Reads the box header at `at`, within [at, end). */
static int read_box(kl_reader *r, uint64_t at, uint64_t end, kl_box *b)
{
    unsigned char h[16];
    if (end - at < 8) {
        r->error = "the file is truncated";
        return 0;
    }
    if (!read_at(r, at, h, 8))
        return 0;
    memcpy(b->type, h + 4, 4);
    b->type[4] = '\0';
    b->start = at;
    b->size = be32(h);
    b->content = at + 8;
    if (b->size == 1) { /* a 64-bit size follows */
        if (end - at < 16 || !read_at(r, at + 8, h + 8, 8))
            return fail(r, "the file is truncated");
        b->size = be64(h + 8);
        b->content = at + 16;
    } else if (b->size == 0) { /* to the end of its container */
        b->size = end - at;
    }
    if (b->size < b->content - at || b->size > end - at) {
        r->error = "a box whose size does not fit the file";
        return 0;
    }
    return 1;
}

static int mvhd(kl_reader *r, const kl_box *b, kl_media *m)
{
    unsigned char h[32];
    uint64_t len = b->start + b->size - b->content;
    uint32_t timescale;
    uint64_t duration;
    if (len < 20 || !read_at(r, b->content, h, len < sizeof h ? (size_t)len : sizeof h))
        return fail(r, "a movie header too short");
    if (h[0] == 1) {
        if (len < 32)
            return fail(r, "a movie header too short");
        timescale = be32(h + 20);
        duration = be64(h + 24);
    } else {
        timescale = be32(h + 12);
        duration = be32(h + 16);
    }
    if (timescale == 0) {
        r->error = "a movie header with a time scale of 0";
        return 0;
    }
    m->duration = (double)duration / (double)timescale;
    m->has_duration = 1;
    return 1;
}

/* A video track's header carries its display size (16.16 fixed point);
 * sound tracks carry 0 x 0. The first track with a size is the video. */
static int tkhd(kl_reader *r, const kl_box *b, kl_media *m)
{
    unsigned char h[96];
    uint64_t len = b->start + b->size - b->content;
    size_t need;
    if (len < 1 || !read_at(r, b->content, h, 1))
        return fail(r, "a track header too short");
    need = h[0] == 1 ? 96 : 84; /* width and height are the last 8 bytes */
    if (len < need || !read_at(r, b->content, h, need))
        return fail(r, "a track header too short");
    if (m->width == 0 && m->height == 0) {
        m->width = be32(h + need - 8) >> 16;
        m->height = be32(h + need - 4) >> 16;
    }
    return 1;
}

static int walk(kl_reader *r, uint64_t at, uint64_t end, int depth, int *steps, kl_media *m)
{
    while (at < end) {
        kl_box b;
        if (++*steps > KL_MAX_STEPS) {
            r->error = "a file with too many boxes";
            return 0;
        }
        if (!read_box(r, at, end, &b))
            return 0;
        if (strcmp(b.type, "moov") == 0 || strcmp(b.type, "trak") == 0) {
            if (depth >= KL_MAX_DEPTH) {
                r->error = "boxes nested too deep";
                return 0;
            }
            if (!walk(r, b.content, b.start + b.size, depth + 1, steps, m))
                return 0;
        } else if (strcmp(b.type, "mvhd") == 0 && depth >= 1) {
            if (!mvhd(r, &b, m))
                return 0;
        } else if (strcmp(b.type, "tkhd") == 0 && depth >= 2) {
            if (!tkhd(r, &b, m))
                return 0;
        }
        at = b.start + b.size;
    }
    return 1;
}

static int probe_isobmff(kl_reader *r, kl_media *m, const unsigned char *head)
{
    int steps = 0;
    m->kind = "video";
    /* QuickTime files say "qt  " as their brand, or have no ftyp at all */
    m->format = memcmp(head + 4, "ftyp", 4) == 0 && memcmp(head + 8, "qt  ", 4) != 0 ? "mp4" : "mov";
    if (!walk(r, 0, r->src->size, 0, &steps, m))
        return 0;
    if (!m->has_duration) {
        r->error = "a movie without a movie header (moov/mvhd)";
        return 0;
    }
    if (m->width == 0 || m->height == 0) {
        r->error = "a movie without a video track";
        return 0;
    }
    return 1;
}

static int is_box_type(const unsigned char *t)
{
    static const char *const known[] = {"ftyp", "moov", "mdat", "wide", "free", "skip", "pnot", NULL};
    int i;
    for (i = 0; known[i] != NULL; i++)
        if (memcmp(t, known[i], 4) == 0)
            return 1;
    return 0;
}

int kl_media_probe(const kl_source *src, kl_media *m, const char **error)
{
    kl_reader r;
    unsigned char head[12];
    int ok;
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    memset(m, 0, sizeof *m);
    r.src = src;
    r.error = NULL;
    m->bytes = src->size;
    if (src->size < sizeof head) {
        *error = "the file is too short to be an image or a video";
        return 0;
    }
    if (!read_at(&r, 0, head, sizeof head)) {
        *error = r.error;
        return 0;
    }
    if (memcmp(head, png, sizeof png) == 0)
        ok = probe_png(&r, m);
    else if (head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF)
        ok = probe_jpeg(&r, m);
    else if (is_box_type(head + 4))
        ok = probe_isobmff(&r, m, head);
    else {
        r.error = "not a PNG, JPEG, MP4 or MOV file";
        ok = 0;
    }
    if (!ok)
        *error = r.error ? r.error : "cannot read the file";
    return ok;
}

/* ---- Lua ---- */

static int file_read(void *ctx, uint64_t at, void *buf, size_t n)
{
    FILE *f = ctx;
    if (fseeko(f, (off_t)at, SEEK_SET) != 0 || fread(buf, 1, n, f) != n)
        return -1;
    return 0;
}

/* probe(path) -> { kind, format, width, height, duration?, bytes } | nil, message */
static int media_probe(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[512];
    kl_source src;
    kl_media m;
    const char *error = NULL;
    int ok;
    long long size;
    int fd = kl_open_regular(path, &size, err, sizeof err); /* a FIFO or a device is refused, never read */
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (f == NULL) {
        if (fd >= 0) {
            snprintf(err, sizeof err, "cannot read %s: %s", path, strerror(errno));
            close(fd);
        }
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    src.ctx = f;
    src.read = file_read;
    src.size = (uint64_t)size;
    ok = kl_media_probe(&src, &m, &error);
    fclose(f);
    if (!ok) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, error);
        return 2;
    }
    kl_media_push(L, &m);
    return 1;
}

void kl_media_push(lua_State *L, const kl_media *m)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, m->format);
    lua_setfield(L, -2, "format");
    lua_pushinteger(L, (lua_Integer)m->width);
    lua_setfield(L, -2, "width");
    lua_pushinteger(L, (lua_Integer)m->height);
    lua_setfield(L, -2, "height");
    lua_pushinteger(L, (lua_Integer)m->bytes);
    lua_setfield(L, -2, "bytes");
    if (m->has_duration) {
        lua_pushnumber(L, m->duration);
        lua_setfield(L, -2, "duration");
    }
}

void kl_media_open(lua_State *L)
{
    lua_pushcfunction(L, media_probe);
}
