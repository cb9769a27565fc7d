/* libFuzzer target for kling.core.probe (src/media.c): PNG, JPEG and
 * MP4/MOV headers from bytes a user's file (or an attacker's) holds. The
 * probe must answer with facts or an error for any input: never crash, read
 * out of bounds, loop for ever or recurse without bound.
 *   make fuzz-probe FUZZ_SECONDS=600     (seeds in fuzz/probe-corpus/) */
#include <stdint.h>
#include <string.h>

#include "../src/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct memory {
    const uint8_t *data;
    size_t size;
} memory;

static int memory_read(void *ctx, uint64_t at, void *buf, size_t n)
{
    const memory *m = ctx;
    if (at > m->size || n > m->size - at)
        return -1;
    memcpy(buf, m->data + at, n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memory mem = {data, size};
    kl_source src = {&mem, size, memory_read};
    kl_media m;
    const char *error = NULL;
    if (kl_media_probe(&src, &m, &error)) {
        if (m.kind == NULL || m.format == NULL)
            __builtin_trap(); /* an answer must say what the file is */
    } else if (error == NULL) {
        __builtin_trap(); /* a refusal must say why */
    }
    return 0;
}
