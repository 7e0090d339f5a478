/* Base64 against RFC 4648 section 10, HMAC-SHA256 against RFC 4231 test
 * cases 1-4 and 6, SHA-256 against FIPS 180-2 examples, plus the edges. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "codec.h"

static char *b64(const char *s, size_t n, int url) {
    char *out = malloc(kling_b64_encoded_len(n, url) + 1);
    if (out == NULL) abort();
    kling_b64_encode((const unsigned char *)s, n, out, url);
    return out;
}

/* Decodes text and checks the result is exactly want (want NULL: must fail). */
static void check_decode(const char *text, const char *want, size_t wlen, int url, int line) {
    size_t n = strlen(text), outlen = 12345;
    unsigned char *out = malloc(kling_b64_decoded_max(n));
    int rc;
    if (out == NULL) abort();
    rc = kling_b64_decode(text, n, out, &outlen, url);
    if (want == NULL) {
        check_report(rc == -1, text, __FILE__, line);
    } else {
        check_report(rc == 0 && outlen == wlen && memcmp(out, want, wlen) == 0, text, __FILE__,
                     line);
    }
    free(out);
}

static void test_rfc4648(void) {
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    size_t i;
    for (i = 0; i < 7; i++) {
        char *e = b64(plain[i], strlen(plain[i]), 0);
        char *u = b64(plain[i], strlen(plain[i]), 1);
        CHECK_STR(e, std[i]);
        CHECK_STR(u, url[i]);
        CHECK_INT(kling_b64_encoded_len(strlen(plain[i]), 0), strlen(std[i]));
        CHECK_INT(kling_b64_encoded_len(strlen(plain[i]), 1), strlen(url[i]));
        check_decode(std[i], plain[i], strlen(plain[i]), 0, __LINE__);
        check_decode(url[i], plain[i], strlen(plain[i]), 1, __LINE__);
        check_decode(url[i], plain[i], strlen(plain[i]), 0, __LINE__); /* padding optional */
        free(e);
        free(u);
    }
}

static void test_alphabets(void) {
    char *e = b64("\xfb\xff\xbf", 3, 0), *u = b64("\xfb\xff\xbf", 3, 1);
    CHECK_STR(e, "+/+/");
    CHECK_STR(u, "-_-_");
    free(e);
    free(u);
    check_decode("+/+/", "\xfb\xff\xbf", 3, 0, __LINE__);
    check_decode("-_-_", "\xfb\xff\xbf", 3, 1, __LINE__);
    check_decode("-_-_", NULL, 0, 0, __LINE__); /* url alphabet is not standard */
    check_decode("+/+/", NULL, 0, 1, __LINE__);
    check_decode("Zg=", NULL, 0, 0, __LINE__);   /* padding must complete the quantum */
    check_decode("Z", NULL, 0, 0, __LINE__);     /* 6 bits are not a byte */
    check_decode("Zm9vY", NULL, 0, 1, __LINE__);
    check_decode("Zm=v", NULL, 0, 0, __LINE__);  /* '=' only at the end */
    check_decode("Zg===", NULL, 0, 0, __LINE__);
    check_decode("====", NULL, 0, 0, __LINE__);
    check_decode("Zm9v\n", NULL, 0, 0, __LINE__); /* no whitespace */
    check_decode("Zm 9v", NULL, 0, 0, __LINE__);
    check_decode("Zm9v!", NULL, 0, 0, __LINE__);
    check_decode("YQ==", "a", 1, 1, __LINE__);   /* url decoder tolerates padding */
}

/* Every byte value at every length and offset survives a round trip. */
static void test_roundtrip(void) {
    unsigned char data[256], back[260];
    char text[400];
    size_t len, i, outlen;
    int url, ok = 1;
    for (i = 0; i < 256; i++) data[i] = (unsigned char)(255 - i);
    for (url = 0; url < 2; url++) {
        for (len = 0; len <= 256; len++) {
            size_t tl = kling_b64_encode(data, len, text, url);
            ok &= tl == kling_b64_encoded_len(len, url) && strlen(text) == tl;
            ok &= kling_b64_decode(text, tl, back, &outlen, url) == 0 && outlen == len &&
                  memcmp(back, data, len) == 0;
        }
    }
    CHECK(ok);
}

static void hex_of(const unsigned char *mac, char *out) {
    kling_hex(mac, KLING_SHA256_LEN, out);
}

static void test_hmac_rfc4231(void) {
    unsigned char k1[20], k3[20], d3[50], k4[25], d4[50], k6[131], mac[32];
    char hex[65];
    size_t i;
    memset(k1, 0x0b, sizeof(k1));
    memset(k3, 0xaa, sizeof(k3));
    memset(d3, 0xdd, sizeof(d3));
    for (i = 0; i < 25; i++) k4[i] = (unsigned char)(i + 1);
    memset(d4, 0xcd, sizeof(d4));
    memset(k6, 0xaa, sizeof(k6));

    CHECK(kling_hmac_sha256(k1, 20, "Hi There", 8, mac) == 0); /* case 1 */
    hex_of(mac, hex);
    CHECK_STR(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK(kling_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac) == 0); /* case 2 */
    hex_of(mac, hex);
    CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(kling_hmac_sha256(k3, 20, d3, 50, mac) == 0); /* case 3 */
    hex_of(mac, hex);
    CHECK_STR(hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    CHECK(kling_hmac_sha256(k4, 25, d4, 50, mac) == 0); /* case 4 */
    hex_of(mac, hex);
    CHECK_STR(hex, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    CHECK(kling_hmac_sha256(k6, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
                            mac) == 0); /* case 6 */
    hex_of(mac, hex);
    CHECK_STR(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hmac_edges(void) {
    unsigned char mac[32], mac2[32];
    char hex[65];
    struct kling_span parts[3];
    /* Empty key and message; expected from python3 hmac.new(b"", b"", hashlib.sha256). */
    CHECK(kling_hmac_sha256("", 0, "", 0, mac) == 0);
    hex_of(mac, hex);
    CHECK_STR(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    /* Pieces hash like their concatenation. */
    parts[0].p = "what do ya";
    parts[0].n = 10;
    parts[1].p = "";
    parts[1].n = 0;
    parts[2].p = " want for nothing?";
    parts[2].n = 18;
    CHECK(kling_hmac_sha256_parts("Jefe", 4, parts, 3, mac2) == 0);
    hex_of(mac2, hex);
    CHECK_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_sha256(void) {
    unsigned char md[32];
    char hex[65];
    CHECK(kling_sha256("abc", 3, md) == 0);
    hex_of(md, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(kling_sha256("", 0, md) == 0);
    hex_of(md, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    kling_hex((const unsigned char *)"\x00\x0f\xf0\xff", 4, hex);
    CHECK_STR(hex, "000ff0ff");
}

static void test_ct_equal(void) {
    CHECK(kling_ct_equal("abc", 3, "abc", 3));
    CHECK(!kling_ct_equal("abc", 3, "abd", 3));
    CHECK(!kling_ct_equal("abc", 3, "abcd", 4));
    CHECK(!kling_ct_equal("bbc", 3, "abc", 3));
    CHECK(kling_ct_equal("", 0, "", 0));
    CHECK(!kling_ct_equal("", 0, "a", 1));
}

int main(void) {
    test_rfc4648();
    test_alphabets();
    test_roundtrip();
    test_hmac_rfc4231();
    test_hmac_edges();
    test_sha256();
    test_ct_equal();
    return check_done();
}
