#ifndef KLING_VERSION_H
#define KLING_VERSION_H
const char *kling_version(void);
#endif
