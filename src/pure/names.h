/* The closest known name to an unknown one (an option or field name refused by name):
 * the one rule of "did you mean" for the C checkers and, through core.closest, for
 * kling.validate.closest. */
#ifndef KLING_NAMES_H
#define KLING_NAMES_H

#include <stddef.h>

/* The edit distance (insertions, deletions, substitutions of one byte) between a and b,
 * or (size_t)-1 when no memory was had. */
size_t kling_name_distance(const char *a, size_t alen, const char *b, size_t blen);

/* The known names closest to name: a known name is a candidate when at most
 * max(2, len / 3) edits away (further, no suggestion: the lengths alone bound the distance,
 * so a name much longer or shorter than a known one is never compared). Writes into near[]
 * the indexes of every known name at the least distance, sorted by name (byte order), and
 * returns how many (0: none is close); near[0] is the suggestion. known_len may be NULL
 * (each known name then NUL-terminated); near has room for n. */
size_t kling_name_closest(const char *name, size_t len, const char *const *known, const size_t *known_len,
                          size_t n, size_t *near);

#endif
