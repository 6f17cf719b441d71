#pragma once
// Which sanitizer instruments this translation unit (private; one home for the test).
//
// GCC defines __SANITIZE_ADDRESS__ and __SANITIZE_THREAD__ under -fsanitize=address and
// -fsanitize=thread; Debian's Clang 14 defines neither (checked) and answers
// __has_feature(address_sanitizer) / __has_feature(thread_sanitizer) instead.

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ADAPTERTUNE_ADDRESS_SANITIZER 1
#endif
#if __has_feature(thread_sanitizer)
#define ADAPTERTUNE_THREAD_SANITIZER 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__) && !defined(ADAPTERTUNE_ADDRESS_SANITIZER)
#define ADAPTERTUNE_ADDRESS_SANITIZER 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(ADAPTERTUNE_THREAD_SANITIZER)
#define ADAPTERTUNE_THREAD_SANITIZER 1
#endif
