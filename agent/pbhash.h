/* Content hashes of protobuf-c messages: equal for equal messages, whatever their encoding. */
#ifndef SHUNT_AGENT_PBHASH_H
#define SHUNT_AGENT_PBHASH_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/* A 64-bit fingerprint of m's content. Map entries count in any order and an Any is hashed as
 * the message it holds (when the type is registered), because istiod marshals maps in Go's
 * random order: the bytes of an identical re-push differ, its content does not. The top-level
 * fields named in skip (nskip of them) are left out. */
uint64_t pbhash_message(const ProtobufCMessage *m, const char *const *skip, size_t nskip);

#endif
