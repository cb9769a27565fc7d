/* kling.core.probe(path): what a local media file is, read from its headers
 * only: PNG and JPEG dimensions; MP4/MOV (ISO base media) display and coded
 * size of the video track and the movie's duration, fragmented files too. Every read is bounded and every
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

/* ---- MP4 / MOV (ISO base media, ISO/IEC 14496-12; QuickTime) ----
 * What a demuxer reads: the first moov box (a later one is ignored), its
 * movie header (time scale, duration), and the track whose media handler
 * (mdia/hdlr) is 'vide': its display size (tkhd) and its coded size (the
 * first visual sample entry in stsd). A track of another kind (sound, text,
 * timed metadata) is never taken for the video, whatever its size. A
 * fragmented file says 0 in mvhd: its duration is mvex/mehd's, or else the
 * sum of the video track's sample durations over the movie fragments
 * (moof/traf/trun, with tfhd's and trex's defaults). */

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

static uint64_t box_end(const kl_box *b) { return b->start + b->size; }
static uint64_t payload(const kl_box *b) { return box_end(b) - b->content; }
static int is(const kl_box *b, const char *type) { return memcmp(b->type, type, 4) == 0; }

/* Walks the boxes in [at, end) one level down: fn(r, box, ctx) for each;
 * stops at the first failure. Every box counts against one budget. */
typedef int (*box_fn)(kl_reader *r, const kl_box *b, void *ctx, int *steps);

static int children(kl_reader *r, uint64_t at, uint64_t end, int *steps, box_fn fn, void *ctx)
{
    while (at < end) {
        kl_box b;
        if (++*steps > KL_MAX_STEPS)
            return fail(r, "a file with too many boxes");
        if (!read_box(r, at, end, &b))
            return 0;
        if (!fn(r, &b, ctx, steps))
            return 0;
        at = box_end(&b);
    }
    return 1;
}

/* Reads the first n bytes of b's payload (at least min of them must be there). */
static int read_payload(kl_reader *r, const kl_box *b, unsigned char *buf, size_t n, size_t min, const char *what)
{
    uint64_t len = payload(b);
    if (len < min)
        return fail(r, what);
    return read_at(r, b->content, buf, len < n ? (size_t)len : n);
}

typedef struct kl_track {
    uint32_t id;
    uint64_t display_w, display_h, coded_w, coded_h;
    uint32_t timescale; /* mdhd: the media's own */
    int has_tkhd, has_coded;
    char handler[5];
} kl_track;

typedef struct kl_movie {
    uint32_t timescale;       /* mvhd */
    uint64_t duration;        /* mvhd, in its time scale */
    uint64_t fragment_duration; /* mvex/mehd, in mvhd's time scale */
    uint32_t trex_duration;   /* mvex/trex default sample duration of the video track */
    int has_mvhd, has_video;
    kl_track video;           /* the first track whose handler is 'vide' */
    uint32_t trex_ids[64], trex_durations[64]; /* trex boxes seen before the video track is known */
    int trex_count;
} kl_movie;

static int mvhd(kl_reader *r, const kl_box *b, kl_movie *mv)
{
    unsigned char h[32];
    if (!read_payload(r, b, h, sizeof h, 20, "a movie header too short"))
        return 0;
    if (h[0] == 1) {
        if (payload(b) < 32)
            return fail(r, "a movie header too short");
        mv->timescale = be32(h + 20);
        mv->duration = be64(h + 24);
    } else {
        mv->timescale = be32(h + 12);
        mv->duration = be32(h + 16);
    }
    if (mv->timescale == 0)
        return fail(r, "a movie header with a time scale of 0");
    mv->has_mvhd = 1;
    return 1;
}

/* The track header: its id, and its display size (16.16 fixed point, the
 * last 8 bytes of the box). */
static int tkhd(kl_reader *r, const kl_box *b, kl_track *t)
{
    unsigned char h[96];
    size_t need;
    if (!read_payload(r, b, h, 1, 1, "a track header too short"))
        return 0;
    need = h[0] == 1 ? 96 : 84;
    if (!read_payload(r, b, h, need, need, "a track header too short"))
        return 0;
    t->id = be32(h + (h[0] == 1 ? 20 : 12));
    t->display_w = be32(h + need - 8) >> 16;
    t->display_h = be32(h + need - 4) >> 16;
    t->has_tkhd = 1;
    return 1;
}

static int mdhd(kl_reader *r, const kl_box *b, kl_track *t)
{
    unsigned char h[24];
    if (!read_payload(r, b, h, sizeof h, 16, "a media header too short"))
        return 0;
    if (h[0] == 1 && payload(b) < 24)
        return fail(r, "a media header too short");
    t->timescale = be32(h + (h[0] == 1 ? 20 : 12));
    return 1;
}

/* mdia/hdlr: version and flags (4), pre_defined or QuickTime's component
 * type (4), then the handler type. */
static int hdlr(kl_reader *r, const kl_box *b, kl_track *t)
{
    unsigned char h[12];
    if (!read_payload(r, b, h, sizeof h, sizeof h, "a handler box too short"))
        return 0;
    memcpy(t->handler, h + 8, 4);
    t->handler[4] = '\0';
    return 1;
}

/* stsd: version and flags (4), entry count (4), then sample entries. A
 * visual entry: its box header (8), 6 reserved bytes and a data reference
 * index (2), 16 bytes pre_defined and reserved, then width and height
 * (16 bits each): the size the pictures are coded in. */
static int stsd(kl_reader *r, const kl_box *b, kl_track *t)
{
    unsigned char h[8 + 8 + 28];
    if (!read_payload(r, b, h, sizeof h, 8, "a sample description too short"))
        return 0;
    if (be32(h + 4) == 0 || payload(b) < sizeof h)
        return 1; /* no entry: no coded size to read */
    t->coded_w = be16(h + 8 + 8 + 24);
    t->coded_h = be16(h + 8 + 8 + 26);
    t->has_coded = 1;
    return 1;
}

static int in_stbl(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    (void)steps;
    return is(b, "stsd") ? stsd(r, b, ctx) : 1;
}

static int in_minf(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    return is(b, "stbl") ? children(r, b->content, box_end(b), steps, in_stbl, ctx) : 1;
}

static int in_mdia(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    if (is(b, "mdhd"))
        return mdhd(r, b, ctx);
    if (is(b, "hdlr"))
        return hdlr(r, b, ctx);
    if (is(b, "minf"))
        return children(r, b->content, box_end(b), steps, in_minf, ctx);
    return 1;
}

static int in_trak(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    if (is(b, "tkhd"))
        return tkhd(r, b, ctx);
    if (is(b, "mdia"))
        return children(r, b->content, box_end(b), steps, in_mdia, ctx);
    return 1;
}

/* mvex: mehd (the whole fragmented movie's duration) and trex (each
 * track's default sample duration, for fragments that do not say). */
static int in_mvex(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    kl_movie *mv = ctx;
    unsigned char h[12];
    (void)steps;
    if (is(b, "mehd")) {
        if (!read_payload(r, b, h, sizeof h, 8, "a movie extends header too short"))
            return 0;
        if (h[0] == 1 && payload(b) < 12)
            return fail(r, "a movie extends header too short");
        mv->fragment_duration = h[0] == 1 ? be64(h + 4) : be32(h + 4);
    } else if (is(b, "trex")) {
        unsigned char x[20];
        if (!read_payload(r, b, x, sizeof x, sizeof x, "a track extends box too short"))
            return 0;
        if (mv->trex_count < (int)(sizeof mv->trex_ids / sizeof mv->trex_ids[0])) {
            mv->trex_ids[mv->trex_count] = be32(x + 4);
            mv->trex_durations[mv->trex_count] = be32(x + 12);
            mv->trex_count++;
        }
    }
    return 1;
}

static int in_moov(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    kl_movie *mv = ctx;
    if (is(b, "mvhd"))
        return mvhd(r, b, mv);
    if (is(b, "mvex"))
        return children(r, b->content, box_end(b), steps, in_mvex, mv);
    if (is(b, "trak")) {
        kl_track t;
        memset(&t, 0, sizeof t);
        if (!children(r, b->content, box_end(b), steps, in_trak, &t))
            return 0;
        if (!mv->has_video && t.has_tkhd && strcmp(t.handler, "vide") == 0) {
            mv->video = t;
            mv->has_video = 1;
        }
    }
    return 1;
}

/* ---- movie fragments: the video track's sample durations ---- */

typedef struct kl_fragments {
    kl_movie *movie;
    uint64_t total;     /* in the video track's media time scale */
    uint32_t default_duration; /* this traf's, from tfhd or trex */
    int ours;           /* this traf is the video track's */
    uint64_t samples;   /* durations read so far */
} kl_fragments;

/* Sample durations read from track runs, at most (a 30 s video at 60
 * frames per second has 1,800). */
#define KL_MAX_SAMPLES 1000000

/* trun: flags say which per-sample fields follow; 0x100: a duration each. */
static int trun(kl_reader *r, const kl_box *b, kl_fragments *f)
{
    unsigned char h[8];
    uint32_t flags, count, i, field_bytes = 0;
    uint64_t at;
    if (!read_payload(r, b, h, sizeof h, sizeof h, "a track run too short"))
        return 0;
    flags = be32(h) & 0xFFFFFF;
    count = be32(h + 4);
    at = b->content + 8 + ((flags & 0x1) ? 4 : 0) + ((flags & 0x4) ? 4 : 0);
    if (!(flags & 0x100)) {
        f->total += (uint64_t)count * f->default_duration;
        return 1;
    }
    field_bytes = 4 * (((flags & 0x100) != 0) + ((flags & 0x200) != 0) + ((flags & 0x400) != 0)
                       + ((flags & 0x800) != 0));
    if (at > box_end(b) || (uint64_t)count * field_bytes > box_end(b) - at)
        return fail(r, "a track run longer than its box");
    if ((f->samples += count) > KL_MAX_SAMPLES)
        return fail(r, "a movie with too many samples");
    for (i = 0; i < count; i++) {
        unsigned char d[4];
        if (!read_at(r, at + (uint64_t)i * field_bytes, d, 4))
            return 0;
        f->total += be32(d);
    }
    return 1;
}

static int in_traf(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    kl_fragments *f = ctx;
    (void)steps;
    if (is(b, "tfhd")) {
        unsigned char h[24];
        uint32_t flags;
        uint64_t at = 8;
        int i;
        if (!read_payload(r, b, h, sizeof h, 8, "a track fragment header too short"))
            return 0;
        flags = be32(h) & 0xFFFFFF;
        f->ours = be32(h + 4) == f->movie->video.id;
        f->default_duration = 0;
        for (i = 0; i < f->movie->trex_count; i++)
            if (f->movie->trex_ids[i] == f->movie->video.id)
                f->default_duration = f->movie->trex_durations[i];
        if (flags & 0x1)
            at += 8; /* base data offset */
        if (flags & 0x2)
            at += 4; /* sample description index */
        if (flags & 0x8) {
            if (payload(b) < at + 4)
                return fail(r, "a track fragment header too short");
            f->default_duration = be32(h + at);
        }
        return 1;
    }
    if (is(b, "trun") && f->ours)
        return trun(r, b, f);
    return 1;
}

static int in_moof(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    kl_fragments *f = ctx;
    if (!is(b, "traf"))
        return 1;
    f->ours = 0;
    return children(r, b->content, box_end(b), steps, in_traf, f);
}

/* ---- the file's top level ---- */

typedef struct kl_top {
    kl_movie movie;
    int has_moov, has_moof;
} kl_top;

static int top_level(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    kl_top *top = ctx;
    if (is(b, "moov")) {
        if (top->has_moov)
            return 1; /* demuxers read the first */
        top->has_moov = 1;
        return children(r, b->content, box_end(b), steps, in_moov, &top->movie);
    }
    if (is(b, "moof"))
        top->has_moof = 1;
    return 1;
}

static int fragments_top(kl_reader *r, const kl_box *b, void *ctx, int *steps)
{
    return is(b, "moof") ? children(r, b->content, box_end(b), steps, in_moof, ctx) : 1;
}

static int probe_isobmff(kl_reader *r, kl_media *m, const unsigned char *head)
{
    int steps = 0;
    kl_top top;
    kl_movie *mv = &top.movie;
    memset(&top, 0, sizeof top);
    m->kind = "video";
    /* QuickTime files say "qt  " as their brand, or have no ftyp at all */
    m->format = memcmp(head + 4, "ftyp", 4) == 0 && memcmp(head + 8, "qt  ", 4) != 0 ? "mp4" : "mov";
    if (!children(r, 0, r->src->size, &steps, top_level, &top))
        return 0;
    if (!mv->has_mvhd)
        return fail(r, "a movie without a movie header (moov/mvhd)");
    if (!mv->has_video)
        return fail(r, "a movie without a video track");
    if (mv->duration > 0) {
        m->duration = (double)mv->duration / (double)mv->timescale;
    } else if (mv->fragment_duration > 0) {
        m->duration = (double)mv->fragment_duration / (double)mv->timescale;
    } else if (top.has_moof && mv->video.timescale > 0) {
        kl_fragments f;
        memset(&f, 0, sizeof f);
        f.movie = mv;
        if (!children(r, 0, r->src->size, &steps, fragments_top, &f))
            return 0;
        m->duration = (double)f.total / (double)mv->video.timescale;
    }
    m->has_duration = 1;
    m->width = mv->video.display_w;
    m->height = mv->video.display_h;
    if (mv->video.has_coded) {
        m->coded_width = mv->video.coded_w;
        m->coded_height = mv->video.coded_h;
        m->has_coded = 1;
    }
    if (m->width == 0 || m->height == 0) { /* no display size given: the coded one is shown */
        m->width = m->coded_width;
        m->height = m->coded_height;
    }
    if (m->width == 0 || m->height == 0)
        return fail(r, "a video track without a picture size");
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
    if (m->has_coded) {
        lua_pushinteger(L, (lua_Integer)m->coded_width);
        lua_setfield(L, -2, "coded_width");
        lua_pushinteger(L, (lua_Integer)m->coded_height);
        lua_setfield(L, -2, "coded_height");
    }
}

void kl_media_open(lua_State *L)
{
    lua_pushcfunction(L, media_probe);
}
