// os_log_with_type(log, type, "%{public}s", message) for src/output.rs: os_log is a macro, so
// Rust cannot call it. This is what the macro of <os/log.h> expands to, written out because the
// headers the cross-check compiles against (Zig's) have no <os/log.h>: clang builds the argument
// buffer (__builtin_os_log_format), the format string lives in __TEXT,__oslogstring where the
// logging system reads it, and _os_log_impl (libSystem) takes the image's __dso_handle.
#include <stdbool.h>
#include <stdint.h>

typedef struct os_log_s *os_log_t;
typedef uint8_t os_log_type_t;

struct mach_header;
extern struct mach_header __dso_handle;
extern void _os_log_impl(void *dso, os_log_t log, os_log_type_t type, const char *format,
                         uint8_t *buf, uint32_t size);

#define DEVICETRUST_FORMAT "%{public}s"

__attribute__((section("__TEXT,__oslogstring,cstring_literals")))
static const char devicetrust_os_log_format[] = DEVICETRUST_FORMAT;

void devicetrust_os_log(os_log_t log, os_log_type_t type, const char *message) {
    _Alignas(16) uint8_t buf[__builtin_os_log_format_buffer_size(DEVICETRUST_FORMAT, message)];
    _os_log_impl(&__dso_handle, log, type, devicetrust_os_log_format,
                 (uint8_t *)__builtin_os_log_format(buf, DEVICETRUST_FORMAT, message),
                 (uint32_t)sizeof(buf));
}
