/* libFuzzer target for the C paths of kling.core that read bytes a server
 * (or libcurl on its behalf) chose: the header, body and debug callbacks,
 * the redaction of the token from verbose output, and the building of the
 * Lua result table (header parsing, JSON decoding through lua-cjson, in the
 * caller's state or apart: records.c, whose records are then read).
 *
 * Input: one flag byte (1: decode, 2: follow, 4: a small body limit, 8:
 * decode apart), then records of [kind][length][bytes], each fed to
 * the callback its kind names, in order, as libcurl would. Besides crashes
 * and sanitizer reports, the target traps if the token ever reaches the log.
 *
 *   make fuzz FUZZ_SECONDS=600     (see the Makefile; seeds in fuzz/corpus/) */
#include "../src/transfer.c" /* the callbacks are static: this reaches them */

#include <lualib.h>

#define SECRET "fuzz-3f1c9b7a5e2d-secret-token"
#define PLATFORM_SECRET "fuzz-platform-77aa01-token"

static const char *const headers[3] = {NULL, "Authorization: Bearer " SECRET,
                                       "Authorization: Bearer " PLATFORM_SECRET};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static kl_decoder *decoder;

/* Reads an answer's records as the poller does (index 4). */
static const char read_records[] =
    "local r = ...\n"
    "local items = type(r) == 'table' and type(r.json) == 'table' and r.json.items\n"
    "if type(items) ~= 'userdata' or items == require('cjson').null then return end\n"
    "assert(items:count() >= 0)\n"
    "for _, id in ipairs({ 'a', 'b', '1', 'id', '' }) do items:get(id) end\n"
    "items:close()\n";

static void setup(void)
{
    if (L != NULL)
        return;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    L = luaL_newstate();
    luaL_openlibs(L);
    kl_json_open(L); /* encode, decode, null: decode stays at index 2 */
    lua_pop(L, 1);
    kl_keys_push(L); /* index 3 */
    kl_records_open(L); /* the metatable; its function is not needed */
    lua_pop(L, 1);
    if (luaL_loadstring(L, read_records) != 0) /* index 4 */
        __builtin_trap();
    decoder = kl_decoder_new(L);
    if (decoder == NULL)
        __builtin_trap();
}

/* Builds the result table as perform() does, under a protected call: a
 * memory error there must leave the transfer to its owner, as in multi.c. */
static int push_result(lua_State *S)
{
    kl_transfer *t = lua_touserdata(S, 1);
    kl_transfer_push_result(S, t, 2, 3, decoder);
    return 1;
}

static void feed_debug(kl_transfer *t, kl_log *log, curl_infotype type, const uint8_t *p, size_t n)
{
    /* libcurl hands debug text as a mutable char *; give it its own copy */
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return;
    memcpy(copy, p, n);
    on_debug(t->easy, type, copy, n, log);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const curl_infotype debug_types[] = {CURLINFO_TEXT, CURLINFO_HEADER_IN, CURLINFO_HEADER_OUT,
                                                CURLINFO_DATA_IN};
    kl_request req;
    kl_secrets secrets;
    kl_log log;
    kl_transfer *t;
    char err[256];
    CURLcode result = CURLE_OK;
    size_t i;
    int top;

    setup();
    if (size < 1)
        return 0;
    memset(&req, 0, sizeof req);
    req.url = "http://127.0.0.1:9/kling/tasks";
    req.decode = data[0] & 1;
    req.follow = (data[0] >> 1) & 1;
    req.max_body = (data[0] & 4) ? 64 : 4096;
    if (data[0] & 8) { /* a batched answer, decoded apart */
        req.apart = "items";
        req.apart_key = "id";
    }
    req.auth = 1;
    kl_buffer_init(&log.text, 4096);
    memset(&secrets, 0, sizeof secrets);
    secrets.data[0] = SECRET;
    secrets.len[0] = sizeof SECRET - 1;
    secrets.data[1] = PLATFORM_SECRET;
    secrets.len[1] = sizeof PLATFORM_SECRET - 1;
    log.secrets = &secrets;
    t = kl_transfer_new(&req, 1, NULL, headers, &log, NULL, err, sizeof err);
    if (t == NULL) {
        kl_buffer_free(&log.text);
        return 0;
    }
    for (i = 1; i + 2 <= size;) {
        uint8_t kind = data[i];
        size_t n = data[i + 1];
        const uint8_t *p = data + i + 2;
        if (n > size - i - 2)
            n = size - i - 2;
        switch (kind % 4) {
        case 0: on_header((char *)p, 1, n, t); break;
        case 1: on_body((char *)p, 1, n, t); break;
        case 2: feed_debug(t, &log, debug_types[(kind >> 2) % 4], p, n); break;
        default: result = (CURLcode)(n % CURL_LAST); break;
        }
        i += 2 + n;
    }
    kl_transfer_finish(t, result);

    if (kl_find(log.text.data ? log.text.data : "", log.text.len, SECRET, sizeof SECRET - 1) != log.text.len
        || kl_find(log.text.data ? log.text.data : "", log.text.len, PLATFORM_SECRET, sizeof PLATFORM_SECRET - 1)
               != log.text.len)
        __builtin_trap(); /* a token reached verbose output */

    top = lua_gettop(L);
    lua_pushcfunction(L, push_result);
    lua_pushlightuserdata(L, t);
    lua_pushvalue(L, 2); /* cjson's decode, as perform() passes it */
    lua_pushvalue(L, 3); /* the result's keys, as perform() has them */
    if (lua_pcall(L, 3, 1, 0) == 0) {
        lua_pushvalue(L, 4);
        lua_insert(L, -2);
        lua_pcall(L, 1, 0, 0);
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCCOLLECT, 0);

    kl_transfer_free(t);
    kl_buffer_free(&log.text);
    return 0;
}
