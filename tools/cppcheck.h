/* Definitions cppcheck needs for macros from system headers it does not read (make lint). */
#define LIBBPF_OPTS(TYPE, NAME, ...) struct TYPE NAME = {__VA_ARGS__}
