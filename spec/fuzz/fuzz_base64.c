/* base64 and base64url decode on any text, plus encode/decode round trips.
 * Invariants: decode writes at most floor(3n/4) bytes (the buffer is exactly
 * that big, so ASan catches one byte more), never more than decoded_max();
 * whatever decodes re-encodes to text that decodes to the same bytes; every
 * byte string survives encode then decode. */
#include "codec.h"
#include "fuzz.h"

static void decode_any(const uint8_t *data, size_t size, int url) {
    size_t cap = size / 4 * 3 + (size % 4) * 3 / 4, outlen = 0, elen;
    unsigned char *out = malloc(cap ? cap : 1), *again;
    char *enc;
    if (out == NULL) {
        abort();
    }
    FUZZ_CHECK(cap <= kling_b64_decoded_max(size));
    if (kling_b64_decode((const char *)data, size, out, &outlen, url) == 0) {
        FUZZ_CHECK(outlen <= cap);
        elen = kling_b64_encoded_len(outlen, url);
        enc = malloc(elen + 1);
        again = malloc(kling_b64_decoded_max(elen) + 1);
        if (enc == NULL || again == NULL) {
            abort();
        }
        FUZZ_CHECK(kling_b64_encode(out, outlen, enc, url) == elen);
        FUZZ_CHECK(enc[elen] == '\0');
        {
            size_t n2 = 0;
            FUZZ_CHECK(kling_b64_decode(enc, elen, again, &n2, url) == 0);
            FUZZ_CHECK(n2 == outlen && memcmp(again, out, outlen) == 0);
        }
        free(enc);
        free(again);
    }
    free(out);
}

static void round_trip(const uint8_t *data, size_t size, int url) {
    size_t elen = kling_b64_encoded_len(size, url), n = 0;
    char *enc = malloc(elen + 1);
    unsigned char *dec = malloc(kling_b64_decoded_max(elen));
    if (enc == NULL || dec == NULL) {
        abort();
    }
    FUZZ_CHECK(kling_b64_encode(data, size, enc, url) == elen);
    FUZZ_CHECK(url || elen % 4 == 0);
    FUZZ_CHECK(kling_b64_decode(enc, elen, dec, &n, url) == 0);
    FUZZ_CHECK(n == size && (size == 0 || memcmp(dec, data, size) == 0));
    free(enc);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_any(data, size, 0);
    decode_any(data, size, 1);
    round_trip(data, size, 0);
    round_trip(data, size, 1);
    return 0;
}
