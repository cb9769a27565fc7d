/* Reading what a local image or video is from its headers (see media.c). */
#ifndef KLING_MEDIA_H
#define KLING_MEDIA_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

/* Where the bytes come from: a file for kling.core.probe, memory for the fuzzer. */
typedef struct kl_source {
    void *ctx;
    uint64_t size;
    int (*read)(void *ctx, uint64_t at, void *buf, size_t n); /* 0, or -1 on failure */
} kl_source;

typedef struct kl_media {
    const char *kind;   /* "image" or "video" */
    const char *format; /* "png", "jpeg", "mp4", "mov" */
    uint64_t width, height, bytes; /* videos: the display size */
    uint64_t coded_width, coded_height; /* videos: the size the pictures are coded in */
    double duration;    /* seconds (videos) */
    int has_duration, has_coded;
} kl_media;

/* Fills m, or returns 0 with a message (static text) in *error. */
int kl_media_probe(const kl_source *src, kl_media *m, const char **error);

/* Pushes m as a Lua table. */
void kl_media_push(lua_State *L, const kl_media *m);

/* Pushes kling.core.probe. */
void kl_media_open(lua_State *L);

#endif
