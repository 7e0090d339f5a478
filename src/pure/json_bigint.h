/* Integer literals a double cannot hold, in a JSON text. lua-cjson reads every
 * number as a double (on LuaJIT every Lua number is one): an id of 18 digits
 * sent as a JSON number, 861796292580000001, comes back as ...000000, and the
 * task is then polled under another id. This scanner finds the integer
 * literals whose magnitude is 2^53 (9007199254740992) or more, outside
 * strings, and writes the text again with each of them quoted, so that a
 * decoder reads their digits as a string.
 *
 * Pure: no I/O, no globals, no allocation. One pass of a few instructions a
 * byte: it runs on every answer a provider sends, before the decoder.
 *
 * It is a number finder, not a validator: a text that is not JSON is walked
 * the same way (its strings skipped, escapes and all) and left for the
 * decoder to refuse. A literal with a fraction or an exponent (1e300,
 * 9007199254740993.0) and one with a leading zero (no JSON integer) are left
 * as written. */
#ifndef KLING_JSON_BIGINT_H
#define KLING_JSON_BIGINT_H

#include <stddef.h>

/* How many integer literals of json[0..len) need quoting (0: the text can be
 * decoded as it is). */
size_t kling_json_bigint_count(const char *json, size_t len);

/* Writes json[0..len) to out with each literal kling_json_bigint_count counts
 * between double quotes (its minus sign inside them); out holds at least
 * len + 2 * count bytes and must not overlap json. Returns the bytes written:
 * len + 2 * count. */
size_t kling_json_bigint_quote(const char *json, size_t len, char *out);

#endif
